import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import type { CsvProblem } from '../errors.js';
import type { BatchReport } from '../http/presenter.js';
import type { Api, Shape } from './api.js';
import { UsageError } from './args.js';
import type { Hint } from './hints.js';
import { createProgressView } from './progress.js';
import { problemsText, reportText, warningsText, type Warning } from './render.js';
import { followEvents } from './sse.js';

export type Report = BatchReport;

/** What POST /hospitals/bulk/validate answers (src/bulk/dryRun.ts). */
export interface Check {
  valid: boolean;
  total_rows: number;
  errors: CsvProblem[];
  warnings: Warning[];
}

interface Accepted {
  batch_id: string;
  status: string;
  total_hospitals: number;
}

export const isReport: Shape = (body) => typeof body.batch_id === 'string' && Array.isArray(body.hospitals);
const isCheck: Shape = (body) => typeof body.valid === 'boolean' && Array.isArray(body.errors) && Array.isArray(body.warnings);
const isAccepted: Shape = (body) => typeof body.batch_id === 'string' && (Array.isArray(body.hospitals) || typeof body.total_hospitals === 'number');

export interface Io {
  print(text: string): void;
  /** stderr: progress, warnings, questions; never what a script parses. */
  note(text: string): void;
  /** Asks on the terminal; null when there is no terminal to ask on. */
  ask: ((question: string) => Promise<boolean>) | null;
}

/** `hospital-bulk check FILE`: the dry run. Exit 1 when the file has problems. */
export async function check(api: Api, file: string, json: boolean, hint: Hint, io: Io): Promise<number> {
  const result = await api.validate<Check>(file, await readCsv(file), isCheck);
  if (json) {
    io.print(toJson(result));
    return result.valid ? 0 : 1;
  }
  const counts = [plural(result.total_rows, 'row'), plural(result.errors.length, 'problem'), plural(result.warnings.length, 'warning')];
  const parts = [`${file}: ${counts.join(', ')}\n`];
  if (result.errors.length > 0) parts.push(`\n${problemsText(result.errors)}`);
  if (result.warnings.length > 0) parts.push(`\n${warningsText(result.warnings)}`);
  parts.push(result.valid ? `\nNothing was created. To create them: ${hint(['upload', file])}\n` : `\nNothing can be created from this file until the problems are fixed; then: ${hint(['check', file])}\n`);
  io.print(parts.join(''));
  return result.valid ? 0 : 1;
}

/**
 * `hospital-bulk upload FILE`: checks the file first (nothing is sent when it has
 * problems), shows the warnings, asks on a terminal, then uploads and follows the batch.
 */
export async function upload(api: Api, file: string, options: { json: boolean; yes: boolean }, hint: Hint, io: Io): Promise<number> {
  const content = await readCsv(file);
  const result = await api.validate<Check>(file, content, isCheck);
  if (!result.valid) {
    if (options.json) io.print(toJson(result));
    else io.note(`hospital-bulk: ${file} has ${plural(result.errors.length, 'problem')}; nothing was created.\n\n${problemsText(result.errors)}`);
    return 1;
  }
  if (!options.json && result.warnings.length > 0) io.note(warningsText(result.warnings));
  if (!options.json && !options.yes && io.ask) {
    const despite = result.warnings.length > 0 ? ` despite ${plural(result.warnings.length, 'warning')}` : '';
    if (!(await io.ask(`Create ${plural(result.total_rows, 'hospital')} from ${file} in the directory${despite}? [y/N] `))) {
      io.note(`hospital-bulk: nothing was created (to skip this question: ${hint(['upload', file, '--yes'])})\n`);
      return 1;
    }
  }
  const answer = await api.upload<Accepted | Report>(file, content, isAccepted);
  // A service that ignores `Prefer: respond-async` answers with the finished report.
  const report = 'hospitals' in answer ? answer : await follow(api, answer, options.json, hint);
  io.print(options.json ? toJson(report) : reportText(report, hint));
  return report.status === 'completed' ? 0 : 1;
}

/** Live progress on stderr while the batch runs; resolves with the final report. */
async function follow(api: Api, accepted: Accepted, json: boolean, hint: Hint): Promise<Report> {
  const view = json ? null : createProgressView(process.stderr, accepted.total_hospitals);
  // Ctrl-C stops watching, not the batch: say where to find it again.
  const onInterrupt = () => {
    view?.stop();
    process.stderr.write(`hospital-bulk: stopped following; batch ${accepted.batch_id} goes on: ${hint(['show', accepted.batch_id])}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    return JSON.parse(await followEvents(api, accepted.batch_id, (event) => view?.onEvent(event), { hint })) as Report;
  } finally {
    process.off('SIGINT', onInterrupt);
    view?.stop();
  }
}

/** A yes/no question on stderr, answered on the terminal; anything but y or yes (or Ctrl-D) is no. */
export async function askOnTerminal(question: string): Promise<boolean> {
  const terminal = createInterface({ input: process.stdin, output: process.stderr });
  const closed = new Promise<string>((resolve) => terminal.once('close', () => resolve('')));
  try {
    const answer = await Promise.race([terminal.question(question), closed]);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    terminal.close();
  }
}

/** A file that cannot be read is a mistake on the command line: exit 2, like a missing argument. */
async function readCsv(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') throw new UsageError(`file not found: ${file}`);
    if (code === 'EISDIR') throw new UsageError(`${file} is a directory, not a CSV file`);
    if (code === 'EACCES') throw new UsageError(`cannot read ${file}: permission denied`);
    throw new UsageError(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
export const toJson = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
