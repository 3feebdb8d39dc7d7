import type { BatchReport, BatchSummary, Progress } from '../http/presenter.js';
import type { CsvProblem } from '../errors.js';
import { plainHint, type Hint } from './hints.js';
import type { DirectoryEvent } from '../http/schemas.js';
export type Cell = string | number | boolean | null | undefined;

const NAME_WIDTH = 32;
const BAR_WIDTH = 20;

/** Columns padded to their widest cell; the last column is not padded (no trailing blanks). */
export function table(headers: string[], rows: Cell[][]): string {
  const cells = rows.map((row) => row.map(text));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line)].join('\n') + '\n';
}

const text = (cell: Cell) => (cell === null || cell === undefined ? '-' : typeof cell === 'boolean' ? (cell ? 'yes' : 'no') : String(cell));

/** Long names would push every other column off the screen. */
export function truncate(value: string, width = NAME_WIDTH): string {
  return value.length <= width ? value : `${value.slice(0, width - 1)}…`;
}

/** Seconds as m:ss (h:mm:ss past an hour). */
export function clock(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`;
}

export interface BarState {
  done: number;
  failed: number;
  total: number;
  elapsedSeconds: number;
  etaSeconds: number | null;
}

/** `[#########-----------] 9/20  done 8  failed 1  elapsed 0:42  eta 0:51` */
export function progressBar({ done, failed, total, elapsedSeconds, etaSeconds }: BarState): string {
  const finished = done + failed;
  // Rounded down: on a big file the bar is full only when every row is (44 of 45 is not).
  const filled = total === 0 ? BAR_WIDTH : Math.min(BAR_WIDTH, Math.floor((finished / total) * BAR_WIDTH));
  const bar = `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}`;
  const eta = etaSeconds === null ? '-:--' : clock(etaSeconds);
  return `[${bar}] ${finished}/${total}  done ${done}  failed ${failed}  elapsed ${clock(elapsedSeconds)}  eta ${eta}`;
}

/**
 * A `directory` event, as the page says it: "the directory answered 503; trying again
 * (attempt 2) in 4 s", "waiting for the directory's rate limit: next try in 38 s".
 */
export function directoryWaitText(event: DirectoryEvent, seconds: number): string {
  const when = seconds > 0 ? `in ${seconds} s` : 'now';
  if (event.reason === 'rate_limited') return `waiting for the directory's rate limit: next try ${when}`;
  const what = event.status === null ? `the directory did not answer (${event.message})` : `the directory answered ${event.status}`;
  return `${what}; trying again (attempt ${event.attempt + 1}) ${when}`;
}

export const barState = (progress: Progress, total: number): BarState => ({
  done: progress.done,
  failed: progress.failed,
  total,
  elapsedSeconds: progress.elapsed_seconds,
  etaSeconds: progress.eta_seconds,
});

/** One of the directory batches a file over 20 rows is created as (the report's `directory_batches`). */
type DirectoryBatch = NonNullable<BatchReport['directory_batches']>[number];

/**
 * The per-row table, the directory batches of a split upload, then the summary; a running
 * batch (GET /batches/:id) leads with its progress.
 */
export function reportText(report: BatchReport, hint: Hint = plainHint): string {
  const rows = report.hospitals.map((h) => [h.row, h.hospital_id, truncate(h.name), h.status, h.attempts, h.error_message]);
  const progress = report.progress ? `progress ${progressBar(barState(report.progress, report.total_hospitals))}\n\n` : '';
  const split = report.directory_batches && report.directory_batches.length > 0 ? `\n${directoryBatchesText(report.directory_batches)}` : '';
  return `${progress}${table(['row', 'hospital id', 'name', 'status', 'attempts', 'error'], rows)}${split}\n${summaryText(report, hint)}`;
}

/** `directory batch  rows   activated` table, in file order. */
export function directoryBatchesText(batches: DirectoryBatch[]): string {
  return table(
    ['directory batch', 'rows', 'activated'],
    batches.map((batch) => [batch.id, `${batch.first_row}-${batch.last_row}`, batch.activated]),
  );
}

export function summaryText(report: BatchReport, hint: Hint = plainHint): string {
  const seconds = report.processing_time_seconds;
  const time = seconds === null ? '-' : seconds < 60 ? `${seconds.toFixed(1)} s` : clock(seconds);
  const lines = [
    `batch ${report.batch_id}  ${report.status}  ${report.processed_hospitals} created, ${report.failed_hospitals} failed of ${report.total_hospitals}  activated ${text(report.batch_activated)}  time ${time}`,
  ];
  if (report.error) lines.push(`error: ${report.error}`);
  if (report.notice) lines.push(`notice: ${report.notice}`);
  if (report.status === 'failed' || report.status === 'interrupted' || report.status === 'cancelled') {
    lines.push(`next: ${hint(['resume', report.batch_id])}   or   ${hint(['rollback', report.batch_id])}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The history table; `limit` is repeated in the hint so the next page has the same size. */
export function batchesText(batches: BatchSummary[], nextCursor: string | null, hint: Hint = plainHint, limit: number | null = null): string {
  if (batches.length === 0) return 'No batches yet.\n';
  const rows = batches.map((b) => [
    b.batch_id,
    truncate(b.filename, 28),
    b.status,
    `${b.processed_hospitals}/${b.total_hospitals}`,
    b.batch_activated,
    timestamp(b.created_at),
  ]);
  const next = ['batches', ...(limit === null ? [] : ['--limit', String(limit)]), '--cursor', nextCursor ?? ''];
  const more = nextCursor === null ? '' : `\nmore: ${hint(next)}\n`;
  return table(['batch id', 'file', 'status', 'created', 'activated', 'created at'], rows) + more;
}

/** ISO time without the milliseconds, readable in a column: 2026-11-23 01:59:59Z. */
const timestamp = (iso: string | null) => (iso === null ? null : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

/** The CSV's problems by data row, the file line beside it; the message does not repeat either. */
export function problemsText(problems: CsvProblem[]): string {
  const rows = problems.map((p) => [p.row, p.line, p.column, p.message.replace(/^(Line|Row) \d+: /, '')]);
  return table(['row', 'line', 'column', 'message'], rows);
}

export interface Warning {
  kind: string;
  row: number | null;
  message: string;
}

/** One line per warning, as the dry run words it. */
export const warningsText = (warnings: Warning[]): string => warnings.map((w) => `warning: ${w.message}\n`).join('');
