/**
 * Talking to the service (same origin). Every request carries `Authorization: Bearer <key>`
 * once an API key has been entered; a 401 asks the person for the key (kept in
 * sessionStorage only) and sends the request again.
 *
 * Live progress comes from GET /batches/:id/events. Without a key the browser's EventSource
 * reads it; EventSource cannot send headers, so with a key the same stream is read with
 * fetch() and a streaming body reader (resuming with Last-Event-ID if it drops).
 */
import type { BatchEvent, BatchReport, DirectoryEvent, RowEvent } from './types.js';

const KEY_STORAGE = 'hospital-bulk.api-key';

export class ApiError extends Error {
  constructor(
    message: string,
    /** null when the service could not be reached at all. */
    readonly status: number | null,
    readonly problem: Record<string, unknown> | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage disabled: the key lives only as long as this request loop.
  }
}

type KeyPrompt = (reason: string) => Promise<string>;
let keyPrompt: KeyPrompt | null = null;
let openPrompt: Promise<string> | null = null;

/** Registers the UI that asks for an API key; it resolves with the key the person entered. */
export function onKeyNeeded(prompt: KeyPrompt): void {
  keyPrompt = prompt;
}

function askForKey(reason: string): Promise<string> {
  if (!keyPrompt) return Promise.reject(new ApiError('This service needs an API key.', 401));
  // Requests refused at the same moment share one question.
  openPrompt ??= keyPrompt(reason).finally(() => {
    openPrompt = null;
  });
  return openPrompt;
}

/** fetch() with the API key, asking for a key (and trying again) when the service answers 401. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const key = storedKey();
    const headers = new Headers(init.headers);
    if (key) headers.set('Authorization', `Bearer ${key}`);
    let res: Response;
    try {
      res = await fetch(path, { ...init, headers });
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') throw error;
      throw new ApiError('The service could not be reached. Check the connection and try again.', null);
    }
    if (res.status !== 401) return res;
    await res.body?.cancel();
    // Another request may already have brought a new key: just send again with it.
    if (storedKey() !== key) continue;
    storeKey(null);
    storeKey(
      await askForKey(
        key
          ? 'That API key was not accepted. Check it and enter it again.'
          : 'This service asks for an API key. Enter the key you were given by whoever runs the service.',
      ),
    );
  }
}

/** The JSON answer, or an ApiError carrying the problem's `detail`. */
export async function getJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await request(path, { ...init, headers: { Accept: 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  if (!res.ok) throw await toApiError(res);
  return (await res.json()) as T;
}

export const postJson = <T>(path: string, init: RequestInit = {}) => getJson<T>(path, { ...init, method: 'POST' });

/** PATCH with a JSON body; the JSON answer, or an ApiError. */
export const patchJson = <T>(path: string, body: unknown) =>
  getJson<T>(path, { method: 'PATCH', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });

/** Reads an RFC 9457 problem document (or whatever the error body is) into an ApiError. */
export async function toApiError(res: Response): Promise<ApiError> {
  let problem: Record<string, unknown> | null = null;
  let text = '';
  try {
    text = await res.text();
    problem = JSON.parse(text) as Record<string, unknown>;
  } catch {
    problem = null;
  }
  const detail = typeof problem?.['detail'] === 'string' ? problem['detail'] : typeof problem?.['title'] === 'string' ? problem['title'] : null;
  const fallback = text.trim() && text.length < 300 && !text.trimStart().startsWith('<') ? text.trim() : `The service answered HTTP ${res.status}.`;
  return new ApiError(detail ?? fallback, res.status, problem);
}

export interface BatchStreamHandlers {
  row(event: RowEvent): void;
  batch(event: BatchEvent): void;
  /** A directory call is waiting before it tries again (until the next row or batch event). */
  directory?(event: DirectoryEvent): void;
  /** The final report; the stream is closed before this is called. */
  report(report: BatchReport): void;
  /** The stream cannot be followed (unknown batch, service gone for good). */
  failed(error: ApiError): void;
  /** The connection dropped and is being made again. */
  reconnecting?(): void;
}

const MAX_FAILED_CONNECTS = 5;

/** Follows a batch's event stream until its final report; returns a function that stops following. */
export function followBatch(batchId: string, handlers: BatchStreamHandlers): () => void {
  const url = `/batches/${encodeURIComponent(batchId)}/events`;
  let stopped = false;
  let lastEventId = '';
  let failedConnects = 0;
  let source: EventSource | null = null;
  let abort: AbortController | null = null;
  let timer: number | undefined;

  const stop = () => {
    stopped = true;
    window.clearTimeout(timer);
    source?.close();
    source = null;
    abort?.abort();
    abort = null;
  };

  const dispatch = (type: string, data: string, id: string) => {
    if (stopped) return;
    if (id) lastEventId = id;
    failedConnects = 0;
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return;
    }
    if (type === 'row') handlers.row(value as RowEvent);
    else if (type === 'batch') handlers.batch(value as BatchEvent);
    else if (type === 'directory') handlers.directory?.(value as DirectoryEvent);
    else if (type === 'report') {
      // The server ends the stream after the report; an open EventSource would reconnect.
      stop();
      handlers.report(value as BatchReport);
    }
  };

  const retryLater = (error: ApiError) => {
    if (stopped) return;
    failedConnects += 1;
    if (failedConnects >= MAX_FAILED_CONNECTS || error.status === 404 || error.status === 400) {
      stop();
      handlers.failed(error);
      return;
    }
    handlers.reconnecting?.();
    timer = window.setTimeout(start, 1000 * failedConnects);
  };

  const viaEventSource = () => {
    const es = new EventSource(url);
    source = es;
    for (const type of ['row', 'batch', 'directory', 'report']) {
      es.addEventListener(type, (event) => {
        const message = event as MessageEvent<string>;
        dispatch(type, message.data, message.lastEventId);
      });
    }
    es.addEventListener('error', () => {
      if (stopped || source !== es) return;
      // CONNECTING: the browser reconnects by itself (with Last-Event-ID).
      if (es.readyState !== EventSource.CLOSED) {
        handlers.reconnecting?.();
        return;
      }
      // CLOSED: the stream was refused, not dropped. Ask the API why: a 401 brings up the
      // API-key field, after which the stream is read with fetch() and the key.
      es.close();
      source = null;
      getJson<unknown>(`/batches/${encodeURIComponent(batchId)}`).then(
        () => retryLater(new ApiError('The progress stream could not be opened.', null)),
        (error: unknown) => retryLater(error instanceof ApiError ? error : new ApiError(String(error), null)),
      );
    });
  };

  const viaFetch = async () => {
    const controller = new AbortController();
    abort = controller;
    try {
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      if (lastEventId) headers['Last-Event-ID'] = lastEventId;
      const res = await request(url, { headers, signal: controller.signal, cache: 'no-store' });
      if (!res.ok || !res.body) throw await toApiError(res);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        buffer += value.replace(/\r\n?/g, '\n');
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = 'message';
          let id = '';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line === '' || line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const fieldValue = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') type = fieldValue;
            else if (field === 'data') data.push(fieldValue);
            else if (field === 'id') id = fieldValue;
          }
          if (data.length > 0) dispatch(type, data.join('\n'), id);
        }
      }
      // Ended before the report: the connection dropped; pick up after the last event.
      if (!stopped) retryLater(new ApiError('The progress stream ended early.', null));
    } catch (error) {
      if (stopped || controller.signal.aborted) return;
      retryLater(error instanceof ApiError ? error : new ApiError('The progress stream was interrupted.', null));
    }
  };

  function start() {
    if (stopped) return;
    if (storedKey() === null && typeof EventSource !== 'undefined') viaEventSource();
    else void viaFetch();
  }

  start();
  return stop;
}

/**
 * A link to a download. Without an API key it is a plain link; with one, the click fetches
 * the file with the key (a link cannot send headers) and hands it to the browser.
 */
export function wireDownload(link: HTMLAnchorElement): HTMLAnchorElement {
  link.addEventListener('click', (event) => {
    if (storedKey() === null) return;
    event.preventDefault();
    void (async () => {
      try {
        const res = await request(link.href);
        if (!res.ok) throw await toApiError(res);
        const blob = await res.blob();
        const name = /filename\*=UTF-8''([^;]+)/i.exec(res.headers.get('content-disposition') ?? '')?.[1];
        const objectUrl = URL.createObjectURL(blob);
        const save = document.createElement('a');
        save.href = objectUrl;
        save.download = name ? decodeURIComponent(name) : 'results.csv';
        document.body.append(save);
        save.click();
        save.remove();
        window.setTimeout(() => URL.revokeObjectURL(objectUrl), 10_000);
      } catch (error) {
        window.alert(error instanceof Error ? error.message : String(error));
      }
    })();
  });
  return link;
}
