/**
 * The upload screen: choose or drop a CSV → dry run → preview with the problems marked →
 * "Create N hospitals" → live progress from the event stream → the outcome.
 * The screen keeps its state while the person looks at other screens.
 */
import { ApiError, followBatch, getJson, postJson } from './api.js';
import { failureReasons, messageBox, outcomeList, outcomeSentence, ProgressBar, resultsLink, RowsTable } from './components.js';
import { rowsAfter } from './csvPreview.js';
import { DIRECTORY_BATCH_SIZE, DirectoryBatchesView } from './directoryBatches.js';
import { announce, h, replace, svgIcon } from './dom.js';
import { BATCH_STATUS_LABEL, plural } from './format.js';
import { previewParts, problemItem } from './preview.js';
import type { Accepted, BatchReport, CsvProblem, DryRunResult, FileFormat } from './types.js';

interface UploadScreen {
  element: HTMLElement;
  heading: HTMLElement;
}

let screen: UploadScreen | null = null;

export function uploadScreen(): UploadScreen {
  screen ??= build();
  return screen;
}

function build(): UploadScreen {
  const heading = h('h1', { tabindex: -1 }, 'Upload hospitals');
  const input = h('input', {
    type: 'file',
    id: 'csv-file',
    name: 'file',
    accept: '.csv,.tsv,.txt,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    class: 'file-input',
    'aria-describedby': 'csv-file-hint',
  });
  const zone = h(
    'div',
    { class: 'dropzone', 'data-testid': 'dropzone' },
    input,
    h(
      'label',
      { for: 'csv-file', class: 'dropzone-label' },
      uploadIcon(),
      h('span', { class: 'dropzone-title' }, 'Choose a CSV or Excel file'),
      h('span', { class: 'dropzone-sub' }, ' or drop it here'),
    ),
    h(
      'p',
      { id: 'csv-file-hint', class: 'hint' },
      'Columns name and address (required) and phone, as CSV or an Excel workbook (.xlsx); at most 20 rows unless the service allows more. The file is checked first: nothing is created until you confirm. Start from a template: ',
      h('a', { href: '/template.xlsx', download: '' }, 'Excel'),
      ' or ',
      h('a', { href: '/template.csv', download: '' }, 'CSV'),
      '.',
    ),
  );
  const stage = h('div', { class: 'stage' });
  const element = h('section', { class: 'screen', 'aria-labelledby': 'upload-heading' }, heading, zone, stage);
  heading.id = 'upload-heading';

  let generation = 0;
  let stopFollowing: (() => void) | null = null;

  const showZone = (shown: boolean) => {
    zone.hidden = !shown;
  };

  const reset = () => {
    generation += 1;
    stopFollowing?.();
    stopFollowing = null;
    replace(stage);
    showZone(true);
    input.value = '';
    input.focus();
  };

  const check = async (file: File) => {
    const mine = ++generation;
    stopFollowing?.();
    stopFollowing = null;
    replace(stage, h('p', { class: 'busy', role: 'status' }, `Checking ${file.name}…`));
    const form = new FormData();
    form.append('file', file, file.name);
    try {
      const result = await postJson<DryRunResult>('/hospitals/bulk/validate', { body: form });
      if (mine !== generation) return;
      await renderPreview(file, result, mine);
    } catch (error) {
      if (mine !== generation) return;
      replace(stage, messageBox('error', `${file.name} could not be checked`, errorText(error)));
    }
  };

  const renderPreview = async (file: File, result: DryRunResult, mine: number) => {
    // The service stops reading at its row limit: the rows past it are read here, to show them.
    const overLimit = result.errors.length > 0 && result.rows.length > 0 ? ((await rowsAfter(file, result.rows.length)) ?? []) : [];
    if (mine !== generation) return;
    const title = h('h2', { tabindex: -1, id: 'preview-heading' }, `Check ${file.name}`);
    const howRead: Node[] = [
      ...(result.format ? [h('p', { class: 'hint', 'data-testid': 'file-format' }, formatText(result.format))] : []),
      ...(result.notices.length > 0 ? [messageBox('info', 'How the file was read', ...result.notices)] : []),
    ];
    const parts: Node[] = [title, ...howRead, ...previewParts(file.name, result, overLimit)];
    const count = result.errors.length;

    const actions = h('div', { class: 'actions' });
    if (result.valid && result.total_rows > 0) {
      actions.append(
        h(
          'button',
          { type: 'button', class: 'button button-primary', onclick: () => void create(file, result) },
          `Create ${plural(result.total_rows, 'hospital')}`,
        ),
      );
    } else {
      actions.append(h('p', { class: 'hint' }, 'Fix the file in your spreadsheet, save it as CSV (UTF-8) and choose it again.'));
    }
    actions.append(h('button', { type: 'button', class: 'button button-secondary', onclick: reset }, 'Choose another file'));
    parts.push(actions);
    replace(stage, parts);
    title.focus();
    announce(result.valid ? `${file.name}: ${plural(result.total_rows, 'row')}, no errors.` : `${file.name}: ${plural(count, 'error')} found.`);
  };

  const create = async (file: File, preview: DryRunResult) => {
    const mine = ++generation;
    showZone(false);
    replace(stage, h('p', { class: 'busy', role: 'status' }, `Sending ${file.name}…`));
    const form = new FormData();
    form.append('file', file, file.name);
    let accepted: Accepted;
    try {
      accepted = await postJson<Accepted>('/hospitals/bulk', { body: form, headers: { Prefer: 'respond-async' } });
    } catch (error) {
      if (mine !== generation) return;
      showZone(true);
      const problems = error instanceof ApiError && Array.isArray(error.problem?.['errors']) ? (error.problem['errors'] as CsvProblem[]) : [];
      replace(
        stage,
        messageBox(
          'error',
          `${file.name} was not sent`,
          errorText(error),
          ...(problems.length > 0 ? [h('ul', { class: 'problem-list' }, problems.map(problemItem))] : []),
        ),
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'button button-secondary', onclick: reset }, 'Choose another file')),
      );
      return;
    }
    if (mine !== generation) return;

    const batchHref = `#/batches/${encodeURIComponent(accepted.batch_id)}`;
    const title = h('h2', { tabindex: -1 }, `Creating ${plural(accepted.total_hospitals, 'hospital')} from ${file.name}`);
    const progress = new ProgressBar(accepted.total_hospitals);
    const leave = h('p', { class: 'hint' }, 'You can leave this screen: the batch keeps running. ', h('a', { href: batchHref }, 'Follow it on its page'), '.');
    const outcome = h('div', { class: 'outcome' });
    const rows = new RowsTable(`Rows of ${file.name}`, preview.rows);
    // A file over the directory's batch limit is split: its directory batches come with the report.
    const directoryBatches = new DirectoryBatchesView(file.name);
    if (accepted.total_hospitals > DIRECTORY_BATCH_SIZE) {
      getJson<BatchReport>(`/batches/${encodeURIComponent(accepted.batch_id)}`).then(
        (report) => {
          if (mine === generation) directoryBatches.setReport(report);
        },
        // The final report lays them out anyway.
        () => undefined,
      );
    }
    replace(stage, title, progress.element, directoryBatches.element, outcome, leave, rows.element);
    title.focus();

    const finish = (report: BatchReport) => {
      progress.clearWait();
      rows.setAll(report.hospitals);
      directoryBatches.setReport(report);
      progress.fromReport(report);
      const sentence = outcomeSentence(report);
      title.textContent =
        report.status === 'completed'
          ? `Created ${plural(report.processed_hospitals, 'hospital')} from ${file.name}`
          : `${file.name}: batch ${BATCH_STATUS_LABEL[report.status].toLowerCase()}`;
      leave.remove();
      replace(
        outcome,
        h(
          'div',
          { class: `summary summary-${report.status}`, role: 'status', 'data-testid': 'summary' },
          h('p', { class: 'summary-title' }, sentence),
          outcomeList(report),
          report.notice ? h('p', { class: 'notice' }, report.notice) : null,
          failureReasons(report),
          h(
            'div',
            { class: 'actions' },
            h('a', { href: batchHref, class: 'button button-primary' }, 'Open the batch page'),
            resultsLink(report.batch_id),
            h('button', { type: 'button', class: 'button button-secondary', onclick: reset }, 'Upload another file'),
          ),
        ),
      );
      announce(sentence);
    };

    stopFollowing = followBatch(accepted.batch_id, {
      row: (event) => {
        progress.rowLanded(event.row);
        rows.update(event.row, event);
        directoryBatches.row(event);
        if (event.progress) {
          progress.fromProgress(event.progress);
          rows.markSending(event.progress.current_row);
        }
      },
      directory: (event) => progress.waiting(event),
      batch: (event) => {
        progress.clearWait();
        directoryBatches.batch(event);
        // One directory batch of a split upload activated: the others follow.
        if (event.directory_batch_id) progress.say(directoryBatches.activationSentence());
        else if (event.status === 'processing' && !event.batch_activated) progress.set(0, 'Sending the first row…');
        if (event.batch_activated) progress.set(100, 'Every row was created; the batch is activated.');
      },
      report: finish,
      failed: (error) => {
        replace(outcome, messageBox('error', 'Live progress stopped', error.message, h('a', { href: batchHref }, 'See the batch page for where it is.')));
      },
      reconnecting: () => progress.say('Connection lost; reconnecting…'),
    });
  };

  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (file) void check(file);
  });

  // Dropping a file anywhere on the zone works like choosing it.
  const over = (event: DragEvent) => {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  };
  zone.addEventListener('dragenter', over);
  zone.addEventListener('dragover', over);
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget as Node | null)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    zone.classList.remove('dragging');
    const file = event.dataTransfer?.files[0];
    if (!file) return;
    event.preventDefault();
    void check(file);
  });

  return { element, heading };
}

/** A tray with an arrow going up. */
const uploadIcon = () => svgIcon('dropzone-icon', ['M12 15V4', 'M7 9l5-5 5 5', 'M4 15v4a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-4']);

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const DELIMITER_NAME: Record<string, string> = { ',': 'commas', ';': 'semicolons', '\t': 'tabs' };
const ENCODING_NAME: Record<string, string> = { 'utf-8': 'UTF-8', 'utf-16le': 'UTF-16', 'utf-16be': 'UTF-16', 'windows-1252': 'Windows-1252' };

/** "Read as an Excel workbook, sheet Hospitals. Columns: Hospital Name → name, …" */
function formatText(format: FileFormat): string {
  const how =
    format.type === 'xlsx'
      ? `Read as an Excel workbook, sheet ${format.sheet ?? ''}.`
      : `Read as CSV, ${ENCODING_NAME[format.encoding ?? ''] ?? format.encoding ?? ''}, separated by ${DELIMITER_NAME[format.delimiter ?? ''] ?? format.delimiter ?? ''}.`;
  const columns = format.columns.map((c) => `${c.header} → ${c.field}`).join(', ');
  return columns === '' ? how : `${how} Columns: ${columns}.`;
}
