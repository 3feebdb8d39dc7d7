/** A PostgreSQL URL as it may be shown: its password replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    // Unparseable: show only the scheme, since we cannot tell where the password is.
    return `${url.split('//')[0] ?? ''}//(an unreadable URL)`;
  }
}

/** Thrown for a database we cannot reach or use, with a message that says what to do. */
export class DatabaseError extends Error {
  override readonly name = 'DatabaseError';
}

/**
 * Why connecting to or using the database at `url` failed, in plain words, naming the
 * database without its password (node-postgres's messages carry none, but a URL-shaped
 * error message from elsewhere might: every occurrence of the password is masked too).
 */
export function connectionError(url: string, error: unknown): DatabaseError {
  const where = redactUrl(url);
  // drizzle wraps the driver's error ("Failed query: …"): the driver's, with its code, says why.
  let root = error;
  for (let e = error; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code !== undefined) {
      root = e;
      break;
    }
  }
  const code = (root as { code?: string } | null)?.code;
  const raw = root instanceof Error ? root.message : String(root);
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'nothing answers at that host and port (is the server running?)',
    ENOTFOUND: 'the host name does not resolve (is it spelled right?)',
    EAI_AGAIN: 'the host name could not be resolved right now (DNS)',
    ETIMEDOUT: 'the server did not answer in time',
    '28P01': 'the password (or user name) was refused',
    '28000': `the server refused the connection (${raw}); a hosted database usually needs ?sslmode=require in the URL`,
    '3D000': `${raw}: create it first (CREATE DATABASE), or fix the URL's path`,
    '42501': `the user may not do this (${raw})`,
  };
  const reason = (code !== undefined ? reasons[code] : undefined) ?? raw;
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    // no password to mask
  }
  const message = `PostgreSQL at ${where}: ${reason}`;
  return new DatabaseError(password === '' ? message : message.replaceAll(password, '***'), { cause: error });
}
