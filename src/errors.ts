/**
 * Every error a user can act on is an AppError: a code from this table, the HTTP status
 * it maps to, and a message written for the person who sent the request.
 * The domain throws these; one middleware (src/http/problem.ts) turns them into RFC 9457
 * problem JSON. Anything that is not an AppError is a bug and answers 500.
 */
const catalogue = {
  bad_request: { status: 400, title: 'Bad request' },
  invalid_csv: { status: 400, title: 'The CSV file is not valid' },
  unauthorized: { status: 401, title: 'API key required' },
  not_found: { status: 404, title: 'Not found' },
  request_timeout: { status: 408, title: 'Request not received in time' },
  conflict: { status: 409, title: 'Conflict' },
  payload_too_large: { status: 413, title: 'Upload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported file type' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused with a different file' },
  rate_limited: { status: 429, title: 'Too many uploads', retryAfterSeconds: 60 },
  headers_too_large: { status: 431, title: 'Request headers too large' },
  directory_unavailable: { status: 503, title: 'Hospital Directory unavailable', retryAfterSeconds: 60 },
  shutting_down: { status: 503, title: 'Service shutting down', retryAfterSeconds: 30 },
  overloaded: { status: 503, title: 'Too many batches running', retryAfterSeconds: 30 },
  internal: { status: 500, title: 'Internal server error' },
} as const satisfies Record<string, { status: number; title: string; retryAfterSeconds?: number }>;

export type ErrorCode = keyof typeof catalogue;

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly status: number;
  readonly title: string;
  /** For "come back later" answers: the Retry-After header, in seconds. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra members for the problem JSON body, e.g. `{ errors: [...] }` or `{ batch_id }`. */
    readonly extra: Record<string, unknown> = {},
    /** `retryAfterSeconds` replaces the code's usual wait when the exact one is known (a rate limit's reset). */
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options);
    const entry: { status: number; title: string; retryAfterSeconds?: number } = catalogue[code];
    this.status = entry.status;
    this.title = entry.title;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? entry.retryAfterSeconds;
  }
}

/** One problem found in an uploaded CSV, reported to the user all at once. */
export interface CsvProblem {
  /** Data row number, 1-based (the header is row 0); null for file-level problems. */
  row: number | null;
  /** Physical line in the file where the problem is, 1-based; null when not tied to a line. */
  line: number | null;
  /** Column name, when the problem is about one column. */
  column: string | null;
  message: string;
}
