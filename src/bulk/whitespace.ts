/**
 * Blank means what the directory means. The directory refuses a name or address when
 * Python's `not value.strip()` is true, and Python strips exactly the characters for which
 * `str.isspace()` holds (CONTRACT.md lists them). JavaScript's trim() differs both ways: it
 * keeps U+001C–U+001F and U+0085 (the directory then answers 422 to a value we thought was
 * filled) and removes U+FEFF (a value the directory accepts). So our validation, what we
 * send and the simulator all use this one rule. We send values stripped this way: a value
 * that is not blank stays not blank once stripped, for us and for the directory alike.
 */
const PYTHON_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, // \t \n \v \f \r
  0x1c, 0x1d, 0x1e, 0x1f, // file, group, record and unit separators
  0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Whether Python's `str.isspace()` holds for this one UTF-16 code unit (all of them are in the BMP). */
export const isPythonSpace = (code: number) => PYTHON_WHITESPACE.has(code);

/** Python's `value.strip()`: a loop, not a regex, so a megabyte of spaces costs one pass. */
export function strip(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isPythonSpace(value.charCodeAt(start))) start++;
  while (end > start && isPythonSpace(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/** Python's `not value.strip()`: what the directory refuses as empty or whitespace only. */
export const isBlank = (value: string) => strip(value) === '';
