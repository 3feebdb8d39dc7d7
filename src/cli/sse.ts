import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, ConnectionError, connectionError, type Api } from './api.js';
import { plainHint, type Hint } from './hints.js';

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

/**
 * Reads a text/event-stream body (the parts of the WHATWG format the service uses: id,
 * event, multi-line data, retry, comments; any line ending). `onRetry` gets the server's
 * reconnection delay.
 */
export async function* readSse(body: AsyncIterable<Uint8Array>, onRetry: (ms: number) => void = () => {}): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let lastId: string | null = null;
  let type = '';
  let data: string[] = [];
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    // A chunk ending in \r may be half of a \r\n: keep it for the next chunk.
    const usable = buffer.endsWith('\r') ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, usable).split(/\r\n|\r|\n/);
    buffer = (lines.pop() ?? '') + buffer.slice(usable);
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0) yield { id: lastId, event: type || 'message', data: data.join('\n') };
        type = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && !value.includes('\0')) lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value));
    }
  }
}

export interface FollowOptions {
  /** Reconnections in a row without receiving an event before giving up. */
  maxReconnects?: number;
  /** Delay before reconnecting until the server sends its own `retry`. */
  retryMs?: number;
  /** Builds the `hospital-bulk show` hint printed when the stream is lost. */
  hint?: Hint;
}

/**
 * Follows a batch's event stream until its `report` event and returns that event's data,
 * passing every other event to `onEvent`. A stream that drops (or ends) before the report
 * is reopened with Last-Event-ID, so nothing is seen twice or missed.
 */
export async function followEvents(api: Api, batchId: string, onEvent: (event: SseEvent) => void, options: FollowOptions = {}): Promise<string> {
  const maxReconnects = options.maxReconnects ?? 5;
  let retryMs = options.retryMs ?? 1000;
  let lastId: string | null = null;
  let failures = 0;
  for (;;) {
    let lost: unknown;
    try {
      const body = await api.events(`/batches/${encodeURIComponent(batchId)}/events`, lastId);
      for await (const event of readSse(body, (ms) => (retryMs = ms))) {
        lastId = event.id ?? lastId;
        failures = 0;
        if (event.event === 'report') return event.data;
        onEvent(event);
      }
      lost = new Error('the event stream ended before the report');
    } catch (error) {
      // A 4xx will not get better by asking again; anything else is the connection.
      if (error instanceof ApiError && error.status < 500) throw error;
      lost = error;
    }
    failures += 1;
    if (failures > maxReconnects) throw streamLost(api.baseUrl, batchId, lost, options.hint ?? plainHint);
    await sleep(retryMs);
  }
}

function streamLost(baseUrl: string, batchId: string, error: unknown, hint: Hint): Error {
  const next = `; the batch goes on: ${hint(['show', batchId])}`;
  if (error instanceof ApiError) return new ApiError(error.status, `${error.message}${next}`, error.body);
  const cause = error instanceof ConnectionError ? error : connectionError(baseUrl, error);
  return new ConnectionError(`${cause.message}${next}`);
}

/** The id of the last event a finished batch has recorded: where the events of its next run will start. */
export async function lastEventId(api: Api, batchId: string): Promise<string | null> {
  const body = await api.events(`/batches/${encodeURIComponent(batchId)}/events`, null);
  let last: string | null = null;
  for await (const event of readSse(body)) {
    last = event.id ?? last;
    if (event.event === 'report') break;
  }
  return last;
}

/**
 * Shows the events of a run that another request drives (a resume answers only when it is
 * over): every event recorded after `fromId` goes to `onEvent` while `run` is pending, then
 * the rest are read once more, so the last rows are seen too. Returns what `run` returns.
 * A failing stream only stops the progress: the run's own answer is what counts.
 */
export async function watchRun<T>(api: Api, batchId: string, fromId: string | null, onEvent: (event: SseEvent) => void, run: Promise<T>): Promise<T> {
  const path = `/batches/${encodeURIComponent(batchId)}/events`;
  let lastId = fromId;
  let seen = 0;
  const read = async (signal?: AbortSignal): Promise<'report' | 'ended'> => {
    for await (const event of readSse(await api.events(path, lastId, signal))) {
      lastId = event.id ?? lastId;
      if (event.event === 'report') return 'report';
      seen += 1;
      onEvent(event);
    }
    return 'ended';
  };
  const stop = new AbortController();
  const watching = (async () => {
    for (;;) {
      const end = await read(stop.signal);
      // The run's events ended with its report: nothing more to watch.
      if (end === 'report' && seen > 0) return;
      // A report before any event: the stream opened before the resume claimed the batch
      // (still finished then), so look again at once. A dropped stream waits a second.
      await sleep(end === 'report' ? 50 : 1000, undefined, { signal: stop.signal });
    }
  })().catch(() => {});
  let result: T;
  try {
    result = await run;
  } finally {
    stop.abort();
    await watching;
  }
  // The run answered, so the batch is finished: this stream replays what was missed and ends.
  await read().catch(() => {});
  return result;
}
