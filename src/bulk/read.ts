import { AppError, type CsvProblem } from '../errors.js';
import type { Delimiter } from './columns.js';
import { detectDelimiter } from './columns.js';
import { inspectHospitalsCsv, inspectRecords, invalid, type ColumnMapping, type CsvLimits, type HospitalRow } from './csv.js';
import { decodeText, READ_AS_WINDOWS_1252, type Encoding } from './decode.js';
import { Turns } from './csvRecords.js';
import { readWorksheet } from './xlsx.js';

/** How an upload was read, for the dry run to show and the person to confirm. */
export interface FileFormat {
  type: 'csv' | 'xlsx';
  /** The CSV's text encoding; null for a workbook. */
  encoding: Encoding | null;
  /** The CSV's delimiter; null for a workbook. */
  delimiter: Delimiter | null;
  /** The worksheet read; null for a CSV. */
  sheet: string | null;
  /** Each header that names a field, and that field, in the file's order. */
  columns: ColumnMapping[];
}

export interface ReadOptions extends CsvLimits {
  /** The worksheet to read from a workbook (form field `sheet`); the first when null. */
  sheet?: string | null;
}

export interface InspectedUpload {
  rows: HospitalRow[];
  /** The first problems found (at most 1,000), in file order. */
  problems: CsvProblem[];
  /** How many problems there are in all. */
  problemCount: number;
  format: FileFormat;
  /** Things the person should know about how the file was read, e.g. "read as Windows-1252". */
  notices: string[];
}

const ZIP = Buffer.from('PK\x03\x04', 'latin1');
const EMPTY_ZIP = Buffer.from('PK\x05\x06', 'latin1');
// Compound File Binary: legacy .xls, and every password-protected Office file.
const OLE = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
const ENCRYPTED_PACKAGE = Buffer.from('EncryptedPackage', 'utf16le');

/**
 * Every row of an upload as read, every problem, and how it was read: a workbook by its
 * bytes (whatever its name), otherwise text in one of the encodings we read. Throws only
 * when the file cannot be read as a table at all (415, 413, or 400 for a damaged workbook).
 */
export async function inspectUpload(content: Buffer, options: ReadOptions): Promise<InspectedUpload> {
  if (content.subarray(0, 4).equals(ZIP) || content.subarray(0, 4).equals(EMPTY_ZIP)) {
    const turns = new Turns();
    const { sheet, records, more } = await readWorksheet(content, { sheet: options.sheet ?? null, maxRecords: options.maxRows + 2 }, turns);
    const { rows, problems, problemCount, columns } = await inspectRecords(records, options, { more, turns });
    return { rows, problems, problemCount, format: { type: 'xlsx', encoding: null, delimiter: null, sheet, columns }, notices: [] };
  }
  if (content.subarray(0, 8).equals(OLE)) throw oleFile(content);
  const { text, encoding } = decodeText(content);
  const delimiter = detectDelimiter(text);
  const { rows, problems, problemCount, columns } = await inspectHospitalsCsv(text, delimiter, options);
  return {
    rows,
    problems,
    problemCount,
    format: { type: 'csv', encoding, delimiter, sheet: null, columns },
    notices: encoding === 'windows-1252' ? [READ_AS_WINDOWS_1252] : [],
  };
}

/** The rows of an upload and how it was read, or an AppError listing its problems. */
export async function readUpload(content: Buffer, options: ReadOptions): Promise<Omit<InspectedUpload, 'problems' | 'problemCount'>> {
  const { problems, problemCount, ...read } = await inspectUpload(content, options);
  if (problemCount > 0) throw invalid(problems, read.format.type === 'xlsx' ? 'workbook' : 'CSV', problemCount);
  return read;
}

function oleFile(content: Buffer): AppError {
  if (content.includes(ENCRYPTED_PACKAGE)) {
    return new AppError(
      'bad_request',
      'The workbook is password-protected, so it cannot be read. In Excel remove the password (File › Info › Protect Workbook › Encrypt with Password), save, and upload it again.',
    );
  }
  return new AppError(
    'unsupported_media_type',
    'The file is an old-style Excel workbook (.xls), which we do not read. In Excel choose File › Save As and save it as "Excel Workbook (.xlsx)" or "CSV UTF-8", then upload that.',
  );
}
