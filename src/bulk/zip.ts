import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';

const inflate = promisify(inflateRaw);
import { AppError } from '../errors.js';

/**
 * Limits on a zip (an .xlsx workbook) checked from its central directory before anything
 * is inflated, and again while inflating: a declared size can lie, the inflater cannot.
 */
export interface ZipLimits {
  /** Entries in the archive. */
  maxEntries: number;
  /** Declared uncompressed bytes of all entries together. */
  maxTotalBytes: number;
  /** Uncompressed bytes of one entry that is read. */
  maxEntryBytes: number;
}

export interface ZipEntry {
  name: string;
  method: number;
  encrypted: boolean;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;

/** The entries a zip declares, by name, after checking the declared counts and sizes against the limits. */
export function listZip(zip: Buffer, limits: ZipLimits): Map<string, ZipEntry> {
  const eocd = findEndOfCentralDirectory(zip);
  const total = zip.readUInt16LE(eocd + 10);
  const size = zip.readUInt32LE(eocd + 12);
  const offset = zip.readUInt32LE(eocd + 16);
  if (total === 0xffff || offset === 0xffffffff) throw damaged('it uses ZIP64, which workbooks of this size never need');
  if (total > limits.maxEntries) {
    throw new AppError('payload_too_large', `The workbook holds ${total} parts; at most ${limits.maxEntries} are read. Save the hospitals alone in a new workbook.`);
  }
  if (offset + size > eocd) throw damaged('its table of contents points outside the file');
  const entries = new Map<string, ZipEntry>();
  let declared = 0;
  let at = offset;
  for (let i = 0; i < total; i++) {
    if (at + 46 > eocd || zip.readUInt32LE(at) !== CENTRAL_SIGNATURE) throw damaged('its table of contents is cut short');
    const nameLength = zip.readUInt16LE(at + 28);
    const entry: ZipEntry = {
      name: zip.toString('utf8', at + 46, at + 46 + nameLength).replace(/^\/+/, ''),
      encrypted: (zip.readUInt16LE(at + 8) & 1) === 1,
      method: zip.readUInt16LE(at + 10),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localHeaderOffset: zip.readUInt32LE(at + 42),
    };
    declared += entry.size;
    if (declared > limits.maxTotalBytes) {
      throw new AppError(
        'payload_too_large',
        `The workbook unpacks to more than ${limits.maxTotalBytes} bytes; at most that much is read. Save the hospitals alone in a new workbook or as CSV.`,
      );
    }
    entries.set(entry.name.toLowerCase(), entry);
    at += 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}

/**
 * The bytes of one entry, inflated with a hard cap: never more than its declared size (itself
 * already within the limit), so a lying entry stops the inflater instead of filling memory.
 * Inflating runs on libuv's thread pool, off the event loop.
 */
export async function readZipEntry(zip: Buffer, entry: ZipEntry, limits: ZipLimits): Promise<Buffer> {
  if (entry.encrypted) throw new AppError('bad_request', 'The workbook is encrypted (password-protected). Remove the password in Excel and upload it again.');
  if (entry.size > limits.maxEntryBytes) {
    throw new AppError('payload_too_large', `A part of the workbook unpacks to ${entry.size} bytes; at most ${limits.maxEntryBytes} are read. Save the hospitals alone in a new workbook or as CSV.`);
  }
  const at = entry.localHeaderOffset;
  if (at + 30 > zip.length || zip.readUInt32LE(at) !== LOCAL_SIGNATURE) throw damaged(`its part ${entry.name} is missing`);
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const data = zip.subarray(start, start + entry.compressedSize);
  if (data.length !== entry.compressedSize) throw damaged(`its part ${entry.name} is cut short`);
  let bytes: Buffer;
  if (entry.method === 0) bytes = data;
  else if (entry.method === 8) {
    try {
      // maxOutputLength makes zlib stop (and throw) as soon as the output passes it.
      bytes = entry.size === 0 ? Buffer.alloc(0) : await inflate(data, { maxOutputLength: entry.size });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new AppError('payload_too_large', `A part of the workbook unpacks to more than it declares (${entry.name}): it is refused as a zip bomb.`);
      }
      throw damaged(`its part ${entry.name} cannot be unpacked`);
    }
  } else throw damaged(`its part ${entry.name} uses a compression method (${entry.method}) that Excel does not write`);
  if (bytes.length !== entry.size) throw damaged(`its part ${entry.name} is not the size it declares`);
  return bytes;
}

function findEndOfCentralDirectory(zip: Buffer): number {
  const stop = Math.max(0, zip.length - EOCD_MIN - MAX_COMMENT);
  for (let at = zip.length - EOCD_MIN; at >= stop; at--) {
    if (zip.readUInt32LE(at) === EOCD_SIGNATURE) return at;
  }
  throw damaged('it has no table of contents (the file may be cut short)');
}

function damaged(why: string): AppError {
  return new AppError('bad_request', `The workbook cannot be read: ${why}. Open it in Excel, save it again as .xlsx, and upload that.`);
}
