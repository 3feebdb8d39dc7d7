import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import multer from 'multer';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';

/** Sends an RFC 9457 problem document. */
export function sendProblem(res: Response, error: AppError): void {
  if (error.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(error.retryAfterSeconds));
  res
    .status(error.status)
    .type('application/problem+json')
    .json({
      type: `urn:hospital-bulk:problem:${error.code}`,
      title: error.title,
      status: error.status,
      detail: error.message,
      ...error.extra,
    });
}

export const notFound: RequestHandler = (req) => {
  throw new AppError('not_found', `No route ${req.method} ${req.path}`);
};

// multer's limit codes, as the user should read them.
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
    return make ? make(maxUploadBytes) : new AppError('bad_request', error.message);
  }
  // body-parser and busboy errors carry the status they mean (malformed bodies are 400).
  const status = (error as { status?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new AppError('payload_too_large', 'The request body is too large.');
    const message = error instanceof Error && error.message ? error.message : 'Malformed request.';
    return new AppError('bad_request', `The request could not be read: ${message}`);
  }
  return new AppError('internal', 'Something went wrong on our side. The error was logged.', {}, { cause: error });
}
