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
 * The delimiter of a CSV, read from its header line: whichever of comma, semicolon and tab
 * occurs most outside quotes (a tie, or none, is a comma). Only the first line is read, so
 * the work is bounded by the header however long the file is.
 */
export function detectDelimiter(text: string): Delimiter {
  const counts = new Map<string, number>(DELIMITERS.map((d) => [d, 0]));
  let quoted = false;
  let started = false;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    else if (!quoted && (char === '\n' || char === '\r')) {
      // Blank lines before the header are skipped, as the parser skips them.
      if (started) break;
    } else if (!quoted && counts.has(char)) counts.set(char, counts.get(char)! + 1);
    if (char.trim() !== '') started = true;
  }
  let best: Delimiter = ',';
  for (const d of DELIMITERS) if (counts.get(d)! > counts.get(best)!) best = d;
  return best;
}
