import { AppError } from '../errors.js';

/** The text encodings an uploaded CSV may be in, as the dry run names them. */
export type Encoding = 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252';

export const READ_AS_WINDOWS_1252 =
  'The file is not UTF-8, so it was read as Windows-1252 (what Excel on Windows saves as "CSV"); check that accented letters look right.';

const ENCODINGS_WE_READ = 'UTF-8, UTF-16 with a byte order mark (Excel\'s "Unicode Text"), or Windows-1252';
const SAVE_AS = 'Save it from Excel as "CSV UTF-8" or as an Excel workbook (.xlsx) and upload it again.';

/**
 * Windows-1252's bytes 0x80–0x9F. The five holes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are bytes
 * Microsoft's table leaves undefined: a file holding one is not Windows-1252 either.
 */
const CP1252_HIGH = [
  0x20ac, -1, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, -1, 0x017d, -1,
  -1, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, -1, 0x017e, 0x0178,
];

/**
 * Turns an uploaded CSV's bytes into text: UTF-8 (a BOM is dropped), UTF-16 LE or BE when a
 * BOM says so, and otherwise Windows-1252 when every byte maps. Anything else — and NUL,
 * which never appears in text — is a 415 naming the encodings read.
 */
export function decodeText(content: Buffer): { text: string; encoding: Encoding } {
  const utf16 = content[0] === 0xff && content[1] === 0xfe ? 'utf-16le' : content[0] === 0xfe && content[1] === 0xff ? 'utf-16be' : null;
  if (utf16 !== null) return { text: assertNoNul(decodeUtf16(content.subarray(2), utf16)), encoding: utf16 };
  // NUL is everywhere in binary files (and in UTF-16 without a BOM), never in a CSV.
  if (content.includes(0)) throw notText('it looks like a binary file');
  try {
    // TextDecoder drops a UTF-8 BOM, so the first header name comes out clean.
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(content), encoding: 'utf-8' };
  } catch {
    const hasUtf8Bom = content[0] === 0xef && content[1] === 0xbb && content[2] === 0xbf;
    const text = hasUtf8Bom ? null : decodeWindows1252(content);
    if (text === null) throw notText('it has bytes that are neither UTF-8 nor Windows-1252');
    return { text, encoding: 'windows-1252' };
  }
}

function decodeUtf16(body: Buffer, encoding: 'utf-16le' | 'utf-16be'): string {
  const le = encoding === 'utf-16le' ? body : Buffer.from(body).swap16();
  try {
    if (le.length % 2 !== 0) throw new Error('odd length');
    return new TextDecoder('utf-16le', { fatal: true }).decode(le);
  } catch {
    throw notText('it starts like UTF-16 but is not valid UTF-16');
  }
}

/** Windows-1252 text, or null when a byte has no character in it. Native scans and one replace: a megabyte costs a few milliseconds. */
function decodeWindows1252(content: Buffer): string | null {
  for (let i = 0; i < CP1252_HIGH.length; i++) {
    if (CP1252_HIGH[i] === -1 && content.includes(0x80 + i)) return null;
  }
  // Latin-1 is Windows-1252 except for 0x80–0x9F, which Windows-1252 gives printable characters.
  return content.toString('latin1').replace(/[\u0080-\u009f]/g, (char) => String.fromCharCode(CP1252_HIGH[char.charCodeAt(0) - 0x80]!));
}

function assertNoNul(text: string): string {
  if (text.includes('\u0000')) throw notText('it looks like a binary file');
  return text;
}

function notText(why: string): AppError {
  return new AppError('unsupported_media_type', `The file is not text we can read (${why}); we read ${ENCODINGS_WE_READ}. ${SAVE_AS}`);
}
