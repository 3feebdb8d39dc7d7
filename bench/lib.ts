/**
 * Shared pieces of the benchmark suite: the built service (or any script) as a child
 * process, uploads, the simulator's request log, small statistics and the result rows.
 * Everything listens and talks on 127.0.0.1 only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSimulator, type RecordedRequest, type Simulator } from '../simulator/simulator.js';
import { freePort } from '../scripts/free-port.js';

export { freePort };

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SERVER_JS = join(ROOT, 'dist/src/server.js');
export const HELLO_JS = join(ROOT, 'bench/hello-server.js');
export const FLOOR_JS = join(ROOT, 'bench/floor-server.js');
export const MEM_PROBE_JS = join(ROOT, 'bench/mem-probe.js');

// ---- results -----------------------------------------------------------------------------

/** One line of the results table. `pass` is null for informational lines. */
export interface ResultRow {
  figure: string;
  measured: string;
  reference: string;
  ratio: string;
  target: string;
  pass: boolean | null;
}

export interface FigureResult {
  rows: ResultRow[];
  /** How each ideal / floor / reference was computed, for the output and RESULTS.md. */
  formulas: string[];
  /** What was measured besides the figure itself. */
  notes: string[];
  /** Why the figure is what it is: where the time or memory goes, with this run's numbers. */
  analysis?: string[];
}

// ---- small statistics ----------------------------------------------------------------------

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of raw samples. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
export const ms = (value: number, digits = 0) => `${value.toFixed(digits)} ms`;
export const sec = (valueMs: number, digits = 2) => `${(valueMs / 1000).toFixed(digits)} s`;
export const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;

// ---- processes -----------------------------------------------------------------------------

const live = new Set<ChildProcess>();
/** How long each SIGTERM → exit of the service took in this run (reported in the details). */
export const serviceStopsMs: number[] = [];
/** The warn/error lines each stopped service logged, by label (reported in the details). */
export const serviceWarningLog: { label: string; warnings: string }[] = [];

/** Kills (SIGKILL) every child this run started and has not stopped yet: for abnormal exits. */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
  }
}


export interface Child {
  url: string;
  pid: number;
  /** From spawn() to the first 200 from GET /health, in ms. */
  startupMs: number;
  /** VmRSS and VmHWM of the process, in kB, from /proc/<pid>/status. */
  memoryKb(): { rssKb: number; hwmKb: number };
  /** What the process printed (capped), for diagnostics. */
  output(): string;
  /** SIGTERM (the service's clean shutdown), SIGKILL if it has not exited after 5 s; resolves with the ms it took. */
  stop(): Promise<number>;
}

/**
 * Spawns `node <script>` with exactly `env` (plus PATH; nothing of the caller's shell leaks
 * in), HOST=127.0.0.1 and a free PORT, and waits for GET `healthPath` to answer 200, polling
 * every few ms so the start-up time is measured to within ~5 ms.
 */
export async function startChild(options: {
  script?: string;
  /** Node options before the script (e.g. --expose-gc). */
  nodeArgs?: string[];
  /** Names this process in the details (its warnings are reported under it). */
  label?: string;
  env: Record<string, string>;
  /** The route polled for readiness: /health for the service, / for the hello app. */
  healthPath?: string;
  healthyWithinMs?: number;
}): Promise<Child> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.script ?? SERVER_JS], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...options.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 64 * 1024) output = output.slice(-32 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit').then(() => live.delete(child));

  const deadline = started + (options.healthyWithinMs ?? 15_000);
  let startupMs = Number.NaN;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${options.script ?? SERVER_JS} exited (code ${child.exitCode}, signal ${child.signalCode}) before GET /health answered:\n${output}`);
    }
    const status = await fetch(`${url}${options.healthPath ?? '/health'}`, { signal: AbortSignal.timeout(1_000) }).then(
      async (res) => {
        await res.arrayBuffer();
        return res.status;
      },
      () => 0,
    );
    if (status === 200) {
      startupMs = performance.now() - started;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  if (Number.isNaN(startupMs)) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${options.script ?? SERVER_JS} did not answer GET /health with 200 in time:\n${output}`);
  }
  const pid = child.pid!;
  return {
    url,
    pid,
    startupMs,
    memoryKb: () => readMemoryKb(pid),
    output: () => output,
    async stop() {
      const t0 = performance.now();
      const running = child.exitCode === null && child.signalCode === null;
      if (running) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      const tookMs = performance.now() - t0;
      if ((options.script ?? SERVER_JS) === SERVER_JS) {
        if (running) serviceStopsMs.push(tookMs);
        const warnings = serviceWarnings(output);
        if (warnings) serviceWarningLog.push({ label: options.label ?? 'service', warnings });
      }
      return tookMs;
    },
  };
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on every usual Linux). */
let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU time (user + system) a process has used so far, in ms; NaN if it cannot be read. */
export function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').map(Number);
    return (((fields[11] ?? Number.NaN) + (fields[12] ?? Number.NaN)) * 1000) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

/**
 * The service's warn and error log lines (LOG_LEVEL=warn, JSON in production), grouped:
 * e.g. a directory request that failed and was retried. '' when there were none.
 */
export function serviceWarnings(output: string): string {
  const groups = new Map<string, number>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.level !== 'warn' && entry.level !== 'error') continue;
      const what = [entry.message, entry.op, entry.outcome, entry.status, entry.error].filter((v) => v !== undefined && v !== null).join(' / ');
      groups.set(what, (groups.get(what) ?? 0) + 1);
    } catch {
      // not a log line
    }
  }
  return [...groups].map(([what, n]) => `${n} × "${what.slice(0, 200)}"`).join('; ');
}

export function readMemoryKb(pid: number): { rssKb: number; hwmKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/**
 * The API key every service run is given, as production should be (every API request then
 * pays for the key check); sent by every request of the benchmark.
 */
export const API_KEY = randomBytes(24).toString('hex');
export const AUTH_HEADERS = { authorization: `Bearer ${API_KEY}` };

/** The environment every service run gets, on `database`; figures add what they need on top. */
export function serviceEnv(directoryUrl: string, database: DatabaseEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOSPITAL_API_BASE_URL: directoryUrl,
    ...database,
    API_KEY,
    ...extra,
  };
}

// ---- the two engines -----------------------------------------------------------------------

/** Where a service's history lives: the variables src/config.ts reads (DATABASE_URL wins). */
export interface DatabaseEnv {
  DATABASE_PATH: string;
  DATABASE_URL?: string;
}

/** One engine the figures run on; every figure runs once per engine. */
export interface BenchEngine {
  name: 'sqlite' | 'postgres';
  label: 'SQLite' | 'PostgreSQL';
  /** A new, empty history: a file in `dir`, or a new database on the run's PostgreSQL server. */
  freshDatabase(dir: string, name: string): Promise<DatabaseEnv>;
}

export const sqliteEngine: BenchEngine = {
  name: 'sqlite',
  label: 'SQLite',
  freshDatabase: async (dir, name) => ({ DATABASE_PATH: join(dir, `${name}.db`) }),
};

/** PostgreSQL on `serverUrl` (the run's own server): one database per service run. */
export function postgresEngine(serverUrl: string, createDatabase: (baseUrl: string) => Promise<{ url: string }>): BenchEngine {
  return {
    name: 'postgres',
    label: 'PostgreSQL',
    // DATABASE_PATH stays set (to a file never created): DATABASE_URL wins.
    freshDatabase: async (dir, name) => ({ DATABASE_PATH: join(dir, `${name}.unused.db`), DATABASE_URL: (await createDatabase(serverUrl)).url }),
  };
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `hospital-bulk-bench-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

// ---- uploads -------------------------------------------------------------------------------

let csvSerial = 0;

/** A valid CSV of `rows` distinct hospitals (distinct across the whole run). */
export function hospitalsCsv(rows: number): string {
  const tag = ++csvSerial;
  const lines = ['name,address,phone'];
  for (let i = 1; i <= rows; i++) lines.push(`Bench Hospital ${tag}-${i},${i} Bench Street,555-${String(i).padStart(4, '0')}`);
  return `${lines.join('\n')}\n`;
}

export interface UploadResult {
  status: number;
  /** Client side, from just before fetch() to the whole body read (performance.now). */
  wallMs: number;
  /** Date.now() at the same two moments, to line up with the simulator's log. */
  sentAt: number;
  doneAt: number;
  report: {
    batch_id?: string;
    status?: string;
    batch_activated?: boolean;
    total_hospitals?: number;
    processed_hospitals?: number;
    /** Only for an upload of more than 20 rows (split into directory batches). */
    directory_batches?: { id: string; first_row: number; last_row: number; activated: boolean }[];
  };
}

/** The synchronous upload: POST /hospitals/bulk with the CSV in `file`, blocking until the report. */
export async function upload(serviceUrl: string, csv: string, filename = 'bench.csv'): Promise<UploadResult> {
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), filename);
  const sentAt = Date.now();
  const t0 = performance.now();
  const response = await fetch(`${serviceUrl}/hospitals/bulk`, {
    method: 'POST',
    body: form,
    headers: AUTH_HEADERS,
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  const wallMs = performance.now() - t0;
  const doneAt = Date.now();
  let report: UploadResult['report'] = {};
  try {
    report = JSON.parse(text) as UploadResult['report'];
  } catch {
    // reported below as a failed upload
  }
  return { status: response.status, wallMs, sentAt, doneAt, report };
}

/** Throws unless the upload completed and activated all its rows: a broken run must not produce figures. */
export function assertCompleted(result: UploadResult, rows: number, what: string): void {
  const r = result.report;
  if (result.status !== 200 || r.status !== 'completed' || r.batch_activated !== true || r.processed_hospitals !== rows) {
    throw new Error(`${what}: the upload did not complete (HTTP ${result.status}, ${JSON.stringify(r).slice(0, 500)})`);
  }
}

/** What `uploadsAtOnce` measured. */
export interface UploadsAtOnce {
  results: UploadResult[];
  /** Client side, from sending the first upload to having every report. */
  totalMs: number;
  /** 429s the simulator answered meanwhile. */
  count429: number;
  /** The simulator's log of these uploads, every request answered. */
  log: RecordedRequest[];
  /** Date.now() when the first upload was sent and when the last report was read. */
  sentAt: number;
  doneAt: number;
  /** When the simulator answered its last request of these uploads (epoch ms). */
  lastAnswer: number;
}

/**
 * Sends one upload of `rows` fresh hospitals to each of `serviceUrls` (the same URL twice
 * for two uploads to one service), all at once, and waits for every report; throws unless
 * each upload completed. Files are named a.csv, b.csv, …
 */
export async function uploadsAtOnce(sim: Simulator, serviceUrls: string[], rows: number, what: string): Promise<UploadsAtOnce> {
  const from = sim.requests.length;
  const before429 = sim.stats().count429;
  const t0 = performance.now();
  const results = await Promise.all(serviceUrls.map((url, i) => upload(url, hospitalsCsv(rows), `${String.fromCharCode(97 + i)}.csv`)));
  const totalMs = performance.now() - t0;
  results.forEach((result, i) => assertCompleted(result, rows, `${what} upload ${i + 1}`));
  const count429 = sim.stats().count429 - before429;
  const log = requestsSince(sim, from);
  return {
    results,
    totalMs,
    count429,
    log,
    sentAt: Math.min(...results.map((r) => r.sentAt)),
    doneAt: Math.max(...results.map((r) => r.doneAt)),
    lastAnswer: Math.max(...log.map(answeredAt)),
  };
}

/**
 * The `pacing` and `instances` measurement: one 20-row upload to each of two service URLs
 * at once (30 creates per window W), with the limiter's floor for those 40 creates
 * (`twoWaveFloor`) and how long after its slot freed each second-wave create left.
 */
export async function twoWaveUploads(sim: Simulator, serviceUrls: [string, string], rows: number, windowMs: number, what: string) {
  const measured = await uploadsAtOnce(sim, serviceUrls, rows, what);
  const floor = twoWaveFloor(measured.log, 2 * rows, windowMs, what);
  // Where the time went, measured: the second wave left how long after "answer + W"?
  const firstAnswers = floor.first.map(answeredAt).sort((a, b) => a - b);
  const secondLag = floor.second.map((r, k) => r.receivedAt - (firstAnswers[k]! + windowMs));
  return { ...measured, ...floor, ratio: measured.totalMs / floor.floorMs, secondLag };
}

// ---- the simulator's log -------------------------------------------------------------------

/** When the simulator answered a recorded request (epoch ms). */
export const answeredAt = (r: RecordedRequest) => r.receivedAt + (r.durationMs ?? Number.NaN);

export function batchOf(r: RecordedRequest): string | null {
  if (r.route === 'create') return ((r.body as { creation_batch_id?: string } | null)?.creation_batch_id ?? null)?.toLowerCase() ?? null;
  return /\/hospitals\/batch\/([^/]+)/.exec(r.path)?.[1]?.toLowerCase() ?? null;
}

/** Requests recorded since `from` (an index into sim.requests), all of which must have been answered. */
export function requestsSince(sim: Simulator, from: number): RecordedRequest[] {
  const log = sim.requests.slice(from);
  const unanswered = log.filter((r) => r.durationMs === null);
  if (unanswered.length > 0) throw new Error(`${unanswered.length} simulator request(s) were never answered`);
  return log;
}

/** The directory's limit on creates: 30 per window (CONTRACT.md), the limiter's slots for the create path. */
export const CREATES_PER_WINDOW = 30;

/**
 * The floor the limiter imposes on two 20-row uploads at once under the directory's 30
 * creates per window W, from the simulator's log of the run: wake + d1 + W + d2 + read +
 * activate (the top of figures/pacing.ts explains it).
 */
export function twoWaveFloor(log: RecordedRequest[], expectedCreates: number, windowMs: number, what: string) {
  const creates = log.filter((r) => r.route === 'create' && r.status === 200).sort((a, b) => a.receivedAt - b.receivedAt);
  if (creates.length !== expectedCreates) throw new Error(`${what}: expected ${expectedCreates} successful creates, the simulator served ${creates.length}`);
  const first = creates.slice(0, CREATES_PER_WINDOW);
  const second = creates.slice(CREATES_PER_WINDOW);
  const wake = Math.max(...log.filter((r) => r.route === 'health').map((r) => r.durationMs!));
  const d1 = [...first.map((r) => r.durationMs!)].sort((a, b) => a - b)[second.length - 1]!;
  const d2 = Math.max(...second.map((r) => r.durationMs!));
  const activations = log.filter((r) => r.route === 'activate').sort((a, b) => answeredAt(a) - answeredAt(b));
  const lastBatch = batchOf(activations.at(-1)!);
  const read = log.filter((r) => r.route === 'batch' && batchOf(r) === lastBatch).at(-1)?.durationMs ?? 0;
  const activate = activations.at(-1)!.durationMs!;
  return { creates, first, second, wake, d1, d2, read, activate, floorMs: wake + d1 + windowMs + d2 + read + activate };
}

/** The service's warn lines about failed create attempts: "row 13: read ECONNRESET after 5 ms → unknown". */
export function createFailures(output: string): string[] {
  const failures: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; message?: string; op?: string; row?: number; error?: string; latency_ms?: number; outcome?: string };
      if (entry.level === 'warn' && entry.message === 'directory request' && entry.op === 'create') {
        failures.push(`row ${entry.row}: ${entry.error} after ${entry.latency_ms} ms → ${entry.outcome}`);
      }
    } catch {
      // not a log line
    }
  }
  return failures;
}

export const sleep = (msToWait: number) => new Promise((resolve) => setTimeout(resolve, msToWait));

// ---- the machine ---------------------------------------------------------------------------

export interface CpuSnapshot {
  at: number;
  /** Machine-wide busy and total CPU time from /proc/stat, in clock ticks. */
  busy: number;
  total: number;
  /** This process and its reaped children (the services and hello apps it stopped), in ticks. */
  own: number;
}

/** Processes of the run that are not its children in the usual sense (the PostgreSQL server and its backends). */
export const ownProcessTrees: number[] = [];

/** CPU ticks of `root` and every live descendant, including what each has reaped. */
function treeTicks(root: number): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ').map(Number);
      parent.set(Number(entry), fields[1] ?? 0);
      ticks.set(Number(entry), (fields[11] ?? 0) + (fields[12] ?? 0) + (fields[13] ?? 0) + (fields[14] ?? 0));
    } catch {
      // the process ended while we read
    }
  }
  let total = 0;
  for (const [pid, own] of ticks) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      if (p === root) {
        total += own;
        break;
      }
    }
  }
  return total;
}

/** null where /proc is not available (not Linux). */
export function cpuSnapshot(): CpuSnapshot | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = cpu;
    const self = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ').map(Number);
    return {
      at: performance.now(),
      busy: user + nice + system + irq + softirq + steal,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
      own: (self[11] ?? 0) + (self[12] ?? 0) + (self[13] ?? 0) + (self[14] ?? 0) + ownProcessTrees.reduce((sum, pid) => sum + treeTicks(pid), 0),
    };
  } catch {
    return null;
  }
}

/**
 * CPU used by processes that are not this benchmark (nor its children) between two
 * snapshots, in % of the whole machine (100 % = every core busy). Children must have been
 * stopped (reaped) by `to`, as every figure does.
 */
export function otherLoadPercent(from: CpuSnapshot | null, to: CpuSnapshot | null): number | null {
  if (!from || !to || to.total <= from.total) return null;
  const others = to.busy - from.busy - (to.own - from.own);
  return Math.max(0, (100 * others) / (to.total - from.total));
}

/**
 * Waits (at most `maxWaitMs`) until processes other than this one use less than
 * `thresholdPercent` of the machine over a 1 s sample. Returns the last sample's load.
 */
export async function waitForQuiet(thresholdPercent: number, maxWaitMs: number): Promise<{ loadPercent: number | null; waitedMs: number }> {
  const started = performance.now();
  for (;;) {
    const a = cpuSnapshot();
    await sleep(1_000);
    const loadPercent = otherLoadPercent(a, cpuSnapshot());
    const waitedMs = performance.now() - started;
    if (loadPercent === null || loadPercent < thresholdPercent || waitedMs >= maxWaitMs) return { loadPercent, waitedMs };
  }
}

export function machineInfo(): string[] {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux: os.cpus() is good enough
  }
  return [
    `CPU: ${cpu}`,
    `Cores: ${cpus().length}`,
    `RAM: ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `Node: ${process.version} (${process.platform} ${process.arch})`,
  ];
}

/**
 * One service (a child process) against the simulator with its real rate limits and the
 * window shortened to `windowMs` on both sides, create delay `delayMs`; warmed up with a
 * 1-row upload, then left a window and half a second so that create has left both the
 * simulator's window and the limiter. `close` stops both and removes the temp dir.
 */
export async function pacedService(engine: BenchEngine, label: string, options: { delayMs: number; windowMs: number; env: Record<string, string> }) {
  const dir = tempDir(label);
  const sim = createSimulator({ createDelayMs: options.delayMs, rateLimits: { windowMs: options.windowMs } });
  await sim.listen();
  const service = await startChild({
    label,
    env: serviceEnv(sim.url, await engine.freshDatabase(dir.path, label), { UPSTREAM_RATE_WINDOW_MS: String(options.windowMs), ...options.env }),
  });
  const close = async () => {
    await service.stop();
    await sim.close();
    dir.remove();
  };
  try {
    assertCompleted(await upload(service.url, hospitalsCsv(1)), 1, `${label} warm-up`);
    await sleep(options.windowMs + 500);
  } catch (error) {
    await close();
    throw error;
  }
  return { sim, service, close };
}
