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

/** Something answered, but not the way hospital-bulk does: a wrong --url, or a proxy in front of it. */
export class ForeignServiceError extends Error {}

// Failures to open a connection, as opposed to losing one that was open.
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

// Every error the service sends is problem JSON with a type of its own (src/http/problem.ts).
const OUR_PROBLEM_TYPE = 'urn:hospital-bulk:problem:';

/** Whether a successful answer has the shape the command expects. */
export type Shape = (body: Record<string, unknown>) => boolean;

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
      if (init.signal?.aborted) throw error;
      throw connectionError(baseUrl, error);
    }
  }

  async function json<T>(path: string, shape: Shape, init: RequestInit = {}): Promise<T> {
    const response = await send(path, init);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw connectionError(baseUrl, error);
    }
    const body = parseJson(text);
    if (!response.ok) throw errorAnswer(baseUrl, `${init.method ?? 'GET'} ${path}`, response, body);
    if (!isObject(body) || !shape(body)) throw foreign(baseUrl, `${init.method ?? 'GET'} ${path}`, response, 'an answer of another shape');
    return body as T;
  }

  const form = (file: string, content: Uint8Array) => {
    const data = new FormData();
    data.append('file', new Blob([content], { type: contentType(file) }), basename(file));
    return data;
  };

  return {
    baseUrl,
    get: <T>(path: string, shape: Shape) => json<T>(path, shape),
    post: <T>(path: string, shape: Shape) => json<T>(path, shape, { method: 'POST' }),
    /** POST /hospitals/bulk, asking for 202 at once so the batch can be followed live. */
    upload<T>(file: string, content: Uint8Array, shape: Shape): Promise<T> {
      return json<T>('/hospitals/bulk', shape, { method: 'POST', body: form(file, content), headers: { prefer: 'respond-async' } });
    },
    /** POST /hospitals/bulk/validate: the dry run, nothing created or recorded. */
    validate<T>(file: string, content: Uint8Array, shape: Shape): Promise<T> {
      return json<T>('/hospitals/bulk/validate', shape, { method: 'POST', body: form(file, content) });
    },
    /** Opens an event stream; the caller reads the body. */
    async events(path: string, lastEventId: string | null, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
      const response = await send(path, {
        headers: { accept: 'text/event-stream', ...(lastEventId === null ? {} : { 'last-event-id': lastEventId }) },
        ...(signal ? { signal } : {}),
      });
      if (!response.ok || !response.body) {
        throw errorAnswer(baseUrl, `GET ${path}`, response, parseJson(await response.text().catch(() => '')));
      }
      if (!/^text\/event-stream\b/i.test(response.headers.get('content-type') ?? '')) {
        await response.body.cancel().catch(() => {});
        throw foreign(baseUrl, `GET ${path}`, response, 'no event stream');
      }
      return response.body;
    },
  };
}

/** An error status: the service's own problem JSON becomes an ApiError; anything else was not the service. */
function errorAnswer(baseUrl: string, request: string, response: Response, body: unknown): Error {
  const type = isObject(body) ? body.type : undefined;
  if (typeof type === 'string' && type.startsWith(OUR_PROBLEM_TYPE)) return new ApiError(response.status, problemDetail(response, body), body);
  return foreign(baseUrl, request, response, null);
}

function foreign(baseUrl: string, request: string, response: Response, what: string | null): ForeignServiceError {
  const type = (response.headers.get('content-type') ?? 'no content type').split(';')[0];
  const answer = `${request} answered ${response.status}${what ? ` with ${what}` : ''} (${type})`;
  // A gateway error page comes from whatever stands in front of the service (Render's proxy while it deploys or sleeps).
  if ([502, 503, 504].includes(response.status) && what === null) {
    return new ForeignServiceError(`${baseUrl} did not answer as hospital-bulk: ${answer}, probably from a proxy in front of a service that is down or starting; try again in a minute`);
  }
  return new ForeignServiceError(`${baseUrl} does not look like a hospital-bulk service: ${answer}; check --url`);
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

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The problem's `detail` in one line, or whatever the answer offers instead. */
function problemDetail(response: Response, body: unknown): string {
  const { detail, title } = (isObject(body) ? body : {}) as { detail?: unknown; title?: unknown };
  const text = typeof detail === 'string' ? detail : typeof title === 'string' ? title : response.statusText || 'error';
  return `${response.status} ${text.replace(/\s*\n\s*/g, ' ')}`;
}

/** The upload's content type by its name; the service reads a workbook by its bytes either way. */
export function contentType(file: string): string {
  return /\.xlsx$/i.test(file) ? 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' : 'text/csv';
}
