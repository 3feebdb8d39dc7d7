/**
 * The dry run's verdict on a file: errors (nothing can be sent) and warnings (it can) in
 * boxes of their own, then every row with its errors marked on their cells and its
 * warnings beside them. Rows are numbered as data rows everywhere; the file line is a detail.
 */
import { messageBox } from './components.js';
import type { PreviewRow } from './csvPreview.js';
import { h, labelCells, stackable, scrollingTable } from './dom.js';
import { plural, problemText, rowList } from './format.js';
import type { CsvProblem, DryRunResult, DryRunWarning } from './types.js';

const COLUMNS = ['name', 'address', 'phone'] as const;

/** A problem as one line: "Row 3: name is required", the file line in smaller print. */
export function problemItem(problem: CsvProblem): HTMLLIElement {
  const { text, detail } = problemText(problem);
  return h('li', {}, text, detail ? h('span', { class: 'detail' }, ` (${detail})`) : null);
}

/**
 * The boxes and the table for `result`. `overLimit` are the rows past the service's row
 * limit, read by the page itself (the service does not read them).
 */
export function previewParts(filename: string, result: DryRunResult, overLimit: PreviewRow[]): Node[] {
  const shownRows = new Set(result.rows.map((row) => row.row));
  // File-level problems, and row problems for rows the table cannot show, go in the box.
  const general = result.errors.filter((error) => error.row === null || !shownRows.has(error.row));
  return [...verdict(result, general, overLimit), ...(result.rows.length + overLimit.length > 0 ? [rowsTable(filename, result, overLimit)] : [])];
}

/** "No errors", or the errors box; then the warnings box, if any. */
function verdict(result: DryRunResult, general: CsvProblem[], overLimit: PreviewRow[]): Node[] {
  const parts: Node[] = [];
  const errorCount = result.errors.length;
  if (result.valid) {
    parts.push(h('p', { class: 'lead', role: 'status' }, `${plural(result.total_rows, 'row')} read, no errors found.`));
  } else {
    const rowErrors = errorCount - general.length;
    const over = overLimit.map((row) => row.row);
    parts.push(
      messageBox(
        'error',
        `${plural(errorCount, 'error')}: nothing can be created until the file is fixed.`,
        ...(general.length > 0 ? [h('ul', { class: 'problem-list' }, general.map(problemItem))] : []),
        ...(over.length > 0 ? [`${rowList(over)} ${over.length === 1 ? 'is' : 'are'} over the limit: shown at the end of the table.`] : []),
        ...(rowErrors > 0 ? [`${plural(rowErrors, 'error')} in rows: marked in the table below.`] : []),
      ),
    );
  }
  if (result.warnings.length > 0) {
    parts.push(
      messageBox(
        'warning',
        `${plural(result.warnings.length, 'warning')}: the file can still be sent.`,
        h('ul', { class: 'warning-list' }, result.warnings.map((warning) => h('li', { 'data-kind': warning.kind }, warning.message))),
      ),
    );
  }
  return parts;
}

/** Every row: errors on their cells or in an "Errors" column, warnings in a "Warnings" column. */
function rowsTable(filename: string, result: DryRunResult, overLimit: PreviewRow[]): HTMLDivElement {
  const shownRows = new Set(result.rows.map((row) => row.row));
  const errorsByRow = groupByRow(result.errors.filter((error) => error.row !== null && shownRows.has(error.row)));
  const warningsByRow = groupByRow(result.warnings);
  const overMessage = `Over the limit: at most ${plural(result.rows.length, 'row')} can be sent in one upload.`;
  const rows = [...result.rows, ...overLimit];
  const rowLevel = (row: number) =>
    (errorsByRow.get(row) ?? []).filter((error) => error.column === null || !(COLUMNS as readonly string[]).includes(error.column));
  const hasRowErrors = overLimit.length > 0 || rows.some((row) => rowLevel(row.row).length > 0);
  const hasWarnings = warningsByRow.size > 0;
  const labels = ['Row', 'Name', 'Address', 'Phone', ...(hasRowErrors ? ['Errors'] : []), ...(hasWarnings ? ['Warnings'] : [])];

  const body = h(
    'tbody',
    {},
    rows.map((row) => {
      const over = !shownRows.has(row.row);
      const errors = errorsByRow.get(row.row) ?? [];
      const mineRowLevel = rowLevel(row.row).map(problemText);
      if (over) mineRowLevel.push({ text: overMessage, detail: null });
      const warnings = (warningsByRow.get(row.row) ?? []).map((warning) => warning.message);
      const tr = h(
        'tr',
        {
          'data-row': row.row,
          class: [
            errors.length > 0 ? 'row-has-error' : '',
            mineRowLevel.length > 0 ? 'row-invalid' : '',
            over ? 'row-over-limit' : '',
            warnings.length > 0 ? 'row-warning' : '',
          ]
            .filter(Boolean)
            .join(' '),
          ...(mineRowLevel.length > 0 ? { 'data-error': mineRowLevel.map((problem) => problem.text).join(' ') } : {}),
        },
        h('th', { scope: 'row', class: 'num' }, row.row),
        COLUMNS.map((column) => valueCell(row, column, errors)),
        hasRowErrors ? h('td', { class: 'col-notes' }, notes('note-error', mineRowLevel)) : null,
        hasWarnings ? h('td', { class: 'col-notes' }, notes('note-warning', warnings.map((text) => ({ text, detail: null })))) : null,
      );
      labelCells(tr, labels);
      return tr;
    }),
  );
  const caption = overLimit.length > 0 ? `${plural(rows.length, 'row')} in ${filename}, ${overLimit.length} over the limit` : `${plural(rows.length, 'row')} in ${filename}`;
  const table = stackable(h('table', { class: 'preview-table stack' }, h('caption', {}, caption), body), labels);
  return scrollingTable(`Rows of ${filename}`, table);
}

/** A value, with its errors marked on it. */
function valueCell(row: PreviewRow, column: (typeof COLUMNS)[number], errors: CsvProblem[]): HTMLTableCellElement {
  const value = row[column] ?? '';
  const mine = errors.filter((error) => error.column === column);
  const attrs = { class: column === 'phone' ? 'nowrap' : 'col-text' };
  if (mine.length === 0) return h('td', attrs, value);
  const message = mine.map((error) => problemText(error).text).join(' ');
  const detail = mine[0]?.line ? ` (line ${mine[0].line} of the file)` : '';
  return h(
    'td',
    { class: `${attrs.class} cell-invalid`, 'data-column': column, 'data-error': message },
    value === '' ? h('span', { class: 'empty-value' }, '(empty)') : value,
    h('span', { class: 'cell-error' }, h('span', { class: 'visually-hidden' }, 'Error: '), message, h('span', { class: 'detail' }, detail)),
  );
}

function notes(className: string, messages: { text: string; detail: string | null }[]): HTMLUListElement | string {
  if (messages.length === 0) return '';
  return h(
    'ul',
    { class: 'notes' },
    messages.map(({ text, detail }) => h('li', { class: className }, h('span', { class: 'note-text' }, text), detail ? h('span', { class: 'detail' }, ` (${detail})`) : null)),
  );
}

function groupByRow<T extends CsvProblem | DryRunWarning>(items: T[]): Map<number, T[]> {
  const byRow = new Map<number, T[]>();
  for (const item of items) if (item.row !== null) byRow.set(item.row, [...(byRow.get(item.row) ?? []), item]);
  return byRow;
}
