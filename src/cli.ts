#!/usr/bin/env node
/**
 * hospital-bulk: the command-line client of the hospital-bulk service (usage in
 * src/cli/args.ts). Every failure ends as an exit status and one line on stderr, never a
 * stack trace: 0 the batch is where the command wanted it, 1 it is not or the service said
 * no (or could not be reached), 2 the command line is wrong.
 */
import { readFile } from 'node:fs/promises';
import type { BatchReport, BatchSummary, Progress } from './http/presenter.js';
import { ApiError, ConnectionError, createApi, type Api } from './cli/api.js';
import { parseInvocation, USAGE, UsageError, type Invocation } from './cli/args.js';
import { createProgressView } from './cli/progress.js';
import { batchesText, problemsText, reportText } from './cli/render.js';
import type { CsvProblem } from './errors.js';
import { followEvents } from './cli/sse.js';

type Report = BatchReport & { progress?: Progress };
type BatchStatus = Report['status'];
interface Accepted {
  batch_id: string;
  status: string;
  total_hospitals: number;
}

const print = (text: string) => process.stdout.write(text);
const complain = (line: string) => process.stderr.write(`hospital-bulk: ${line}\n`);

async function main(argv: string[]): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parseInvocation(argv, process.env);
  } catch (error) {
    return fail(error, false);
  }
  if (invocation.command === 'help') {
    print(USAGE);
    return 0;
  }
  const api = createApi(invocation.url, invocation.apiKey);
  const { json } = invocation;
  try {
    switch (invocation.command) {
      case 'upload':
        return await upload(api, invocation.file, json);
      case 'batches':
        return await batches(api, invocation.limit, invocation.cursor, json);
      case 'show':
        return printReport(await api.get<Report>(batchPath(invocation.id)), json, 'completed');
      case 'resume':
        // A resume answers only when the directory has finished, which can take minutes.
        if (process.stderr.isTTY && !json) process.stderr.write(`resuming batch ${invocation.id}; this waits for the directory…\n`);
        return printReport(await api.post<Report>(`${batchPath(invocation.id)}/resume`), json, 'completed');
      case 'rollback':
        return printReport(await api.post<Report>(`${batchPath(invocation.id)}/rollback`), json, 'rolled_back');
    }
  } catch (error) {
    return fail(error, json);
  }
}

const batchPath = (id: string) => `/batches/${encodeURIComponent(id)}`;

async function upload(api: Api, file: string, json: boolean): Promise<number> {
  const content = await readCsv(file);
  const answer = await api.upload<Accepted | Report>(file, content);
  // A service that ignores `Prefer: respond-async` answers with the finished report.
  const report = 'hospitals' in answer ? answer : await follow(api, answer, json);
  return printReport(report, json, 'completed');
}

/** Live progress on stderr while the batch runs; resolves with the final report. */
async function follow(api: Api, accepted: Accepted, json: boolean): Promise<Report> {
  const view = json ? null : createProgressView(process.stderr, accepted.total_hospitals);
  // Ctrl-C stops watching, not the batch: say where to find it again.
  const onInterrupt = () => {
    view?.stop();
    complain(`stopped following; batch ${accepted.batch_id} goes on: hospital-bulk show ${accepted.batch_id}`);
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    return JSON.parse(await followEvents(api, accepted.batch_id, (event) => view?.onEvent(event))) as Report;
  } finally {
    process.off('SIGINT', onInterrupt);
    view?.stop();
  }
}

async function batches(api: Api, limit: number | null, cursor: string | null, json: boolean): Promise<number> {
  const query = new URLSearchParams();
  if (limit !== null) query.set('limit', String(limit));
  if (cursor !== null) query.set('cursor', cursor);
  const path = query.size > 0 ? `/batches?${query}` : '/batches';
  const page = await api.get<{ batches: BatchSummary[]; next_cursor: string | null }>(path);
  print(json ? toJson(page) : batchesText(page.batches, page.next_cursor));
  return 0;
}

function printReport(report: Report, json: boolean, success: BatchStatus): number {
  print(json ? toJson(report) : reportText(report));
  return report.status === success ? 0 : 1;
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

function fail(error: unknown, json: boolean): number {
  if (error instanceof UsageError) {
    complain(`${error.message}; see hospital-bulk --help`);
    return 2;
  }
  if (error instanceof ApiError) {
    // Scripts get the problem document itself; people get its detail and, for a refused CSV, what to fix.
    if (json && typeof error.body === 'object' && error.body !== null) print(toJson(error.body));
    complain(error.message);
    const problems = (error.body as { errors?: unknown } | undefined)?.errors;
    if (!json && Array.isArray(problems) && problems.length > 0) process.stderr.write(`\n${problemsText(problems as CsvProblem[])}`);
    return 1;
  }
  complain(error instanceof ConnectionError ? error.message : `unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  return 1;
}

const toJson = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

process.exitCode = await main(process.argv.slice(2));
