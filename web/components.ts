/** Pieces shared by the upload screen and the batch page. */
import { wireDownload } from './api.js';
import { announce, h, labelCells, replace, scrollingTable, stackable } from './dom.js';
import { duration, plural, rowList, rowOutcomeBadge, secondsBetween } from './format.js';
import type { BatchReport, DirectoryEvent, Progress, RowReport, RowStatus } from './types.js';

export type BoxKind = 'error' | 'warning' | 'info' | 'success';

/** A coloured message box; errors are alerts, the rest plain notes. */
export function messageBox(kind: BoxKind, title: string, ...body: (Node | string)[]): HTMLDivElement {
  return h(
    'div',
    { class: `box box-${kind}`, ...(kind === 'error' ? { role: 'alert' } : {}) },
    h('p', { class: 'box-title' }, title),
    body.map((part) => (typeof part === 'string' ? h('p', {}, part) : part)),
  );
}

/** The progress bar and its sentence (a polite live region). */
export class ProgressBar {
  readonly element: HTMLDivElement;
  private readonly bar: HTMLDivElement;
  private readonly fill: HTMLDivElement;
  private readonly text: HTMLParagraphElement;
  /** What the directory is being waited for, with a countdown; hidden when nothing is. */
  private readonly trouble: HTMLParagraphElement;
  private countdown: number | undefined;
  /** The row the shown wait is for; null for the whole batch (a wake-up, an activation). */
  private waitingFor: number | null;

  constructor(private readonly total: number) {
    this.fill = h('div', { class: 'progress-fill' });
    this.bar = h(
      'div',
      { class: 'progress', role: 'progressbar', 'aria-label': 'Rows handled', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0 },
      this.fill,
    );
    this.text = h('p', { class: 'progress-text', role: 'status', 'aria-live': 'polite' }, 'Starting…');
    this.trouble = h('p', { class: 'directory-wait', 'data-testid': 'directory-wait', hidden: true });
    this.waitingFor = null;
    this.element = h('div', { class: 'progress-block' }, this.bar, this.text, this.trouble);
  }

  /**
   * The directory is being waited for: says why, with the attempt and a countdown to the
   * next try, until the row waited for lands (`rowLanded`), or any row for a wait of the whole
   * batch, or a batch event (`clearWait`). Announced once, not every second.
   */
  waiting(event: DirectoryEvent): void {
    this.clearWait();
    this.waitingFor = event.row;
    const nextTry = Date.now() + event.retry_in_seconds * 1000;
    const tick = () => {
      if (!this.trouble.isConnected && this.countdown !== undefined) return this.clearWait();
      this.trouble.textContent = directoryWaitText(event, Math.max(0, Math.ceil((nextTry - Date.now()) / 1000)));
    };
    tick();
    this.trouble.hidden = false;
    this.countdown = window.setInterval(tick, 1000);
    announce(this.trouble.textContent ?? '');
  }

  /** A row reached an outcome: the wait is over if it was this row's (other rows go on meanwhile). */
  rowLanded(row: number): void {
    if (this.waitingFor === null || this.waitingFor === row) this.clearWait();
  }

  clearWait(): void {
    this.waitingFor = null;
    window.clearInterval(this.countdown);
    this.countdown = undefined;
    this.trouble.hidden = true;
    this.trouble.textContent = '';
  }

  set(percent: number, sentence: string): void {
    const value = Math.max(0, Math.min(100, Math.round(percent)));
    this.bar.setAttribute('aria-valuenow', String(value));
    this.bar.setAttribute('aria-valuetext', `${value} %: ${sentence}`);
    this.fill.style.width = `${value}%`;
    this.text.textContent = sentence;
  }

  /** Changes the sentence only (e.g. while reconnecting). */
  say(sentence: string): void {
    this.text.textContent = sentence;
  }

  /** From a row event's progress. */
  fromProgress(progress: Progress): void {
    const handled = progress.done + progress.failed;
    const parts = [`${handled} of ${this.total} rows handled`, `${progress.done} created`];
    if (progress.failed > 0) parts.push(`${progress.failed} failed`);
    if (progress.pending > 0 && progress.eta_seconds !== null) parts.push(`about ${duration(progress.eta_seconds)} left`);
    this.set(progress.percent, `${parts.join(', ')}.`);
  }

  /** From a finished (or current) report. */
  fromReport(report: BatchReport): void {
    const handled = report.hospitals.filter((row) => row.status !== 'pending' && row.status !== 'creating').length;
    const percent = report.total_hospitals === 0 ? 100 : (handled / report.total_hospitals) * 100;
    const parts = [`${handled} of ${report.total_hospitals} rows handled`, `${report.processed_hospitals} created`];
    if (report.failed_hospitals > 0) parts.push(`${report.failed_hospitals} failed`);
    this.set(percent, `${parts.join(', ')}.`);
  }
}

/**
 * "The directory answered 503; trying again (attempt 2) in 4 s", "Waiting for the directory's
 * rate limit: next try in 38 s". A retry's `attempt` is the one that failed: the next is one more.
 */
export function directoryWaitText(event: DirectoryEvent, seconds: number): string {
  const when = seconds > 0 ? `in ${seconds} s` : 'now';
  if (event.reason === 'rate_limited') return `Waiting for the directory's rate limit: next try ${when}.`;
  const what = event.status === null ? `The directory did not answer (${event.message})` : `The directory answered ${event.status}`;
  return `${what}; trying again (attempt ${event.attempt + 1}) ${when}.`;
}

const ROWS_TABLE_COLUMNS = ['Row', 'Name', 'Status', 'Hospital ID', 'Attempts', 'Message', 'Address', 'Phone'];

type RowLike = Pick<RowReport, 'row' | 'name' | 'address' | 'phone'> & Partial<RowReport>;

/** The per-row outcome table, filled in as rows are handled. */
export class RowsTable {
  readonly element: HTMLDivElement;
  private readonly body: HTMLTableSectionElement;
  private readonly cells = new Map<number, { tr: HTMLTableRowElement; status: HTMLTableCellElement; id: HTMLTableCellElement; attempts: HTMLTableCellElement; message: HTMLTableCellElement }>();

  constructor(caption: string, rows: RowLike[]) {
    this.body = h('tbody');
    // Status and message next to the name: on a phone the outcome comes first in each stacked row.
    const table = stackable(h('table', { class: 'rows-table stack' }, h('caption', {}, caption), this.body), ROWS_TABLE_COLUMNS);
    this.element = scrollingTable(caption, table);
    this.setAll(rows);
  }

  setAll(rows: RowLike[]): void {
    this.cells.clear();
    replace(
      this.body,
      rows.map((row) => {
        const status = h('td', { class: 'col-status' });
        const id = h('td', { class: 'num' });
        const attempts = h('td', { class: 'num' });
        const message = h('td', { class: 'col-message' });
        const tr = h(
          'tr',
          { 'data-row': row.row },
          h('th', { scope: 'row', class: 'num' }, row.row),
          h('td', { class: 'col-text' }, row.name),
          status,
          id,
          attempts,
          message,
          h('td', { class: 'col-text' }, row.address),
          h('td', { class: 'nowrap' }, row.phone ?? ''),
        );
        labelCells(tr, ROWS_TABLE_COLUMNS);
        this.cells.set(row.row, { tr, status, id, attempts, message });
        this.update(row.row, {
          status: row.status ?? 'pending',
          hospital_id: row.hospital_id ?? null,
          attempts: row.attempts ?? 0,
          error_message: row.error_message ?? null,
        });
        return tr;
      }),
    );
  }

  update(row: number, patch: { status: RowStatus; hospital_id: number | null; attempts: number; error_message: string | null }): void {
    const cells = this.cells.get(row);
    if (!cells) return;
    replace(cells.status, rowOutcomeBadge(patch.status, patch.hospital_id));
    cells.tr.dataset['status'] = patch.status;
    cells.id.textContent = patch.hospital_id === null ? '' : String(patch.hospital_id);
    cells.attempts.textContent = patch.attempts > 0 ? String(patch.attempts) : '';
    cells.message.textContent = patch.error_message ?? '';
  }

  /** How many columns a row has (for a cell that spans them all). */
  readonly columns = ROWS_TABLE_COLUMNS.length;

  /** Puts a control (an Edit button) beside the row's status. */
  addAction(row: number, control: HTMLElement): void {
    const cells = this.cells.get(row);
    if (cells) cells.status.append(h('div', { class: 'row-actions' }, control));
  }

  /** Shows the row being sent right now, if the progress says which. */
  markSending(row: number | null): void {
    if (row === null) return;
    const cells = this.cells.get(row);
    if (cells && cells.tr.dataset['status'] === 'pending') replace(cells.status, rowOutcomeBadge('creating', null));
  }
}

/** After a rollback: rows whose hospital was deleted, and rows never created at all. */
function rolledBackCounts(report: BatchReport): { deleted: number; neverCreated: number } {
  const neverCreated = report.hospitals.filter((row) => row.status === 'deleted' && row.hospital_id === null).length;
  return { deleted: report.hospitals.length - neverCreated, neverCreated };
}

/**
 * Counts, activation and time: the outcome of a batch at a glance. The time runs from the
 * upload to the batch's last finish, the same figure History shows; the last run alone is
 * on the batch page.
 */
export function outcomeList(report: BatchReport): HTMLDListElement {
  const item = (term: string, value: Node | string, attrs: Record<string, string> = {}) =>
    h('div', { class: 'stat', ...attrs }, h('dt', {}, term), h('dd', {}, value));
  const counts =
    report.status === 'rolled_back'
      ? [
          item('Deleted', String(rolledBackCounts(report).deleted), { 'data-stat': 'deleted' }),
          item('Never created', String(rolledBackCounts(report).neverCreated), { 'data-stat': 'never-created' }),
        ]
      : [
          item('Created', `${report.processed_hospitals} of ${report.total_hospitals}`, { 'data-stat': 'created' }),
          item('Failed', String(report.failed_hospitals), { 'data-stat': 'failed' }),
        ];
  return h(
    'dl',
    { class: 'stats' },
    counts,
    item('Activated', report.batch_activated ? 'Yes' : 'No', { 'data-stat': 'activated' }),
    item(TOTAL_TIME_LABEL, duration(secondsBetween(report.created_at, report.completed_at)), { 'data-stat': 'time' }),
  );
}

/** The label of the time from upload to finish, on the batch page and in History alike. */
export const TOTAL_TIME_LABEL = 'Upload to finish';

/** One sentence for the outcome, for the heading and the screen-reader announcement. */
export function outcomeSentence(report: BatchReport): string {
  switch (report.status) {
    case 'completed':
      return `Batch completed: ${plural(report.processed_hospitals, 'hospital')} created and activated.`;
    case 'failed':
      return `Batch failed: ${report.processed_hospitals} of ${report.total_hospitals} created, ${report.failed_hospitals} failed; the batch was not activated.`;
    case 'interrupted':
      return `Batch interrupted: ${report.processed_hospitals} of ${report.total_hospitals} created so far; resume it to finish.`;
    case 'cancelled':
      return `Batch cancelled: ${report.processed_hospitals} of ${report.total_hospitals} created, nothing activated; resume it to finish, or roll it back.`;
    case 'rolled_back': {
      const { deleted, neverCreated } = rolledBackCounts(report);
      const never = neverCreated > 0 ? `; ${plural(neverCreated, 'row was', 'rows were')} never created` : '';
      return `Batch rolled back: ${plural(deleted, 'hospital')} deleted from the directory${never}.`;
    }
    default:
      return `Batch ${report.status}.`;
  }
}

// The service's batch error when rows failed only repeats the counts the page already shows.
const COUNTS_ONLY = /^\d+ of \d+ rows were not created; the batch was not activated\.$/;

/**
 * Why a batch did not finish, in the directory's words: each distinct reason once, with
 * the rows it concerns; the batch's own error too when it says more than the counts.
 * Null when there is nothing to say.
 */
export function failureReasons(report: BatchReport): HTMLDivElement | null {
  const byReason = new Map<string, RowReport[]>();
  const created = (row: RowReport) => row.status === 'created' || row.status === 'created_and_activated' || (row.status === 'deleted' && row.hospital_id !== null);
  for (const row of report.hospitals) {
    if (row.error_message && !created(row)) byReason.set(row.error_message, [...(byReason.get(row.error_message) ?? []), row]);
  }
  const batchError = report.error && !(byReason.size > 0 && COUNTS_ONLY.test(report.error)) ? report.error : null;
  if (byReason.size === 0 && !batchError) return null;
  return h(
    'div',
    { class: 'reasons', 'data-testid': 'failure-reasons' },
    batchError ? h('p', { class: 'error-text' }, batchError) : null,
    byReason.size > 0
      ? h(
          'ul',
          { class: 'reason-list' },
          [...byReason].map(([reason, rows]) =>
            h(
              'li',
              { 'data-rows': rows.map((row) => row.row).join(' ') },
              h('strong', {}, rows.length === 1 ? `Row ${rows[0]!.row} (${rows[0]!.name})` : rowList(rows.map((row) => row.row))),
              `: ${reason}`,
            ),
          ),
        )
      : null,
  );
}

export function resultsLink(batchId: string, text = 'Download results (CSV)'): HTMLAnchorElement {
  return wireDownload(h('a', { href: `/batches/${encodeURIComponent(batchId)}/results.csv`, download: '', class: 'button button-secondary' }, text));
}
