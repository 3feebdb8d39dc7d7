/**
 * The page's own reading of a CSV, used for one thing only: the service stops reading a
 * file at its row limit, so the rows past it are read here to show them and say they are
 * over. Everything else the page shows comes from the service's dry run, which stays
 * authoritative. Reads the way the service does: quotes with "" inside, CRLF, LF or CR
 * between records, values trimmed, blank lines skipped, header names in any case.
 */

export interface PreviewRow {
  row: number;
  name: string;
  address: string;
  phone: string | null;
}

/** The data rows after the first `skip`, or null when the file cannot be read as CSV text. */
export async function rowsAfter(file: Blob, skip: number): Promise<PreviewRow[] | null> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  // A workbook (a zip) is not CSV text: its rows are the service's to read.
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return null;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  const records = parseRecords(text);
  if (!records || records.length === 0) return null;
  const [header, ...data] = records as [string[], ...string[][]];
  const at = (name: string) => header.findIndex((field) => field.toLowerCase() === name);
  const [name, address, phone] = [at('name'), at('address'), at('phone')];
  const value = (fields: string[], i: number) => (i < 0 ? '' : (fields[i] ?? ''));
  return data.slice(skip).map((fields, i) => ({
    row: skip + i + 1,
    name: value(fields, name),
    address: value(fields, address),
    phone: value(fields, phone) || null,
  }));
}

/** RFC 4180 records with trimmed fields; null on a quote that never closes. */
function parseRecords(text: string): string[][] | null {
  const records: string[][] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  const endField = () => {
    fields.push(quoted ? field : field.trim());
    field = '';
    quoted = false;
  };
  const endRecord = () => {
    endField();
    // A line that is empty once trimmed is skipped, as the service skips it.
    if (!(fields.length === 1 && fields[0] === '')) records.push(fields);
    fields = [];
  };
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i]!;
    if (char === '"' && field.trim() === '' && !quoted) {
      const close = closingQuote(text, i + 1);
      if (close < 0) return null;
      field = text.slice(i + 1, close).replaceAll('""', '"');
      quoted = true;
      i = close;
      // Whitespace may follow the closing quote; anything else is the service's to reject.
      while (text[i + 1] === ' ' || text[i + 1] === '\t') i += 1;
    } else if (char === ',') {
      endField();
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i += 1;
      endRecord();
    } else if (!quoted) {
      field += char;
    }
  }
  if (field !== '' || fields.length > 0 || quoted) endRecord();
  return records;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i += 1) {
    if (text[i] !== '"') continue;
    if (text[i + 1] === '"') i += 1;
    else return i;
  }
  return -1;
}
