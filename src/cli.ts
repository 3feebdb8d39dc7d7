#!/usr/bin/env node
/**
 * hospital-bulk: the command-line client of the hospital-bulk service (usage in
 * src/cli/args.ts). Every failure ends as an exit status and one line on stderr, never a
 * stack trace: 0 the batch is where the command wanted it, 1 it is not or the service said
 * no (or could not be reached), 2 the command line is wrong.
 */
import type { BatchSummary } from './http/presenter.js';
import { ApiError, ConnectionError, createApi, ForeignServiceError, type Api } from './cli/api.js';
import { parseInvocation, USAGE, UsageError, type Connection, type Invocation } from './cli/args.js';
import { hintFor, type Hint } from './cli/hints.js';
import { createProgressView } from './cli/progress.js';
import { batchesText, problemsText, reportText } from './cli/render.js';
import { lastEventId, watchRun } from './cli/sse.js';
import { askOnTerminal, check, isReport, toJson, upload, type Io, type Report } from './cli/upload.js';
import type { CsvProblem } from './errors.js';

const print = (text: string) => process.stdout.write(text);
const complain = (line: string) => process.stderr.write(`hospital-bulk: ${line}\n`);
const io: Io = {
  print,
  note: (text) => process.stderr.write(text),
  ask: process.stdin.isTTY ? askOnTerminal : null,
};

async function main(argv: string[]): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseInvocation(argv, process.env);
  } catch (error) {
    return fail(error, null);
  }
  if (invocation.command === 'help') {
    print(USAGE);
    return 0;
  }
  const api = createApi(invocation.url, invocation.apiKey);
  const hint = hintFor(invocation);
  try {
    return await run(api, invocation, hint);
  } catch (error) {
    return fail(error, invocation);
  } finally {
    if (hint.needsKeyVariable && !invocation.json) {
      complain('the commands above read the key from HOSPITAL_BULK_API_KEY: set it first (export HOSPITAL_BULK_API_KEY=<your key>)');
    }
  }
}

async function run(api: Api, invocation: Exclude<Invocation, { command: 'help' }>, hint: Hint): Promise<number> {
  const { json } = invocation;
  switch (invocation.command) {
    case 'check':
      return check(api, invocation.file, json, hint, io);
    case 'upload':
      return upload(api, invocation.file, { json, yes: invocation.yes }, hint, io);
    case 'batches':
      return batches(api, invocation.limit, invocation.cursor, json, hint);
    case 'show':
      return printReport(await api.get<Report>(batchPath(invocation.id), isReport), json, 'completed', hint);
    case 'resume':
      return printReport(await resume(api, invocation.id, json), json, 'completed', hint);
    case 'rollback':
      return printReport(await api.post<Report>(`${batchPath(invocation.id)}/rollback`, isReport), json, 'rolled_back', hint);
    case 'cancel': {
      // 200: cancelled now; 202: still processing, it stops after the row in flight. Both are what was asked.
      const report = await api.post<Report>(`${batchPath(invocation.id)}/cancel`, isReport);
      return printReport(report, json, report.status === 'processing' ? 'processing' : 'cancelled', hint);
    }
  }
}

const batchPath = (id: string) => `/batches/${encodeURIComponent(id)}`;

/**
 * POST /batches/:id/resume answers only when the directory has finished, which can take
 * minutes: meanwhile the batch's event stream draws the progress bar, starting after the
 * events its earlier runs recorded.
 */
async function resume(api: Api, id: string, json: boolean): Promise<Report> {
  const post = () => api.post<Report>(`${batchPath(id)}/resume`, isReport);
  if (json) return post();
  const before = await api.get<Report>(batchPath(id), isReport);
  // Anything else is refused by the POST at once (409), with the service's own words.
  if (before.status !== 'failed' && before.status !== 'interrupted') return post();
  const fromId = await lastEventId(api, id);
  const view = createProgressView(process.stderr, before.total_hospitals, before.hospitals);
  try {
    return await watchRun(api, id, fromId, (event) => view.onEvent(event), post());
  } finally {
    view.stop();
  }
}

async function batches(api: Api, limit: number | null, cursor: string | null, json: boolean, hint: Hint): Promise<number> {
  const query = new URLSearchParams();
  if (limit !== null) query.set('limit', String(limit));
  if (cursor !== null) query.set('cursor', cursor);
  const path = query.size > 0 ? `/batches?${query}` : '/batches';
  const page = await api.get<{ batches: BatchSummary[]; next_cursor: string | null }>(path, (body) => Array.isArray(body.batches));
  print(json ? toJson(page) : batchesText(page.batches, page.next_cursor, hint, limit));
  return 0;
}

function printReport(report: Report, json: boolean, success: Report['status'], hint: Hint): number {
  print(json ? toJson(report) : reportText(report, hint));
  return report.status === success ? 0 : 1;
}

function fail(error: unknown, connection: Connection | null): number {
  if (error instanceof UsageError) {
    complain(`${error.message}; see hospital-bulk --help`);
    return 2;
  }
  if (error instanceof ApiError && error.status === 401 && connection) {
    complain(unauthorized(connection));
    return 1;
  }
  if (error instanceof ApiError) {
    // Scripts get the problem document itself; people get its detail and, for a refused CSV, what to fix.
    if (connection?.json && typeof error.body === 'object' && error.body !== null) print(toJson(error.body));
    complain(error.message);
    const problems = (error.body as { errors?: unknown } | undefined)?.errors;
    if (!connection?.json && Array.isArray(problems) && problems.length > 0) process.stderr.write(`\n${problemsText(problems as CsvProblem[])}`);
    return 1;
  }
  if (error instanceof ConnectionError || error instanceof ForeignServiceError) {
    complain(error.message);
    return 1;
  }
  complain(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  return 1;
}

/** The service's own 401 speaks of HTTP headers; the CLI user needs the option and the variable. */
function unauthorized({ url, apiKeyFrom }: Connection): string {
  if (apiKeyFrom === null) return `401 ${url} needs an API key: pass --api-key <key>, or set HOSPITAL_BULK_API_KEY`;
  return `401 ${url} refused the API key given with ${apiKeyFrom}: check the key (--api-key <key>, or HOSPITAL_BULK_API_KEY)`;
}

process.exitCode = await main(process.argv.slice(2));
