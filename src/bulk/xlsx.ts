import { SaxesParser, type SaxesTagPlain } from 'saxes';
import { AppError } from '../errors.js';
import { Turns, type ParsedRecord } from './csvRecords.js';
import { isBlank } from './whitespace.js';
import { cellTextOf, type NumberFormat, numberFormat } from './cellText.js';
import { listZip, readZipEntry, type ZipEntry, type ZipLimits } from './zip.js';

/**
 * Bounds on reading a workbook. The zip limits are checked before anything is inflated;
 * the cell limit stops the sheet's parser part-way, so a huge sheet costs no more than a
 * full one.
 */
export const WORKBOOK_LIMITS = {
  zip: { maxEntries: 1000, maxTotalBytes: 64 * 1024 * 1024, maxEntryBytes: 16 * 1024 * 1024 } satisfies ZipLimits,
  maxCells: 50_000,
  maxSharedStrings: 100_000,
  /** Values past this column are refused: a hospitals table has three. */
  maxColumns: 64,
};

const REL = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships/';
const STRICT_REL = 'http://purl.oclc.org/ooxml/officeDocument/relationships/';

/** A worksheet as a table: its name and its non-empty rows, each with its row number. */
export interface Worksheet {
  sheet: string;
  records: ParsedRecord[];
  /** The sheet has more rows than the `maxRecords` kept. */
  more: boolean;
}

/** XML given to the parser at once: a few milliseconds of work at most before the event loop may get a turn. */
const XML_PIECE_CHARS = 4 * 1024;

/**
 * Reads one worksheet of an .xlsx workbook (the first, or the one named `sheet`) as a table
 * of text: each cell as displayed text (see cellText.ts), empty rows and trailing blank
 * cells dropped, formulas as their last computed value. Keeps at most `maxRecords` rows, and
 * gives the event loop its turns (inflating runs off the loop, XML is parsed piece by piece).
 */
export async function readWorksheet(
  zip: Buffer,
  { sheet, maxRecords }: { sheet: string | null; maxRecords: number },
  turns = new Turns(),
  limits = WORKBOOK_LIMITS,
): Promise<Worksheet> {
  const entries = listZip(zip, limits.zip);
  const part = async (path: string): Promise<string | null> => {
    const entry: ZipEntry | undefined = entries.get(path.toLowerCase());
    return entry === undefined ? null : xmlText(await readZipEntry(zip, entry, limits.zip));
  };
  const workbookPath = (await officeDocument(await part('_rels/.rels'), turns)) ?? 'xl/workbook.xml';
  const workbookXml = await part(workbookPath);
  if (workbookXml === null) {
    throw new AppError('unsupported_media_type', 'The file is a zip archive but not an Excel workbook. Upload a CSV or an .xlsx workbook.');
  }
  const workbook = await parseWorkbook(workbookXml, turns);
  const rels = await parseRelationships((await part(relsPathOf(workbookPath))) ?? '', dirOf(workbookPath), turns);
  const chosen = chooseSheet(workbook.sheets, rels, sheet);
  const sharedPath = [...rels.values()].find((r) => r.type === 'sharedStrings')?.target ?? 'xl/sharedStrings.xml';
  const stylesPath = [...rels.values()].find((r) => r.type === 'styles')?.target ?? 'xl/styles.xml';
  const sheetXml = await part(chosen.target);
  if (sheetXml === null) throw damaged(`its sheet "${chosen.name}" is missing`);
  const context: SheetContext = {
    shared: await parseSharedStrings((await part(sharedPath)) ?? '', limits.maxSharedStrings, turns),
    formats: await parseStyles((await part(stylesPath)) ?? '', turns),
    date1904: workbook.date1904,
  };
  const { records, more } = await parseSheet(sheetXml, context, { ...limits, maxRecords }, turns);
  return { sheet: chosen.name, records, more };
}

interface SheetContext {
  shared: string[];
  /** Number format of each cell style (the `s` attribute of a cell). */
  formats: NumberFormat[];
  date1904: boolean;
}

interface Relationship {
  type: string;
  target: string;
}

/**
 * Runs a SAX parse over one XML part a piece at a time, giving the event loop its turns;
 * every parser error becomes a 400 that names the workbook.
 */
async function parseXml(xml: string, turns: Turns, handlers: (parser: SaxesParser) => void): Promise<void> {
  const parser = new SaxesParser({ position: false });
  // OOXML parts never carry a DTD; refusing one rules out entity tricks whatever the parser does.
  parser.on('doctype', () => {
    throw damaged('one of its parts declares a DTD');
  });
  handlers(parser);
  try {
    for (let at = 0; at < xml.length; at += XML_PIECE_CHARS) {
      parser.write(xml.slice(at, at + XML_PIECE_CHARS));
      if (turns.due()) await turns.pass();
    }
    parser.close();
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw damaged('one of its parts is not well-formed XML');
  }
}

const local = (name: string) => name.slice(name.indexOf(':') + 1);
const attr = (tag: SaxesTagPlain, name: string): string | undefined => {
  const found = Object.entries(tag.attributes).find(([key]) => key === name || local(key) === name);
  return found?.[1];
};

async function officeDocument(xml: string | null, turns: Turns): Promise<string | null> {
  if (xml === null) return null;
  const rels = await parseRelationships(xml, '', turns);
  return [...rels.values()].find((r) => r.type === 'officeDocument')?.target ?? null;
}

async function parseRelationships(xml: string, base: string, turns: Turns): Promise<Map<string, Relationship>> {
  const rels = new Map<string, Relationship>();
  if (xml === '') return rels;
  await parseXml(xml, turns, (parser) => {
    parser.on('opentag', (tag) => {
      if (local(tag.name) !== 'Relationship') return;
      const id = attr(tag, 'Id');
      const type = (attr(tag, 'Type') ?? '').replace(REL, '').replace(STRICT_REL, '');
      const target = attr(tag, 'Target');
      if (id !== undefined && target !== undefined && attr(tag, 'TargetMode') !== 'External') {
        rels.set(id, { type, target: resolvePath(base, target) });
      }
    });
  });
  return rels;
}

async function parseWorkbook(xml: string, turns: Turns): Promise<{ sheets: { name: string; rid: string }[]; date1904: boolean }> {
  const sheets: { name: string; rid: string }[] = [];
  let date1904 = false;
  await parseXml(xml, turns, (parser) => {
    parser.on('opentag', (tag) => {
      const name = local(tag.name);
      if (name === 'workbookPr') date1904 = ['1', 'true'].includes(attr(tag, 'date1904') ?? '');
      if (name === 'sheet') sheets.push({ name: attr(tag, 'name') ?? '', rid: attr(tag, 'id') ?? '' });
    });
  });
  return { sheets, date1904 };
}

function chooseSheet(sheets: { name: string; rid: string }[], rels: Map<string, Relationship>, wanted: string | null) {
  const worksheets = sheets
    .map((s) => ({ name: s.name, rel: rels.get(s.rid) }))
    .filter((s): s is { name: string; rel: Relationship } => s.rel?.type === 'worksheet')
    .map((s) => ({ name: s.name, target: s.rel.target }));
  if (worksheets.length === 0) throw damaged('it has no worksheet');
  if (wanted === null || wanted.trim() === '') return worksheets[0]!;
  const fold = (s: string) => s.trim().toLocaleLowerCase('en');
  const found = worksheets.find((s) => s.name === wanted) ?? worksheets.find((s) => fold(s.name) === fold(wanted));
  if (found) return found;
  const names = worksheets.slice(0, 20).map((s) => `"${s.name}"`).join(', ');
  throw new AppError('bad_request', `The workbook has no sheet named "${wanted.slice(0, 40)}"; its sheets are ${names}.`);
}

async function parseSharedStrings(xml: string, max: number, turns: Turns): Promise<string[]> {
  const strings: string[] = [];
  if (xml === '') return strings;
  let current: string | null = null;
  let inText = false;
  let phonetic = 0;
  await parseXml(xml, turns, (parser) => {
    parser.on('opentag', (tag) => {
      const name = local(tag.name);
      if (name === 'si') {
        if (strings.length >= max) throw tooLarge(`more than ${max} different texts`);
        current = '';
      } else if (name === 'rPh') phonetic++;
      else if (name === 't') inText = !tag.isSelfClosing;
    });
    parser.on('text', (text) => {
      // Phonetic runs (rPh) hold a reading guide, not the cell's text.
      if (current !== null && inText && phonetic === 0) current += text;
    });
    parser.on('closetag', (tag) => {
      const name = local(tag.name);
      if (name === 't') inText = false;
      else if (name === 'rPh') phonetic--;
      else if (name === 'si' && current !== null) {
        strings.push(current);
        current = null;
      }
    });
  });
  return strings;
}

async function parseStyles(xml: string, turns: Turns): Promise<NumberFormat[]> {
  const custom = new Map<number, string>();
  const ids: number[] = [];
  let inCellXfs = false;
  if (xml !== '') {
    await parseXml(xml, turns, (parser) => {
      parser.on('opentag', (tag) => {
        const name = local(tag.name);
        if (name === 'numFmt') custom.set(Number(attr(tag, 'numFmtId')), attr(tag, 'formatCode') ?? '');
        else if (name === 'cellXfs') inCellXfs = true;
        else if (name === 'xf' && inCellXfs) ids.push(Number(attr(tag, 'numFmtId') ?? 0));
      });
      parser.on('closetag', (tag) => {
        if (local(tag.name) === 'cellXfs') inCellXfs = false;
      });
    });
  }
  return ids.map((id) => numberFormat(id, custom.get(id)));
}

interface Cell {
  column: number;
  type: string;
  style: number;
  value: string;
  hasValue: boolean;
}

async function parseSheet(
  xml: string,
  context: SheetContext,
  limits: typeof WORKBOOK_LIMITS & { maxRecords: number },
  turns: Turns,
): Promise<{ records: ParsedRecord[]; more: boolean }> {
  const records: ParsedRecord[] = [];
  let more = false;
  let cells = 0;
  let rowNumber = 0;
  let row: string[] = [];
  let cell: Cell | null = null;
  let collecting: 'v' | 't' | null = null;
  let phonetic = 0;
  await parseXml(xml, turns, (parser) => {
    parser.on('opentag', (tag) => {
      switch (local(tag.name)) {
        case 'row':
          rowNumber = Number(attr(tag, 'r') ?? rowNumber + 1);
          row = [];
          break;
        case 'c': {
          if (++cells > limits.maxCells) throw tooLarge(`more than ${limits.maxCells} cells in the sheet`);
          const ref = attr(tag, 'r');
          cell = {
            column: ref === undefined ? row.length : columnIndex(ref),
            type: attr(tag, 't') ?? 'n',
            style: Number(attr(tag, 's') ?? 0),
            value: '',
            hasValue: false,
          };
          break;
        }
        case 'v':
          collecting = 'v';
          break;
        case 't':
          collecting = 't';
          break;
        case 'rPh':
          phonetic++;
          break;
      }
    });
    parser.on('text', (text) => {
      if (cell !== null && collecting !== null && phonetic === 0) {
        cell.value += text;
        cell.hasValue = true;
      }
    });
    parser.on('closetag', (tag) => {
      switch (local(tag.name)) {
        case 'v':
        case 't':
          collecting = null;
          break;
        case 'rPh':
          phonetic--;
          break;
        case 'c':
          if (cell !== null) placeCell(row, cell, context, limits.maxColumns, rowNumber);
          cell = null;
          break;
        case 'row': {
          // Blank as the directory means it (whitespace.ts): a trailing cell of spaces is no value.
          while (row.length > 0 && isBlank(row.at(-1) ?? '')) row.pop();
          if (row.length === 0) break;
          // Rows past maxRecords are not kept, but still read: the cell limit holds for the whole sheet.
          if (records.length === limits.maxRecords) more = true;
          else records.push({ fields: Array.from(row, (v) => v ?? ''), line: rowNumber });
          break;
        }
      }
    });
  });
  return { records: padToHeader(records), more };
}

function placeCell(row: string[], cell: Cell, context: SheetContext, maxColumns: number, rowNumber: number): void {
  const text = cell.hasValue ? cellText(cell, context) : '';
  if (text === '') return;
  if (cell.column >= maxColumns) throw tooLarge(`a value in row ${rowNumber} past column ${maxColumns}`);
  row[cell.column] = text;
}

/** Rows as wide as the header: cells Excel leaves out at a row's end are empty values, not missing ones. */
function padToHeader(records: ParsedRecord[]): ParsedRecord[] {
  const width = records[0]?.fields.length ?? 0;
  return records.map(({ fields, line }) => ({ fields: fields.length < width ? [...fields, ...new Array<string>(width - fields.length).fill('')] : fields, line }));
}

function cellText(cell: Cell, context: SheetContext): string {
  return cellTextOf(cell.type, cell.value, context.formats[cell.style], context.shared, context.date1904);
}

/** "BC12" → 54 (zero-based column of the reference). */
function columnIndex(ref: string): number {
  let column = 0;
  for (const char of ref.toUpperCase()) {
    const code = char.charCodeAt(0);
    if (code < 65 || code > 90) break;
    column = column * 26 + (code - 64);
  }
  return column - 1;
}

function xmlText(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.toString('utf16le', 2);
  return bytes.toString('utf8').replace(/^\uFEFF/, '');
}

function dirOf(path: string): string {
  return path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
}

function relsPathOf(path: string): string {
  return `${dirOf(path)}_rels/${path.slice(dirOf(path).length)}.rels`;
}

/** A relationship target, relative to its part's folder or absolute from the package root. */
function resolvePath(base: string, target: string): string {
  const parts = (target.startsWith('/') ? target.slice(1) : base + target).split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '..') out.pop();
    else if (p !== '.' && p !== '') out.push(p);
  }
  return out.join('/');
}

function tooLarge(what: string): AppError {
  return new AppError('payload_too_large', `The workbook is larger than we read: it has ${what}. Copy the hospitals into a new workbook (or save them as CSV) and upload that.`);
}

function damaged(why: string): AppError {
  return new AppError('bad_request', `The workbook cannot be read: ${why}. Open it in Excel, save it again as .xlsx, and upload that.`);
}
