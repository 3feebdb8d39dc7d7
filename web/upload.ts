/**
 * The upload screen: choose or drop a CSV → dry run → preview with the problems marked →
 * "Create N hospitals" → live progress from the event stream → the outcome.
 * The screen keeps its state while the person looks at other screens.
 */
import { ApiError, followBatch, postJson } from './api.js';
import { messageBox, outcomeList, outcomeSentence, ProgressBar, resultsLink, RowsTable } from './components.js';
import { announce, h, headerRow, replace, scrollingTable, svgIcon } from './dom.js';
import { BATCH_STATUS_LABEL, plural } from './format.js';
import type { Accepted, BatchReport, CsvProblem, DryRunResult, FileFormat } from './types.js';

const COLUMNS = ['name', 'address', 'phone'] as const;

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
      'Columns name and address (required) and phone, at most 20 rows, as CSV or an Excel workbook (.xlsx). The file is checked first: nothing is created until you confirm. Start from a template: ',
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
      renderPreview(file, result);
    } catch (error) {
      if (mine !== generation) return;
      replace(stage, messageBox('error', `${file.name} could not be checked`, errorText(error)));
    }
  };

  const renderPreview = (file: File, result: DryRunResult) => {
    const shownRows = new Set(result.rows.map((row) => row.row));
    // File-level problems, and row problems for rows the preview cannot show, go above the table.
    const general = result.errors.filter((error) => error.row === null || !shownRows.has(error.row));
    const byRow = new Map<number, CsvProblem[]>();
    for (const error of result.errors) {
      if (error.row !== null && shownRows.has(error.row)) byRow.set(error.row, [...(byRow.get(error.row) ?? []), error]);
    }
    const warningsByRow = new Map<number, string[]>();
    for (const warning of result.warnings) {
      if (warning.row !== null) warningsByRow.set(warning.row, [...(warningsByRow.get(warning.row) ?? []), warning.message]);
    }

    const title = h('h2', { tabindex: -1, id: 'preview-heading' }, `Check ${file.name}`);
    const parts: Node[] = [title];
    const count = result.errors.length;
    if (result.valid) {
      parts.push(h('p', { class: 'lead', role: 'status' }, `${plural(result.total_rows, 'row')} read, no problems found.`));
    } else {
      const rowProblems = count - general.length;
      parts.push(
        messageBox(
          'error',
          `${plural(count, 'problem')} found: nothing can be created until the file is fixed.`,
          ...(general.length > 0 ? [h('ul', { class: 'problem-list' }, general.map((error) => h('li', {}, error.message)))] : []),
          ...(rowProblems > 0 ? [`${plural(rowProblems, 'problem')} in rows: marked in the table below.`] : []),
        ),
      );
    }
    if (result.format) parts.push(h('p', { class: 'hint', 'data-testid': 'file-format' }, formatText(result.format)));
    if (result.notices.length > 0) parts.push(messageBox('info', 'How the file was read', ...result.notices));
    if (result.warnings.length > 0) {
      parts.push(
        messageBox(
          'warning',
          `${plural(result.warnings.length, 'warning')}: the file can still be sent.`,
          h('ul', { class: 'warning-list' }, result.warnings.map((warning) => h('li', {}, warning.message))),
        ),
      );
    }

    if (result.rows.length > 0) {
      const table = h(
        'table',
        { class: 'preview-table' },
        h('caption', {}, `${plural(result.rows.length, 'row')} in ${file.name}`),
        headerRow('Row', 'Name', 'Address', 'Phone', count > 0 ? 'Problems' : result.warnings.length > 0 ? 'Warnings' : 'Notes'),
        h(
          'tbody',
          {},
          result.rows.map((row) => {
            const errors = byRow.get(row.row) ?? [];
            const rowLevel = errors.filter((error) => error.column === null || !(COLUMNS as readonly string[]).includes(error.column));
            const warnings = warningsByRow.get(row.row) ?? [];
            const cell = (column: (typeof COLUMNS)[number]) => {
              const value = row[column] ?? '';
              const mine = errors.filter((error) => error.column === column);
              const attrs = { class: column === 'phone' ? 'nowrap' : 'col-text' };
              if (mine.length === 0) return h('td', attrs, value);
              const message = mine.map((error) => error.message).join(' ');
              return h(
                'td',
                { class: `${attrs.class} cell-invalid`, 'data-column': column, 'data-error': message },
                value === '' ? h('span', { class: 'empty-value' }, '(empty)') : value,
                h('span', { class: 'cell-error' }, h('span', { class: 'visually-hidden' }, 'Problem: '), message),
              );
            };
            const notes = [
              ...rowLevel.map((error) => h('li', { class: 'note-error' }, error.message)),
              ...warnings.map((message) => h('li', { class: 'note-warning' }, message)),
            ];
            return h(
              'tr',
              {
                'data-row': row.row,
                class: [errors.length > 0 ? 'row-has-error' : '', rowLevel.length > 0 ? 'row-invalid' : '', warnings.length > 0 ? 'row-warning' : '']
                  .filter(Boolean)
                  .join(' '),
                ...(rowLevel.length > 0 ? { 'data-error': rowLevel.map((error) => error.message).join(' ') } : {}),
              },
              h('th', { scope: 'row', class: 'num' }, row.row),
              cell('name'),
              cell('address'),
              cell('phone'),
              h('td', { class: 'col-notes' }, notes.length > 0 ? h('ul', { class: 'notes' }, notes) : ''),
            );
          }),
        ),
      );
      parts.push(scrollingTable(`Rows of ${file.name}`, table));
    }

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
    announce(result.valid ? `${file.name}: ${plural(result.total_rows, 'row')}, no problems.` : `${file.name}: ${plural(count, 'problem')} found.`);
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
          ...(problems.length > 0 ? [h('ul', { class: 'problem-list' }, problems.map((problem) => h('li', {}, problem.message)))] : []),
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
    replace(stage, title, progress.element, outcome, leave, rows.element);
    title.focus();

    const finish = (report: BatchReport) => {
      rows.setAll(report.hospitals);
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
          report.error ? h('p', { class: 'error-text' }, report.error) : null,
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
        rows.update(event.row, event);
        if (event.progress) {
          progress.fromProgress(event.progress);
          rows.markSending(event.progress.current_row);
        }
      },
      batch: (event) => {
        if (event.status === 'processing' && !event.batch_activated) progress.set(0, 'Sending the first row…');
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
