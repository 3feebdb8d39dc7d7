import { AppError } from '../errors.js';

/**
 * How a number cell is shown. Only what a hospitals sheet needs is rendered as Excel would:
 * digit patterns such as `0000000000` or `(000) 000-0000` (phone numbers, kept as numbers)
 * and fixed decimals; dates become ISO text (`2024-03-01`, `2024-03-01 14:30`), not the
 * sheet's own date format; anything else is the plain number, without grouping or exponent.
 */
export type NumberFormat =
  | { kind: 'general' }
  | { kind: 'date' }
  | { kind: 'digits'; pattern: string[] }
  | { kind: 'fixed'; decimals: number }
  /** Sections chosen by a condition, as in Excel's US phone format `[<=9999999]###-####;(###) ###-####`. */
  | { kind: 'conditional'; sections: { test: (n: number) => boolean; format: NumberFormat }[] };

// Excel's built-in date and time formats (ECMA-376 part 1, 18.8.30).
const BUILTIN_DATES = new Set([14, 15, 16, 17, 18, 19, 20, 21, 22, 45, 46, 47]);
const BUILTIN: Record<number, string> = { 1: '0', 2: '0.00' };

export function numberFormat(id: number, code: string | undefined): NumberFormat {
  if (BUILTIN_DATES.has(id)) return { kind: 'date' };
  const format = code ?? BUILTIN[id];
  if (format === undefined) return { kind: 'general' };
  const sections = splitSections(format);
  if (sections.some((s) => CONDITION.test(s))) {
    return {
      kind: 'conditional',
      sections: sections.map((s) => ({ test: condition(s), format: sectionFormat(s) })),
    };
  }
  // The first section is for positive numbers (the only ones a hospitals sheet has).
  return sectionFormat(sections[0] ?? '');
}

const CONDITION = /\[(<=|>=|<>|<|>|=)(-?\d+(?:\.\d+)?)\]/;

function condition(section: string): (n: number) => boolean {
  const match = CONDITION.exec(section);
  if (!match) return () => true;
  const limit = Number(match[2]);
  const compare: Record<string, (n: number) => boolean> = {
    '<=': (n) => n <= limit,
    '>=': (n) => n >= limit,
    '<>': (n) => n !== limit,
    '<': (n) => n < limit,
    '>': (n) => n > limit,
    '=': (n) => n === limit,
  };
  return compare[match[1]!]!;
}

function sectionFormat(raw: string): NumberFormat {
  // `[Red]`, `[<=999]`, `[$-409]` and the like say how or when, not what is shown.
  const section = raw.replace(/\[[^\]]*\]/g, '');
  const tokens = tokenize(section);
  const bare = tokens.filter((t) => t.placeholder).map((t) => t.text).join('');
  if (tokens.some((t) => t.placeholder && /[dmyhs]/i.test(t.text))) return { kind: 'date' };
  if (/^[0#]+$/.test(bare)) return { kind: 'digits', pattern: tokens.map((t) => (t.placeholder ? t.text : `\u0000${t.text}`)) };
  const fixed = /^[0#]*\.(0+)$/.exec(bare);
  if (fixed) return { kind: 'fixed', decimals: fixed[1]!.length };
  return { kind: 'general' };
}

/** The text a cell shows, from its type (`t`), its stored value, its number format and the workbook's shared strings. */
export function cellTextOf(type: string, raw: string, format: NumberFormat | undefined, shared: string[], date1904: boolean): string {
  switch (type) {
    case 's': {
      const text = shared[Number(raw)];
      if (text === undefined) throw new AppError('bad_request', 'The workbook cannot be read: a cell points to a text it does not hold. Open it in Excel, save it again as .xlsx, and upload that.');
      return text;
    }
    case 'b':
      return raw.trim() === '1' ? 'TRUE' : 'FALSE';
    case 'inlineStr':
    case 'str':
    case 'e':
    case 'd':
      return raw;
    default: {
      const value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value)) return raw;
      return formatNumber(value, format ?? { kind: 'general' }, date1904);
    }
  }
}

function formatNumber(value: number, format: NumberFormat, date1904: boolean): string {
  switch (format.kind) {
    case 'date':
      return excelDate(value, date1904) ?? plain(value);
    case 'fixed':
      return value.toFixed(Math.min(format.decimals, 20));
    case 'digits':
      return Number.isSafeInteger(value) && value >= 0 ? fillDigits(String(value), format.pattern) : plain(value);
    case 'general':
      return plain(value);
    case 'conditional': {
      const chosen = format.sections.find((s) => s.test(value)) ?? format.sections.at(-1);
      return chosen === undefined ? plain(value) : formatNumber(value, chosen.format, date1904);
    }
  }
}

/** As many digits as Excel keeps (15 significant), never an exponent or a thousands separator. */
function plain(value: number): string {
  return value.toLocaleString('en-US', { useGrouping: false, maximumSignificantDigits: 15 });
}

/** Fills `0` and `#` placeholders from the right; extra digits go to the leftmost placeholder, as Excel does. */
function fillDigits(digits: string, pattern: string[]): string {
  const slots = pattern.filter((t) => !t.startsWith('\u0000')).length;
  let remaining = digits;
  let out = '';
  let seen = 0;
  for (let i = pattern.length - 1; i >= 0; i--) {
    const token = pattern[i]!;
    if (token.startsWith('\u0000')) {
      out = token.slice(1) + out;
      continue;
    }
    seen++;
    if (seen === slots) {
      out = (remaining === '' && token === '0' ? '0' : remaining) + out;
      remaining = '';
    } else if (remaining !== '') {
      out = remaining.slice(-1) + out;
      remaining = remaining.slice(0, -1);
    } else if (token === '0') out = `0${out}`;
  }
  return out;
}

/** Serial day number → ISO date (and time when there is one); Excel's 1900 system counts a 29 February 1900 that never was. */
function excelDate(serial: number, date1904: boolean): string | null {
  if (serial < 0 || serial > 2_958_465) return null; // past 9999-12-31
  const days = date1904 ? serial + 1462 : serial < 60 ? serial + 1 : serial;
  const ms = Math.round((days - 25569) * 86_400_000) + 0; // 25569: days from 1899-12-30 to 1970-01-01
  const iso = new Date(ms).toISOString();
  const time = iso.slice(11, 19);
  if (time === '00:00:00') return iso.slice(0, 10);
  return `${iso.slice(0, 10)} ${time.endsWith(':00') ? time.slice(0, 5) : time}`;
}

function splitSections(format: string): string[] {
  const sections: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < format.length; i++) {
    const char = format[i]!;
    if (char === '"') quoted = !quoted;
    if (char === '\\' && !quoted) {
      current += char + (format[++i] ?? '');
      continue;
    }
    if (char === ';' && !quoted) {
      sections.push(current);
      current = '';
    } else current += char;
  }
  return [...sections, current];
}

/** A format section as placeholders (anything Excel interprets) and literal text (quoted, escaped, or punctuation). */
function tokenize(section: string): { text: string; placeholder: boolean }[] {
  const tokens: { text: string; placeholder: boolean }[] = [];
  for (let i = 0; i < section.length; i++) {
    const char = section[i]!;
    if (char === '"') {
      const end = section.indexOf('"', i + 1);
      const stop = end === -1 ? section.length : end;
      tokens.push({ text: section.slice(i + 1, stop), placeholder: false });
      i = stop;
    } else if (char === '\\') tokens.push({ text: section[++i] ?? '', placeholder: false });
    else if (char === '_') i++; // "_x" is padding the width of x: no text
    else if (char === '*') i++; // "*x" repeats x to fill the cell: no text
    else if (' -()/+:$'.includes(char)) tokens.push({ text: char, placeholder: false });
    else tokens.push({ text: char, placeholder: true });
  }
  return tokens;
}
