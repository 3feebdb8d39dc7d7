import type { Progress } from '../http/presenter.js';
import type { DirectoryEvent } from '../http/schemas.js';
import { directoryWaitText, progressBar, type BarState } from './render.js';
import type { SseEvent } from './sse.js';

/** A `row` event's data, as src/bulk/process.ts records it (progress is absent on adopted rows). */
interface RowEvent {
  row: number;
  status: string;
  hospital_id: number | null;
  error_message: string | null;
  attempts: number;
  progress?: Progress;
}

export interface ProgressView {
  onEvent(event: SseEvent): void;
  /** Leaves the last state on screen and stops redrawing. */
  stop(): void;
}

const CREATED = new Set(['created', 'created_and_activated']);
const FAILED = new Set(['failed', 'unknown']);

/**
 * What stderr shows while a batch runs: on a terminal a bar redrawn in place (ticking every
 * second, since a real create takes ~5 s), elsewhere one plain line per row, for logs.
 */
export function createProgressView(stream: NodeJS.WriteStream, total: number, earlier: { row: number; status: string }[] = []): ProgressView {
  // A resumed batch starts with the rows its earlier runs created; failed ones are tried again.
  const statuses = new Map<number, string>(earlier.filter((row) => CREATED.has(row.status)).map((row) => [row.row, row.status]));
  let latest: { progress: Progress; at: number } | null = null;
  // The directory trouble shown after the bar until the next row or batch event.
  let wait: { event: DirectoryEvent; until: number } | null = null;
  const startedAt = Date.now();
  const waitText = (now: number) => (wait ? directoryWaitText(wait.event, Math.max(0, Math.ceil((wait.until - now) / 1000))) : '');

  // Adopted rows come without server progress: count them from the row events seen.
  const state = (now: number): BarState => {
    const since = latest ? (now - latest.at) / 1000 : 0;
    const tally = [...statuses.values()];
    return {
      done: latest?.progress.done ?? tally.filter((s) => CREATED.has(s)).length,
      failed: latest?.progress.failed ?? tally.filter((s) => FAILED.has(s)).length,
      total,
      elapsedSeconds: latest ? latest.progress.elapsed_seconds + since : (now - startedAt) / 1000,
      etaSeconds: latest === null || latest.progress.eta_seconds === null ? null : Math.max(0, latest.progress.eta_seconds - since),
    };
  };
  /** Notes a `directory` event (true when it was one); a `row` or `batch` event clears it. */
  const recordWait = (event: SseEvent): boolean => {
    if (event.event === 'row' || event.event === 'batch') wait = null;
    if (event.event !== 'directory') return false;
    const data = parseWait(event.data);
    if (data) wait = { event: data, until: Date.now() + data.retry_in_seconds * 1000 };
    return data !== null;
  };
  const record = (event: SseEvent): RowEvent | null => {
    if (recordWait(event) || event.event !== 'row') return null;
    const row = parse(event.data);
    if (!row) return null;
    statuses.set(row.row, row.status);
    if (row.progress) latest = { progress: row.progress, at: Date.now() };
    return row;
  };

  if (!stream.isTTY) {
    return {
      onEvent(event) {
        const row = record(event);
        const activated = event.event === 'batch' ? directoryBatchActivated(event.data) : null;
        if (row) stream.write(`${rowLine(row, state(Date.now()))}\n`);
        else if (activated) stream.write(`directory batch ${activated} activated\n`);
        else if (event.event === 'directory' && wait) stream.write(`${wait.event.row === null ? '' : `row ${wait.event.row}: `}${waitText(Date.now())}\n`);
      },
      stop() {},
    };
  }
  const draw = () => {
    const now = Date.now();
    stream.write(`\r${progressBar(state(now))}${wait ? `  ${waitText(now)}` : ''}\x1b[K`);
  };
  const ticker = setInterval(draw, 1000).unref();
  let stopped = false;
  draw();
  return {
    onEvent(event) {
      if ((record(event) || event.event === 'directory') && !stopped) draw();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(ticker);
      draw();
      // The last state stays on screen, set apart from the report that follows.
      stream.write('\n\n');
    },
  };
}

function rowLine(row: RowEvent, state: BarState): string {
  const position = `[${state.done + state.failed}/${state.total}] row ${row.row}`;
  if (CREATED.has(row.status)) return `${position} created (hospital ${row.hospital_id ?? '?'}, attempts ${row.attempts})`;
  return `${position} ${row.status}: ${row.error_message ?? 'no reason given'}`;
}

/** A split upload's `batch` event for one directory batch's activation: its id; otherwise null. */
function directoryBatchActivated(data: string): string | null {
  try {
    const value = JSON.parse(data) as { directory_batch_id?: unknown; directory_batch_activated?: unknown };
    return typeof value.directory_batch_id === 'string' && value.directory_batch_activated === true ? value.directory_batch_id : null;
  } catch {
    return null;
  }
}

function parseWait(data: string): DirectoryEvent | null {
  try {
    const value = JSON.parse(data) as Partial<DirectoryEvent>;
    return typeof value.attempt === 'number' && typeof value.retry_in_seconds === 'number' ? (value as DirectoryEvent) : null;
  } catch {
    return null;
  }
}

function parse(data: string): RowEvent | null {
  try {
    const value = JSON.parse(data) as Partial<RowEvent>;
    return typeof value.row === 'number' && typeof value.status === 'string' ? (value as RowEvent) : null;
  } catch {
    return null;
  }
}
