import { parseArgs } from 'node:util';

export const DEFAULT_URL = 'http://localhost:3000';

export const USAGE = `Usage: hospital-bulk <command> [options]

Commands:
  check <file.csv>    check a CSV (or .xlsx) without creating anything: its problems, and warnings for
                      rows repeated in the file or already in the directory
  upload <file.csv>   check the CSV (or .xlsx), ask before creating (on a terminal), then upload it,
                      follow the batch live and print its report
  batches             list the upload history, newest first
  show <batch-id>     print the report of one batch (with its progress while it runs)
  resume <batch-id>   finish a failed or interrupted batch, live, then print the report
  rollback <batch-id> delete a batch's hospitals from the directory, print the report
  cancel <batch-id>   stop a queued or running batch after the row in flight, print the report

Options:
  --url <url>         the hospital-bulk service (default ${DEFAULT_URL}, or HOSPITAL_BULK_URL)
  --api-key <key>     sent as "Authorization: Bearer <key>"; better: set HOSPITAL_BULK_API_KEY,
                      which keeps the key out of the process list and the shell history
  --yes, -y           upload: create without asking, even on a terminal
  --json              print the raw JSON answer on stdout: no table, no progress, no question
  --limit <n>         batches: how many to list, 1 to 200 (default 50)
  --cursor <cursor>   batches: the next page, as printed below the previous one
  -h, --help          print this help

Exit status: 0 when the batch is completed (check: no problems; rollback: rolled back;
cancel: cancelled, or stopping;
batches: listed), 1 when it is not, the file has problems, the upload was not confirmed or
the service answered an error, 2 for bad arguments.
`;

/** A mistake in the command line: reported in one line, exit status 2. */
export class UsageError extends Error {}

export type Command = 'check' | 'upload' | 'batches' | 'show' | 'resume' | 'rollback' | 'cancel';

export interface Connection {
  url: string;
  apiKey: string | null;
  /** Where the key came from, so messages can name it without ever showing it. */
  apiKeyFrom: '--api-key' | 'HOSPITAL_BULK_API_KEY' | null;
  json: boolean;
}

export type Invocation =
  | { command: 'help' }
  | (Connection & { command: 'check'; file: string })
  | (Connection & { command: 'upload'; file: string; yes: boolean })
  | (Connection & { command: 'batches'; limit: number | null; cursor: string | null })
  | (Connection & { command: 'show' | 'resume' | 'rollback' | 'cancel'; id: string });

const COMMANDS = new Set<string>(['check', 'upload', 'batches', 'show', 'resume', 'rollback', 'cancel']);

const OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Turns argv (without node and the script) and the environment into what to do. */
export function parseInvocation(argv: string[], env: NodeJS.ProcessEnv): Invocation {
  // --help wins over every other mistake on the line: someone asking for help gets it.
  const beforeTerminator = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (beforeTerminator.some((arg) => arg === '--help' || arg === '-h')) return { command: 'help' };

  const { values, positionals } = parseStrict(argv);
  const [command, ...rest] = positionals;
  if (command === undefined) throw new UsageError('no command given');
  if (command === 'help') return { command: 'help' };
  if (!COMMANDS.has(command)) throw new UsageError(`unknown command "${command}"`);
  if (command !== 'batches' && (values.limit !== undefined || values.cursor !== undefined)) {
    throw new UsageError(`--${values.limit !== undefined ? 'limit' : 'cursor'} only applies to the batches command`);
  }
  if (command !== 'upload' && values.yes !== undefined) throw new UsageError('--yes only applies to the upload command');
  const apiKeyFrom = values['api-key'] !== undefined ? '--api-key' : env.HOSPITAL_BULK_API_KEY ? 'HOSPITAL_BULK_API_KEY' : null;
  const connection: Connection = {
    url: serviceUrl(values.url ?? (env.HOSPITAL_BULK_URL || DEFAULT_URL)),
    apiKey: values['api-key'] ?? (env.HOSPITAL_BULK_API_KEY || null),
    apiKeyFrom,
    json: values.json ?? false,
  };
  if (command === 'batches') {
    if (rest.length > 0) throw new UsageError(`batches takes no arguments, got "${rest[0]}"`);
    return { ...connection, command, limit: values.limit === undefined ? null : limit(values.limit), cursor: values.cursor ?? null };
  }
  if (command === 'check') return { ...connection, command, file: oneArgument(command, rest, 'a CSV file') };
  if (command === 'upload') return { ...connection, command, file: oneArgument(command, rest, 'a CSV file'), yes: values.yes ?? false };
  const id = oneArgument(command, rest, 'a batch id');
  return { ...connection, command: command as 'show' | 'resume' | 'rollback' | 'cancel', id };
}

function parseStrict(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(parseArgsMessage(error));
  }
}

/** parseArgs explains itself in a paragraph; the user needs the option's name. */
function parseArgsMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-[^' ]*)/.exec(message)?.[1];
  const code = (error as { code?: unknown }).code;
  if (option && code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option}`;
  if (option && code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return OPTIONS[option.replace(/^-+/, '') as keyof typeof OPTIONS]?.type === 'boolean'
      ? `${option} takes no value`
      : `${option} needs a value (use ${option}=<value> if it starts with "-")`;
  }
  return message.replace(/\s*\n\s*/g, ' ');
}

function oneArgument(command: string, given: string[], what: string): string {
  const [first, extra] = given;
  if (first === undefined) throw new UsageError(`${command} needs ${what}`);
  if (extra !== undefined) throw new UsageError(`${command} takes only ${what}, got also "${extra}"`);
  return first;
}

function serviceUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--url must be an http(s) URL, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL, got "${value}"`);
  // Paths are appended, so a service mounted under a prefix (…/api) keeps it.
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function limit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 200) throw new UsageError(`--limit must be a whole number from 1 to 200, got "${value}"`);
  return n;
}
