/**
 * One batch: what happened to each row, live while it runs, and the actions its status
 * allows: Cancel (pending, processing), Resume (failed, interrupted, cancelled), Roll back
 * (failed, interrupted, completed, cancelled; asks first), and the results download; who
 * uploaded it and who acted on it.
 */
import { ApiError, followBatch, getJson, postJson } from './api.js';
import { failureReasons, messageBox, outcomeList, outcomeSentence, ProgressBar, resultsLink, RowsTable } from './components.js';
import { DirectoryBatchesView } from './directoryBatches.js';
import { announce, h, pageTitle, replace } from './dom.js';
import { BATCH_STATUS_LABEL, batchBadge, duration, plural, timeElement } from './format.js';
import { editButton, isRejected } from './rowEditor.js';
import type { BatchReport, BatchStatus } from './types.js';

const CAN_RESUME: readonly BatchStatus[] = ['failed', 'interrupted', 'cancelled'];
const CAN_ROLL_BACK: readonly BatchStatus[] = ['failed', 'interrupted', 'completed', 'cancelled'];
const ACTION_LABEL = { resume: 'Resumed', rollback: 'Rolled back', cancel: 'Cancelled', edit_row: 'Row edited' } as const;
const RUNNING: readonly BatchStatus[] = ['pending', 'processing'];
const POLL_MS = 1000;
const CANCELLED = 'Cancelled: nothing more will be sent, and nothing was activated.';

export function batchScreen(batchId: string): { element: HTMLElement; heading: HTMLElement; dispose(): void } {
  const heading = h('h1', { tabindex: -1, id: 'batch-heading' }, 'Batch');
  const body = h('div', { class: 'batch-body' }, h('p', { class: 'busy', role: 'status' }, 'Loading…'));
  const feedback = h('div', { class: 'feedback', tabindex: -1 });
  const element = h(
    'section',
    { class: 'screen', 'aria-labelledby': 'batch-heading' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/batches' }, '← History')),
    heading,
    feedback,
    body,
  );

  let disposed = false;
  let acting = false;
  /** A cancel asked for on this page, not yet seen to take effect: its "Cancelling" message is showing. */
  let cancelling = false;
  let stopFollowing: (() => void) | null = null;
  let pollTimer: number | undefined;
  let rows: RowsTable | null = null;
  let progress: ProgressBar | null = null;
  let directoryBatches: DirectoryBatchesView | null = null;

  const stopLive = () => {
    stopFollowing?.();
    stopFollowing = null;
    window.clearTimeout(pollTimer);
  };

  const say = (kind: 'error' | 'success' | 'info', title: string, ...text: string[]) => {
    replace(feedback, messageBox(kind, title, ...text));
    feedback.focus();
  };

  const render = (report: BatchReport) => {
    if (disposed) return;
    heading.textContent = report.filename;
    pageTitle(report.filename);
    const running = RUNNING.includes(report.status);
    progress = running ? new ProgressBar(report.total_hospitals) : null;
    if (progress) {
      if (report.progress) progress.fromProgress(report.progress);
      else progress.fromReport(report);
    }

    const actions = h('div', { class: 'actions batch-actions' });
    if (!acting && CAN_RESUME.includes(report.status)) {
      actions.append(
        h(
          'div',
          { class: 'action' },
          h('button', { type: 'button', class: 'button button-primary', onclick: () => void resume(), 'aria-describedby': 'resume-hint' }, 'Resume'),
          h('p', { class: 'hint', id: 'resume-hint' }, 'Creates the rows that are missing, then activates the batch.'),
        ),
      );
    }
    if (!acting && running) {
      const requested = report.cancel_requested_at !== null;
      actions.append(
        h(
          'div',
          { class: 'action' },
          h(
            'button',
            { type: 'button', class: 'button button-danger-outline', onclick: () => void cancel(), disabled: requested, 'aria-describedby': 'cancel-hint' },
            requested ? 'Cancelling…' : 'Cancel',
          ),
          h('p', { class: 'hint', id: 'cancel-hint' }, 'Stops after the row being sent; the rest stay waiting, nothing is activated.'),
        ),
      );
    }
    actions.append(h('div', { class: 'action' }, resultsLink(report.batch_id), h('p', { class: 'hint' }, 'Every row with its hospital id, status and error.')));
    if (!acting && CAN_ROLL_BACK.includes(report.status)) {
      actions.append(
        h(
          'div',
          { class: 'action' },
          h('button', { type: 'button', class: 'button button-danger-outline', onclick: () => void rollBack(report), 'aria-describedby': 'rollback-hint' }, 'Roll back'),
          h('p', { class: 'hint', id: 'rollback-hint' }, 'Deletes the hospitals of this batch from the directory. Asks first.'),
        ),
      );
    }

    rows = new RowsTable(`Rows of ${report.filename}`, report.hospitals);
    directoryBatches = new DirectoryBatchesView(report.filename);
    directoryBatches.setReport(report);
    if (!acting && CAN_RESUME.includes(report.status)) {
      const table = rows;
      for (const row of report.hospitals.filter(isRejected)) table.addAction(row.row, editButton(report.batch_id, row, table.columns, saved));
    }
    replace(
      body,
      h(
        'div',
        { class: 'batch-status' },
        batchBadge(report.status),
        h('span', { class: 'status-sentence', 'data-testid': 'batch-sentence' }, running ? 'This batch is running.' : outcomeSentence(report)),
      ),
      progress?.element,
      reasonsBox(report),
      report.notice ? messageBox('info', 'Notice', report.notice) : null,
      outcomeList(report),
      directoryBatches.split ? directoryBatches.element : null,
      h(
        'dl',
        { class: 'meta' },
        h('div', {}, h('dt', {}, 'Uploaded'), h('dd', {}, timeElement(report.created_at))),
        h('div', {}, h('dt', {}, 'Finished'), h('dd', {}, timeElement(report.completed_at))),
        h('div', { 'data-meta': 'last-run' }, h('dt', {}, 'Last run took'), h('dd', {}, duration(report.processing_time_seconds))),
        h('div', {}, h('dt', {}, 'Batch ID'), h('dd', {}, h('code', {}, report.batch_id))),
        h('div', { 'data-meta': 'created-by' }, h('dt', {}, 'Uploaded by'), h('dd', {}, report.created_by ?? '—')),
        ...(report.audit ?? []).map((entry) =>
          h('div', { 'data-meta': 'audit' }, h('dt', {}, ACTION_LABEL[entry.action]), h('dd', {}, `${entry.by ?? 'unnamed key'}, `, timeElement(entry.at))),
        ),
      ),
      actions,
      rows.element,
    );
  };

  /** A row was corrected: the page shows it pending, and Resume will create it. */
  const saved = (report: BatchReport, row: number) => {
    render(report);
    const still = report.hospitals.filter(isRejected).length;
    say(
      'success',
      `Row ${row} saved.`,
      still > 0
        ? `${plural(still, 'more rejected row')} to correct: a resume does not send a rejected row until it is edited.`
        : 'Resume the batch to create it and activate the batch.',
    );
  };

  /** While the batch runs, its event stream fills the table in, then the report replaces it. */
  const follow = () => {
    stopLive();
    stopFollowing = followBatch(batchId, {
      row: (event) => {
        progress?.rowLanded(event.row);
        rows?.update(event.row, event);
        directoryBatches?.row(event);
        if (event.progress) {
          progress?.fromProgress(event.progress);
          rows?.markSending(event.progress.current_row);
        }
      },
      directory: (event) => progress?.waiting(event),
      batch: (event) => {
        progress?.clearWait();
        directoryBatches?.batch(event);
        if (event.directory_batch_id && directoryBatches) progress?.say(directoryBatches.activationSentence());
      },
      report: (report) => {
        render(report);
        announce(outcomeSentence(report));
        // The cancel took effect (or the batch finished first): "Cancelling" gives way to what happened.
        if (cancelling) {
          cancelling = false;
          if (report.status === 'cancelled') say('success', CANCELLED);
          else replace(feedback);
        }
      },
      failed: (error) => say('error', 'Live progress stopped', error.message),
      reconnecting: () => progress?.say('Connection lost; reconnecting…'),
    });
  };

  /** During a resume the POST answers only when the batch is done: poll for progress meanwhile. */
  const poll = () => {
    pollTimer = window.setTimeout(async () => {
      try {
        const report = await getJson<BatchReport>(`/batches/${encodeURIComponent(batchId)}`);
        if (!acting || disposed) return;
        render(report);
      } catch {
        // The next poll, or the POST's answer, will tell.
      }
      if (acting && !disposed) poll();
    }, POLL_MS);
  };

  const act = async (what: 'resume' | 'rollback', working: string) => {
    acting = true;
    stopLive();
    replace(feedback, h('p', { class: 'busy', role: 'status' }, working));
    body.querySelectorAll('button').forEach((button) => {
      button.disabled = true;
    });
    if (what === 'resume') poll();
    try {
      const report = await postJson<BatchReport>(`/batches/${encodeURIComponent(batchId)}/${what}`);
      acting = false;
      window.clearTimeout(pollTimer);
      render(report);
      if (what === 'rollback') say('success', 'Rolled back: the hospitals of this batch were deleted from the directory.');
      else if (report.status === 'completed') say('success', 'Resumed: every row is created and the batch is activated.');
      else say('error', `Resumed, but the batch is ${BATCH_STATUS_LABEL[report.status].toLowerCase()} again: see the rows below.`);
    } catch (error) {
      acting = false;
      window.clearTimeout(pollTimer);
      await reload();
      say('error', what === 'resume' ? 'The batch was not resumed' : 'The batch was not rolled back', error instanceof Error ? error.message : String(error));
    }
  };

  const resume = () => act('resume', 'Resuming: creating the missing rows…');

  /** Answers at once: a queued batch is cancelled; a running one stops after its row in flight, which the live view shows. */
  const cancel = async () => {
    try {
      const report = await postJson<BatchReport>(`/batches/${encodeURIComponent(batchId)}/cancel`);
      render(report);
      if (report.status === 'cancelled') say('success', CANCELLED);
      else {
        cancelling = true;
        say('info', 'Cancelling: the batch stops after the row being sent.');
      }
    } catch (error) {
      say('error', 'The batch was not cancelled', error instanceof Error ? error.message : String(error));
    }
  };

  const rollBack = async (report: BatchReport) => {
    const created = report.hospitals.filter((row) => row.hospital_id !== null && row.status !== 'deleted').length;
    const ok = await confirmDialog(
      'Roll back this batch?',
      `${plural(created, 'hospital')} of this batch will be deleted from the directory. The history keeps the record. This cannot be undone.`,
      'Roll back',
    );
    if (ok) await act('rollback', 'Rolling back…');
  };

  const reload = async () => {
    try {
      const report = await getJson<BatchReport>(`/batches/${encodeURIComponent(batchId)}`);
      render(report);
      if (RUNNING.includes(report.status) && !acting) follow();
    } catch (error) {
      if (disposed) return;
      heading.textContent = error instanceof ApiError && error.status === 404 ? 'Batch not found' : 'Batch';
      pageTitle(heading.textContent);
      replace(body, messageBox('error', 'The batch could not be loaded', error instanceof Error ? error.message : String(error)), h('p', {}, h('a', { href: '#/batches' }, 'Back to the history')));
    }
  };

  void reload();

  return {
    element,
    heading,
    dispose: () => {
      disposed = true;
      stopLive();
    },
  };
}

/** The directory's reasons, row by row, in a box named for the batch's state. */
function reasonsBox(report: BatchReport): HTMLDivElement | null {
  if (RUNNING.includes(report.status) || report.status === 'completed') return null;
  const reasons = failureReasons(report);
  if (!reasons) return null;
  if (report.status === 'rolled_back') return messageBox('info', 'Why rows were not created before the rollback', reasons);
  return messageBox('error', report.status === 'failed' ? 'Why the batch failed' : 'Why the batch stopped', reasons);
}

/** A modal question (native <dialog>: focus stays inside, Escape cancels). Resolves true on confirm. */
function confirmDialog(title: string, text: string, confirm: string): Promise<boolean> {
  return new Promise((resolve) => {
    const opener = document.activeElement as HTMLElement | null;
    const cancelButton = h('button', { type: 'submit', value: 'cancel', class: 'button button-secondary', autofocus: true }, 'Cancel');
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, title),
        h('p', { id: 'confirm-text' }, text),
        h('div', { class: 'actions' }, h('button', { type: 'submit', value: 'confirm', class: 'button button-danger' }, confirm), cancelButton),
      ),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      opener?.focus();
      resolve(dialog.returnValue === 'confirm');
    });
    document.body.append(dialog);
    dialog.showModal();
    cancelButton.focus();
  });
}
