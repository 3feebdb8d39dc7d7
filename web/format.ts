/** Words and numbers as operations staff read them. */
import { h } from './dom.js';
import type { BatchStatus, CsvProblem, RowStatus } from './types.js';

export const BATCH_STATUS_LABEL: Record<BatchStatus, string> = {
  pending: 'Waiting to start',
  processing: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  interrupted: 'Interrupted',
  rolled_back: 'Rolled back',
  cancelled: 'Cancelled',
};

export const ROW_STATUS_LABEL: Record<RowStatus, string> = {
  pending: 'Waiting',
  creating: 'Sending…',
  created: 'Created',
  created_and_activated: 'Created and activated',
  failed: 'Failed',
  unknown: 'Unknown',
  deleted: 'Deleted',
};

const TONE: Record<BatchStatus | RowStatus, 'ok' | 'bad' | 'warn' | 'busy' | 'muted'> = {
  completed: 'ok',
  created_and_activated: 'ok',
  created: 'ok',
  failed: 'bad',
  unknown: 'warn',
  interrupted: 'warn',
  pending: 'muted',
  processing: 'busy',
  creating: 'busy',
  rolled_back: 'muted',
  cancelled: 'warn',
  deleted: 'muted',
};

export function batchBadge(status: BatchStatus): HTMLSpanElement {
  return h('span', { class: `badge badge-${TONE[status]}`, 'data-status': status }, BATCH_STATUS_LABEL[status] ?? status);
}

export function rowBadge(status: RowStatus): HTMLSpanElement {
  return h('span', { class: `badge badge-${TONE[status]}`, 'data-status': status }, ROW_STATUS_LABEL[status] ?? status);
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** 0.8 s, 12 s, 3 min 4 s, 1 h 2 min. */
export function duration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A `<time>` with the machine-readable instant and the local, human one. */
export function timeElement(iso: string | null): HTMLElement | string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return h('time', { datetime: iso, title: date.toISOString() }, dateTime.format(date));
}

/** Seconds between two ISO instants, or null. */
export function secondsBetween(from: string | null, to: string | null): number | null {
  if (!from || !to) return null;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : null;
}

/** A row's status badge; a row rolled back before it was ever created says so. */
export function rowOutcomeBadge(status: RowStatus, hospitalId: number | null): HTMLSpanElement {
  if (status === 'deleted' && hospitalId === null) {
    return h('span', { class: `badge badge-${TONE.deleted}`, 'data-status': status, 'data-outcome': 'not_created' }, 'Not created');
  }
  return rowBadge(status);
}

/** "1, 3, 4" for a few row numbers. */
export const rowList = (rows: number[]) => `${rows.length === 1 ? 'Row' : 'Rows'} ${rows.join(', ')}`;

/**
 * A CSV problem in the page's one numbering: data rows ("Row 3: name is required"), with
 * the file's line as a detail. The service words row problems by line ("Line 4: …"), so
 * that prefix is re-worded here; file-level problems keep their words.
 */
export function problemText(problem: CsvProblem): { text: string; detail: string | null } {
  const detail = problem.line === null ? null : `line ${problem.line} of the file`;
  if (problem.row === null) return { text: problem.message, detail: problem.line === null || /^Line \d/.test(problem.message) ? null : detail };
  const prefix = `Line ${problem.line ?? ''}`;
  let text = `Row ${problem.row}: ${problem.message}`;
  if (problem.line !== null && problem.message.startsWith(`${prefix}: `)) text = `Row ${problem.row}: ${problem.message.slice(prefix.length + 2)}`;
  else if (problem.line !== null && problem.message.startsWith(`${prefix} `)) text = `Row ${problem.row} ${problem.message.slice(prefix.length + 1)}`;
  return { text, detail };
}

/** Short enough to tell batches apart at a glance; the full id is on the batch page. */
export const shortId = (batchId: string) => batchId.slice(0, 8);

const dateTimeSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** Like timeElement, to the second: two uploads of one file in the same minute stay apart. */
export function preciseTimeElement(iso: string): HTMLElement | string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return h('time', { datetime: iso, title: date.toISOString() }, dateTimeSeconds.format(date));
}
