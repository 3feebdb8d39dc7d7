/** The fields of a hospital row, in the order the directory and results.csv use. */
export const FIELDS = ['name', 'address', 'phone'] as const;
export type Field = (typeof FIELDS)[number];

/**
 * Header names people give these columns, beyond the field's own name. Matching ignores
 * case, spaces and punctuation: "Hospital Name", "hospital_name" and "HOSPITAL-NAME" are one.
 * README "What files we read" lists these; keep the two in step.
 */
export const ALIASES: Readonly<Record<Field, readonly string[]>> = {
  name: ['name', 'hospital', 'hospital name', 'facility', 'facility name', 'institution', 'institution name'],
  address: ['address', 'street', 'street address', 'location', 'full address', 'hospital address', 'facility address'],
  phone: ['phone', 'phone number', 'phone no', 'telephone', 'telephone number', 'tel', 'tel no', 'contact number', 'contact phone'],
};

const normalise = (header: string) => header.toLocaleLowerCase('en').replace(/[^\p{L}\p{N}]/gu, '');

const BY_KEY = new Map<string, Field>(FIELDS.flatMap((field) => ALIASES[field].map((alias) => [normalise(alias), field] as const)));

/** The field a header names, or null when it names none. */
export function fieldFor(header: string): Field | null {
  return BY_KEY.get(normalise(header)) ?? null;
}

/** The delimiters a CSV may use; the first is the default. */
export const DELIMITERS = [',', ';', '\t'] as const;
export type Delimiter = (typeof DELIMITERS)[number];

/**
 * The header line is read this far at most: the delimiter shows in its first names, and a
 * hostile megabyte-long header would otherwise cost hundreds of milliseconds to split
 * three ways (the parser refuses such a header anyway).
 */
const HEADER_SCAN_CHARS = 4 * 1024;

/**
 * The delimiter of a CSV, read from its header line (quotes respected): the one that splits
 * it into the most column names we know, earlier in DELIMITERS on a tie; when none finds a
 * known name, the one that occurs most. Only the start of the header is read, so the work is
 * bounded however long the file or its header is.
 */
export function detectDelimiter(text: string): Delimiter {
  const line = headerLine(text);
  const scored = DELIMITERS.map((delimiter) => {
    const fields = splitQuoted(line, delimiter);
    return { delimiter, known: fields.filter((f) => fieldFor(f) !== null).length, occurrences: fields.length - 1 };
  });
  const byKnown = scored.reduce((best, s) => (s.known > best.known ? s : best));
  if (byKnown.known > 0) return byKnown.delimiter;
  return scored.reduce((best, s) => (s.occurrences > best.occurrences ? s : best)).delimiter;
}

/**
 * The first line holding more than whitespace (blank lines before it are skipped, as the
 * parser skips them), up to HEADER_SCAN_CHARS of it. The leading blank lines are skipped by
 * one native search, so a megabyte of them costs about a millisecond.
 */
function headerLine(text: string): string {
  const content = text.search(/\S/);
  if (content === -1) return '';
  const before = text.slice(0, content);
  let start = Math.max(before.lastIndexOf('\n'), before.lastIndexOf('\r')) + 1;
  const end = Math.min(text.length, start + HEADER_SCAN_CHARS);
  let quoted = false;
  for (let i = start; i < end; i++) {
    const char = text[i]!;
    if (char === '"') quoted = !quoted;
    else if (!quoted && (char === '\n' || char === '\r')) {
      const line = text.slice(start, i);
      if (line.trim() !== '') return line;
      start = i + 1;
    }
  }
  return text.slice(start, end);
}

/** Splits one line at `delimiter` outside quotes, unquoting each field. */
function splitQuoted(line: string, delimiter: string): string[] {
  const fields: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === '"') {
      if (quoted && line[i + 1] === '"') {
        current += '"';
        i++;
      } else quoted = !quoted;
    } else if (char === delimiter && !quoted) {
      fields.push(current);
      current = '';
    } else current += char;
  }
  return [...fields, current];
}
