import { basename } from 'node:path';

/** The service answered with an error status; `body` is its problem JSON when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** No HTTP answer at all: refused, unresolvable, reset. One line for the user, no stack. */
export class ConnectionError extends Error {}

// Failures to open a connection, as opposed to losing one that was open.
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export type Api = ReturnType<typeof createApi>;

/** The service's HTTP API as the CLI uses it: JSON in, JSON or problem JSON out. */
export function createApi(baseUrl: string, apiKey: string | null) {
  const headers = (extra: Record<string, string> = {}) => ({
    accept: 'application/json, application/problem+json',
    ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
    ...extra,
  });

  async function send(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(`${baseUrl}${path}`, { ...init, headers: headers(init.headers as Record<string, string> | undefined) });
    } catch (error) {
      throw connectionError(baseUrl, error);
    }
  }

  async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await send(path, init);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw connectionError(baseUrl, error);
    }
    const body = parseJson(text);
    if (!response.ok) throw new ApiError(response.status, problemDetail(response, body), body);
    if (body === undefined) throw new ApiError(response.status, `the service answered ${response.status} without JSON`, text);
    return body as T;
  }

  return {
    baseUrl,
    get: <T>(path: string) => json<T>(path),
    post: <T>(path: string) => json<T>(path, { method: 'POST' }),
    /** POST /hospitals/bulk, asking for 202 at once so the batch can be followed live. */
    upload<T>(file: string, content: Uint8Array): Promise<T> {
      const form = new FormData();
      form.append('file', new Blob([content], { type: contentType(file) }), basename(file));
      return json<T>('/hospitals/bulk', { method: 'POST', body: form, headers: { prefer: 'respond-async' } });
    },
    /** Opens an event stream; the caller reads the body. */
    async events(path: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array>> {
      const response = await send(path, {
        headers: { accept: 'text/event-stream', ...(lastEventId === null ? {} : { 'last-event-id': lastEventId }) },
      });
      if (!response.ok || !response.body) {
        const body = parseJson(await response.text().catch(() => ''));
        throw new ApiError(response.status, problemDetail(response, body), body);
      }
      return response.body;
    },
  };
}

/** fetch hides the reason two or three causes deep (and in AggregateErrors): find its code. */
export function connectionError(baseUrl: string, error: unknown): ConnectionError {
  const code = errorCode(error);
  const verb = code !== null && CONNECT_CODES.has(code) ? 'cannot reach' : 'lost the connection to';
  const reason = code ?? innermostMessage(error);
  return new ConnectionError(`${verb} ${baseUrl} (${reason})`);
}

function errorCode(error: unknown): string | null {
  for (let current = error, depth = 0; current && depth < 6; depth += 1) {
    const { code, errors, cause } = current as { code?: unknown; errors?: unknown; cause?: unknown };
    if (typeof code === 'string') return code;
    current = Array.isArray(errors) && errors.length > 0 ? errors[0] : cause;
  }
  return null;
}

function innermostMessage(error: unknown): string {
  let current = error;
  while ((current as { cause?: unknown })?.cause instanceof Error) current = (current as { cause: Error }).cause;
  return current instanceof Error ? current.message : String(current);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The problem's `detail` in one line, or whatever the answer offers instead. */
function problemDetail(response: Response, body: unknown): string {
  const { detail, title } = (typeof body === 'object' && body !== null ? body : {}) as { detail?: unknown; title?: unknown };
  const text = typeof detail === 'string' ? detail : typeof title === 'string' ? title : response.statusText || 'error';
  return `${response.status} ${text.replace(/\s*\n\s*/g, ' ')}`;
}

/** The upload's content type by its name; the service reads a workbook by its bytes either way. */
export function contentType(file: string): string {
  return /\.xlsx$/i.test(file) ? 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' : 'text/csv';
}
