import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import multer from 'multer';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';
import { answerThenDrain, hasUnreadBody } from './drain.js';

/** The RFC 9457 document for an error, as sent by the app and by the server's client-error path. */
export function problemDocument(error: AppError): Record<string, unknown> {
  return {
    type: `urn:hospital-bulk:problem:${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    ...error.extra,
  };
}

/**
 * Sends an RFC 9457 problem document. A refusal given before the request body was read
 * (401, 413, 429…) lingers to read it, so that clients that write first and read later
 * receive it (src/http/drain.ts).
 */
export function sendProblem(res: Response, error: AppError): void {
  // For the refusal counter (src/http/ops.ts).
  res.locals.problemCode = error.code;
  if (error.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(error.retryAfterSeconds));
  res.status(error.status).type('application/problem+json');
  if (hasUnreadBody(res.req)) {
    answerThenDrain(res.req, res, JSON.stringify(problemDocument(error)));
    return;
  }
  res.json(problemDocument(error));
}

export const notFound: RequestHandler = (req) => {
  throw new AppError('not_found', `No route ${req.method} ${req.path}`);
};

const oneFile = 'send the CSV as the one file of a multipart/form-data body, in the field "file" (curl -F "file=@hospitals.csv")';

// multer's codes, as the user should read them.
const multerProblems: Record<string, (limit: number) => AppError> = {
  LIMIT_FILE_SIZE: (limit) =>
    new AppError('payload_too_large', `The file is larger than the ${limit} bytes allowed per upload.`),
  LIMIT_FILE_COUNT: () => new AppError('bad_request', 'Send exactly one file, in the multipart field "file".'),
  LIMIT_UNEXPECTED_FILE: () =>
    new AppError('bad_request', 'Send the CSV in the multipart field "file" (exactly one file).'),
  LIMIT_PART_COUNT: () => new AppError('bad_request', 'Too many parts in the multipart body.'),
  LIMIT_FIELD_COUNT: () => new AppError('bad_request', 'Too many fields in the multipart body.'),
  LIMIT_FIELD_VALUE: () => new AppError('bad_request', 'A multipart field is too long.'),
  LIMIT_FIELD_KEY: () => new AppError('bad_request', 'A multipart field name is too long.'),
};

/**
 * busboy's errors carry no code, only these messages (busboy 1.6, lib/types/multipart.js and
 * lib/index.js); multer adds the last three when the connection fails mid-body.
 */
const busboyProblems: [RegExp, string][] = [
  [/^Multipart: Boundary not found$/, 'The Content-Type multipart/form-data has no boundary parameter, so the body cannot be split into parts'],
  [/^Malformed part header$/, 'A part header of the multipart body is malformed or longer than 16 KB (for example a very long file name)'],
  [/^Unexpected end of form$/, 'The multipart body ended before its closing boundary: it is empty, cut off, or its boundary never appears'],
  [/^Unexpected end of file$/, 'The multipart body was cut off in the middle of the file'],
  [/^Malformed content type$|^Missing Content-Type$|^Unsupported content type/, 'The Content-Type header is not a valid multipart/form-data type'],
  [/^Request (aborted|closed|error)$/, 'The connection closed before the whole request arrived'],
];

/** Maps whatever was thrown to problem JSON; the only place errors become HTTP. */
export function errorHandler(logger: Logger, options: { maxUploadBytes: number }): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    const problem = toAppError(error, options.maxUploadBytes);
    if (problem.status >= 500) {
      logger.error('request failed', {
        request_id: res.locals.requestId,
        method: req.method,
        path: req.path,
        code: problem.code,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    }
    sendProblem(res, problem);
  };
}

function toAppError(error: unknown, maxUploadBytes: number): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof multer.MulterError) {
    const make = multerProblems[error.code];
    return make ? make(maxUploadBytes) : new AppError('bad_request', `The multipart body could not be read; ${oneFile}.`);
  }
  const message = error instanceof Error ? error.message : '';
  const known = busboyProblems.find(([pattern]) => pattern.test(message));
  if (known) return new AppError('bad_request', `${known[1]}; ${oneFile}.`);
  // body-parser errors carry the status they mean (malformed bodies are 400).
  const status = (error as { status?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new AppError('payload_too_large', 'The request body is too large.');
    return new AppError('bad_request', `The request could not be read: ${message || 'malformed request'}.`);
  }
  return new AppError('internal', 'Something went wrong on our side. The error was logged.', {}, { cause: error });
}
