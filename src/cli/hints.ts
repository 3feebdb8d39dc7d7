import { DEFAULT_URL, type Connection } from './args.js';

/** Builds the command lines the CLI suggests (`next: hospital-bulk resume …`). */
export interface Hint {
  (args: string[]): string;
  /** Whether a printed hint reads the key from HOSPITAL_BULK_API_KEY, which the user must then set. */
  readonly needsKeyVariable: boolean;
}

/**
 * Hints that work when pasted as printed: they name the same service (--url, unless it is
 * the default) and, when the key was given with --api-key, read it from
 * HOSPITAL_BULK_API_KEY instead of repeating it on the screen.
 */
export function hintFor(connection: Pick<Connection, 'url' | 'apiKeyFrom'>): Hint {
  let needsKeyVariable = false;
  const hint = (args: string[]) => {
    const words = ['hospital-bulk', ...args.map(shellWord)];
    if (connection.url !== DEFAULT_URL) words.push('--url', shellWord(connection.url));
    if (connection.apiKeyFrom === '--api-key') {
      words.push('--api-key', '"$HOSPITAL_BULK_API_KEY"');
      needsKeyVariable = true;
    }
    return words.join(' ');
  };
  return Object.defineProperty(hint, 'needsKeyVariable', { get: () => needsKeyVariable }) as Hint;
}

/** For the demo and other callers with no connection: the default service, no key. */
export const plainHint: Hint = hintFor({ url: DEFAULT_URL, apiKeyFrom: null });

/** A word as a POSIX shell reads it back unchanged. */
export function shellWord(word: string): string {
  return /^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
