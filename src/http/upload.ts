import type { RequestHandler } from 'express';
import multer from 'multer';
import { AppError } from '../errors.js';

// Room for the multipart boundaries and part headers around the file itself.
const MULTIPART_OVERHEAD_BYTES = 16 * 1024;

/**
 * Receives exactly one file in the multipart field `file`, in memory, refusing it as soon
 * as it passes `maxBytes`: a declared Content-Length that is too large is refused before
 * a byte is read, and a body without one is cut off by multer while it streams.
 */
export function receiveCsv(maxBytes: number): RequestHandler[] {
  const parse = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: maxBytes, files: 1, fields: 10, parts: 12, fieldSize: 1024, headerPairs: 50 },
  }).single('file');
  const checkLength: RequestHandler = (req, _res, next) => {
    if (Number(req.get('content-length') ?? 0) > maxBytes + MULTIPART_OVERHEAD_BYTES) {
      throw new AppError('payload_too_large', `The file is larger than the ${maxBytes} bytes allowed per upload.`);
    }
    if (!req.is('multipart/form-data')) {
      throw new AppError(
        'unsupported_media_type',
        'Send the CSV as multipart/form-data in the field "file" (curl -F "file=@hospitals.csv").',
      );
    }
    next();
  };
  const requireFile: RequestHandler = (req, _res, next) => {
    if (!req.file) throw new AppError('bad_request', 'No file received: send the CSV in the multipart field "file", with a file name (curl -F file=@hospitals.csv).');
    next();
  };
  return [checkLength, parse, requireFile];
}

/**
 * The uploaded file's name, for display only: never used as a path. Browsers send a bare
 * name, but a hand-made request can send anything (`../../etc/passwd`, control characters).
 */
export function displayName(original: string | undefined): string {
  const base = (original ?? '').split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 255);
  return clean === '' || clean === '.' || clean === '..' ? 'upload.csv' : clean;
}

/** The multipart field `sheet`: the worksheet of a workbook to read (the first when absent or blank). */
export function sheetField(body: unknown): string | null {
  const value = (body as Record<string, unknown> | undefined)?.['sheet'];
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}
