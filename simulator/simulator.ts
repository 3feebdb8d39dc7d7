/**
 * In-memory simulator of the Hospital Directory API (see shared/upstream/CONTRACT.md).
 * It mimics the real FastAPI app's status codes and bodies, its slowapi rate limits,
 * its ~5 s create sleep and its free-tier cold starts, and lets tests inject
 * network faults (resets, hangs, lost answers) route by route.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
// Python's str.strip() rule, as CONTRACT.md states it: the one definition our validation uses too.
import { isBlank } from '../src/bulk/whitespace.js';

export type RouteName = 'health' | 'create' | 'list' | 'hospital' | 'batch' | 'activate' | 'deleteBatch';

export type Fault =
  /** Serve normally: lets a script say "the first create passes, the second fails". */
  | { kind: 'pass' }
  | { kind: 'status'; status: number; body?: unknown; store?: boolean }
  | { kind: 'reset' }
  | { kind: 'hang'; store?: boolean }
  | { kind: 'lose-response' };

export interface SimulatorOptions {
  host?: string;
  port?: number;
  createDelayMs?: number;
  coldStartMs?: number;
  rateLimits?: false | { windowMs?: number };
  maxHospitals?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  route: RouteName | null;
  body: unknown;
  receivedAt: number;
  status: number | null;
  durationMs: number | null;
}

export interface Hospital {
  id: number;
  name: string;
  address: string;
  phone: string | null;
  creation_batch_id: string | null;
  active: boolean;
  created_at: string;
}

export interface SimulatorStats {
  inFlightCreates: number;
  maxInFlightCreates: number;
  count429: number;
  createTimes: number[];
}

export interface Simulator {
  readonly url: string;
  readonly port: number;
  listen(): Promise<void>;
  close(): Promise<void>;
  inject(route: RouteName, fault: Fault, times?: number): void;
  setCreateDelay(ms: number): void;
  sleep(): void;
  reset(): void;
  readonly requests: RecordedRequest[];
  hospitals(): Hospital[];
  stats(): SimulatorStats;
}

export const ROUTE_NAMES: readonly RouteName[] = ['health', 'create', 'list', 'hospital', 'batch', 'activate', 'deleteBatch'];
const BATCH_CAP = 20;

interface Reply {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

function json(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, body: JSON.stringify(value), headers: { 'content-type': 'application/json', ...headers } };
}

// Declared in the order Starlette would try them: the first path match decides 405's Allow.
const ROUTES: { name: RouteName; method: string; pattern: RegExp }[] = [
  { name: 'health', method: 'GET', pattern: /^\/$/ },
  { name: 'create', method: 'POST', pattern: /^\/hospitals\/$/ },
  { name: 'list', method: 'GET', pattern: /^\/hospitals\/$/ },
  { name: 'hospital', method: 'GET', pattern: /^\/hospitals\/([^/]+)$/ },
  { name: 'hospital', method: 'PUT', pattern: /^\/hospitals\/([^/]+)$/ },
  { name: 'hospital', method: 'DELETE', pattern: /^\/hospitals\/([^/]+)$/ },
  { name: 'batch', method: 'GET', pattern: /^\/hospitals\/batch\/([^/]+)$/ },
  { name: 'deleteBatch', method: 'DELETE', pattern: /^\/hospitals\/batch\/([^/]+)$/ },
  { name: 'activate', method: 'PATCH', pattern: /^\/hospitals\/batch\/([^/]+)\/activate$/ },
];

const LIMITS: Record<RouteName, number> = {
  health: 100, create: 30, list: 50, hospital: 50, batch: 50, activate: 50, deleteBatch: 50,
};

// ---- FastAPI / pydantic v2 validation errors -------------------------------------------

interface ValidationError {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

const unprocessable = (errors: ValidationError[]): Reply => json(422, { detail: errors });

type ParsedBody =
  | { kind: 'absent' }
  | { kind: 'value'; value: unknown }
  | { kind: 'error'; error: ValidationError };

/** What FastAPI hands to pydantic: JSON when the content type is JSON (or absent), raw text otherwise. */
function parseBody(text: string, contentType: string | undefined): ParsedBody {
  if (text === '') return { kind: 'absent' };
  const mime = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mime !== undefined && mime !== '' && mime !== 'application/json' && !/^application\/.*\+json$/.test(mime)) {
    return { kind: 'value', value: text };
  }
  const source = text.replace(/^\uFEFF/, '');
  try {
    const value: unknown = JSON.parse(source);
    return value === null ? { kind: 'absent' } : { kind: 'value', value };
  } catch {
    const { pos, msg } = jsonErrorAt(source);
    return { kind: 'error', error: { type: 'json_invalid', loc: ['body', pos], msg: 'JSON decode error', input: {}, ctx: { error: msg } } };
  }
}

/** Position and message Python's json module would report for malformed JSON. */
function jsonErrorAt(s: string): { pos: number; msg: string } {
  let i = 0;
  const fail = (msg: string, pos = i): never => {
    throw { pos, msg };
  };
  const ws = (): void => {
    while (i < s.length && ' \t\n\r'.includes(s[i]!)) i++;
  };
  const string = (): void => {
    const start = i++;
    for (;;) {
      const c = s[i];
      if (c === undefined) fail('Unterminated string starting at', start);
      else if (c === '"') return void i++;
      else if (c < ' ') fail('Invalid control character at');
      else if (c === '\\') {
        const e = s[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) fail('Invalid \\uXXXX escape', i + 1);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail('Invalid \\escape');
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') return void i++;
      for (;;) {
        ws();
        if (s[i] !== '"') fail('Expecting property name enclosed in double quotes');
        string();
        ws();
        if (s[i] !== ':') fail("Expecting ':' delimiter");
        i++;
        value();
        ws();
        if (s[i] === '}') return void i++;
        if (s[i] !== ',') fail("Expecting ',' delimiter");
        i++;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (s[i] === ']') return void i++;
        if (s[i] !== ',') fail("Expecting ',' delimiter");
        i++;
      }
    }
    if (c === '"') return string();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?)/.exec(s.slice(i));
    if (!literal) fail('Expecting value');
    i += literal![0].length;
  };
  try {
    value();
    ws();
    if (i < s.length) fail('Extra data');
  } catch (err) {
    return err as { pos: number; msg: string };
  }
  return { pos: 0, msg: 'Expecting value' };
}

type UuidResult = { uuid: string } | { error: string };

/** Accepts what pydantic's UUID accepts; the error wording follows the Rust uuid crate it uses. */
function parseUuid(s: string): UuidResult {
  let core = s;
  if (core.startsWith('urn:uuid:')) core = core.slice(9);
  else if (core.startsWith('{') && core.endsWith('}')) core = core.slice(1, -1);
  if (/^[0-9a-fA-F]{32}$/.test(core) || /^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/.test(core)) {
    const h = core.replaceAll('-', '').toLowerCase();
    return { uuid: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}` };
  }
  const chars = [...s];
  const bad = chars.findIndex((c) => !/[0-9a-fA-F-]/.test(c));
  if (bad >= 0) {
    return { error: `invalid character: expected an optional prefix of \`urn:uuid:\` followed by [0-9a-fA-F-], found \`${chars[bad]}\` at ${bad + 1}` };
  }
  const groups = s.split('-');
  if (groups.length === 1) return { error: `invalid length: expected length 32 for simple format, found ${s.length}` };
  if (groups.length !== 5) return { error: `invalid group count: expected 5, found ${groups.length}` };
  const sizes = [8, 4, 4, 4, 12];
  const g = groups.findIndex((group, k) => group.length !== sizes[k]);
  return { error: `invalid group length in group ${g}: expected ${sizes[g]}, found ${groups[g]?.length}` };
}

function uuidError(loc: (string | number)[], input: unknown): ValidationError | { uuid: string } {
  if (typeof input !== 'string') {
    return { type: 'uuid_type', loc, msg: 'UUID input should be a string, bytes or UUID object', input };
  }
  const parsed = parseUuid(input);
  if ('uuid' in parsed) return parsed;
  return { type: 'uuid_parsing', loc, msg: `Input should be a valid UUID, ${parsed.error}`, input, ctx: { error: parsed.error } };
}

interface FieldSpec {
  name: string;
  required: boolean;
  kind: 'text' | 'nonblank' | 'uuid';
}

const CREATE_FIELDS: FieldSpec[] = [
  { name: 'name', required: true, kind: 'nonblank' },
  { name: 'address', required: true, kind: 'nonblank' },
  { name: 'phone', required: false, kind: 'text' },
  { name: 'creation_batch_id', required: false, kind: 'uuid' },
];
const UPDATE_FIELDS: FieldSpec[] = [
  { name: 'name', required: false, kind: 'nonblank' },
  { name: 'address', required: false, kind: 'nonblank' },
  { name: 'phone', required: false, kind: 'text' },
];

/** Returns the fields that were sent (null included), or pydantic's list of errors. */
function validateModel(body: ParsedBody, fields: FieldSpec[]): { values: Map<string, string | null> } | { errors: ValidationError[] } {
  if (body.kind === 'error') return { errors: [body.error] };
  if (body.kind === 'absent') return { errors: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }] };
  const obj = body.value;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return { errors: [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: obj }] };
  }
  const record = obj as Record<string, unknown>;
  const errors: ValidationError[] = [];
  const values = new Map<string, string | null>();
  for (const field of fields) {
    const loc = ['body', field.name];
    if (!Object.hasOwn(record, field.name)) {
      if (field.required) errors.push({ type: 'missing', loc, msg: 'Field required', input: record });
      continue;
    }
    const input = record[field.name];
    if (input === null && !field.required) {
      values.set(field.name, null);
    } else if (field.kind === 'uuid') {
      const result = uuidError(loc, input);
      if ('uuid' in result) values.set(field.name, result.uuid);
      else errors.push(result);
    } else if (typeof input !== 'string') {
      errors.push({ type: 'string_type', loc, msg: 'Input should be a valid string', input });
    } else if (field.kind === 'nonblank' && isBlank(input)) {
      const label = field.name[0]!.toUpperCase() + field.name.slice(1);
      errors.push({ type: 'value_error', loc, msg: `Value error, ${label} cannot be empty`, input, ctx: { error: {} } });
    } else {
      values.set(field.name, input);
    }
  }
  return errors.length > 0 ? { errors } : { values };
}

function parseHospitalId(raw: string): number | ValidationError {
  if (/^\s*[+-]?\d+\s*$/.test(raw)) return Number(raw);
  return { type: 'int_parsing', loc: ['path', 'hospital_id'], msg: 'Input should be a valid integer, unable to parse string as an integer', input: raw };
}

// ---- time ------------------------------------------------------------------------------

/** Python's datetime.now().isoformat(): local time, no zone, microseconds unless zero. */
function pythonLocalIsoNow(): string {
  const micros = Math.floor((performance.now() % 1) * 1000);
  const d = new Date();
  const p = (n: number, width = 2): string => String(n).padStart(width, '0');
  const base = `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  const fraction = d.getMilliseconds() * 1000 + micros;
  return fraction === 0 ? base : `${base}.${p(fraction, 6)}`;
}

// ---- the simulator ---------------------------------------------------------------------

interface Context {
  route: RouteName;
  method: string;
  path: string;
  param: string;
  ip: string;
  body: ParsedBody;
  receivedAt: number;
  epoch: number;
}

export function createSimulator(options: SimulatorOptions = {}): Simulator {
  const host = options.host ?? '127.0.0.1';
  let port = options.port ?? 0;
  let createDelayMs = options.createDelayMs ?? 5000;
  const coldStartMs = options.coldStartMs ?? 0;
  const windowMs = options.rateLimits === false ? 0 : (options.rateLimits?.windowMs ?? 60_000);
  const rateLimited = options.rateLimits !== false;
  const maxHospitals = options.maxHospitals ?? 10_000;

  let store = new Map<number, Hospital>();
  let nextId = 1;
  let windows = new Map<string, { start: number; count: number }>();
  const faults = new Map<RouteName, Fault[]>();
  const requests: RecordedRequest[] = [];
  let stats: SimulatorStats = { inFlightCreates: 0, maxInFlightCreates: 0, count429: 0, createTimes: [] };
  // Bumped by sleep()/reset(): work started before belongs to a host that no longer exists.
  let epoch = 0;
  let asleep = coldStartMs > 0;
  let waking: Promise<void> | null = null;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  // close() clears these timers, abandoning whatever awaited them: nothing fires after close.
  const wait = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  function wake(): Promise<void> {
    if (asleep) {
      asleep = false;
      waking = wait(coldStartMs).then(() => {
        waking = null;
      });
    }
    return waking ?? Promise.resolve();
  }

  /** slowapi's fixed window, keyed by client IP, limit and concrete path. */
  function rateLimit(ctx: Context): Reply | null {
    if (ctx.route === 'create') stats.createTimes.push(ctx.receivedAt);
    if (!rateLimited) return null;
    const perMinute = LIMITS[ctx.route];
    const key = `${ctx.ip} ${perMinute} ${ctx.path}`;
    const now = Date.now();
    let window = windows.get(key);
    if (!window || now >= window.start + windowMs) {
      window = { start: now, count: 0 };
      windows.set(key, window);
    }
    window.count++;
    if (window.count <= perMinute) return null;
    stats.count429++;
    return json(429, { error: `Rate limit exceeded: ${perMinute} per 1 minute` });
  }

  const batchRows = (batchId: string): Hospital[] => [...store.values()].filter((h) => h.creation_batch_id === batchId);
  const notFound = (): Reply => json(404, { detail: 'Hospital not found' });
  const batchNotFound = (): Reply => json(404, { detail: 'No hospitals found with the specified batch ID' });

  async function create(ctx: Context): Promise<Reply | 'drop'> {
    const checked = validateModel(ctx.body, CREATE_FIELDS);
    if ('errors' in checked) return unprocessable(checked.errors);
    const limited = rateLimit(ctx);
    if (limited) return limited;
    const batchId = checked.values.get('creation_batch_id') ?? null;
    if (batchId !== null && batchRows(batchId).length >= BATCH_CAP) {
      return json(400, { detail: `Batch cannot exceed ${BATCH_CAP} hospitals` });
    }
    const counted = stats; // reset() swaps in fresh stats: settle this create on the ones it counted in
    counted.inFlightCreates++;
    counted.maxInFlightCreates = Math.max(counted.maxInFlightCreates, counted.inFlightCreates);
    await wait(createDelayMs);
    counted.inFlightCreates--;
    if (ctx.epoch !== epoch) return 'drop';
    const hospital: Hospital = {
      id: nextId++,
      name: checked.values.get('name')!,
      address: checked.values.get('address')!,
      phone: checked.values.get('phone') ?? null,
      creation_batch_id: batchId,
      active: batchId === null,
      created_at: pythonLocalIsoNow(),
    };
    store.set(hospital.id, hospital);
    for (const id of store.keys()) {
      if (store.size <= maxHospitals) break;
      store.delete(id);
    }
    return json(200, hospital);
  }

  function hospital(ctx: Context): Reply {
    const id = parseHospitalId(ctx.param);
    const checked = ctx.method === 'PUT' ? validateModel(ctx.body, UPDATE_FIELDS) : { values: new Map<string, string | null>() };
    const errors = [...(typeof id === 'number' ? [] : [id]), ...('errors' in checked ? checked.errors : [])];
    if (errors.length > 0 || typeof id !== 'number' || 'errors' in checked) return unprocessable(errors);
    const limited = rateLimit(ctx);
    if (limited) return limited;
    const row = store.get(id);
    if (!row) return notFound();
    if (ctx.method === 'DELETE') {
      store.delete(id);
      return { status: 204, headers: { 'content-type': 'application/json' } };
    }
    if (ctx.method === 'PUT') {
      // A null name or address means "leave it"; a null phone clears it.
      const name = checked.values.get('name');
      const address = checked.values.get('address');
      if (name) row.name = name;
      if (address) row.address = address;
      if (checked.values.has('phone')) row.phone = checked.values.get('phone') ?? null;
    }
    return json(200, row);
  }

  function batch(ctx: Context): Reply {
    const parsed = uuidError(['path', 'batch_id'], ctx.param);
    if (!('uuid' in parsed)) return unprocessable([parsed]);
    const limited = rateLimit(ctx);
    if (limited) return limited;
    const rows = batchRows(parsed.uuid);
    if (rows.length === 0) return batchNotFound();
    if (ctx.route === 'batch') return json(200, rows);
    if (ctx.route === 'deleteBatch') {
      for (const row of rows) store.delete(row.id);
      return json(200, { deleted_count: rows.length, message: `Deleted ${rows.length} hospital(s) with batch ID ${parsed.uuid}` });
    }
    if (rows.some((row) => row.active)) {
      return json(400, { detail: 'Cannot activate batch: one or more hospitals in the batch are already active' });
    }
    for (const row of rows) row.active = true;
    return json(200, { activated_count: rows.length, message: `Activated ${rows.length} hospital(s) with batch ID ${parsed.uuid}` });
  }

  async function handle(ctx: Context): Promise<Reply | 'drop'> {
    switch (ctx.route) {
      case 'health': {
        return rateLimit(ctx) ?? json(200, { status: 'OK' });
      }
      case 'create':
        return create(ctx);
      case 'list':
        return rateLimit(ctx) ?? json(200, [...store.values()]);
      case 'hospital':
        return hospital(ctx);
      case 'batch':
      case 'activate':
      case 'deleteBatch':
        return batch(ctx);
    }
  }

  function send(req: IncomingMessage, res: ServerResponse, record: RecordedRequest | null, reply: Reply): void {
    if (req.socket.destroyed) return;
    if (record) {
      record.status = reply.status;
      record.durationMs = Date.now() - record.receivedAt;
    }
    const headers: Record<string, string> = { ...reply.headers };
    const bodyless = reply.status === 204 || reply.status === 304;
    if (!bodyless) headers['content-length'] = String(Buffer.byteLength(reply.body ?? ''));
    res.writeHead(reply.status, headers);
    res.end(bodyless ? undefined : reply.body);
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  function recordedBody(text: string): unknown {
    if (text === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }

  async function serveApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    const receivedAt = Date.now();
    const ready = wake();
    const matches = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).filter((x) => x.m !== null);
    const full = matches.find((x) => x.r.method === method);
    const record: RecordedRequest = { method, path, route: full?.r.name ?? null, body: null, receivedAt, status: null, durationMs: null };
    requests.push(record);
    const fault = full ? faults.get(full.r.name)?.shift() : undefined;
    if (fault?.kind === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    const text = await readBody(req);
    record.body = recordedBody(text);
    if (fault?.kind === 'hang' && !fault.store) return;
    if (fault?.kind === 'status' && !fault.store) return send(req, res, record, faultReply(fault));
    await ready;

    let reply: Reply | 'drop';
    if (full) {
      let param = full.m?.[1] ?? '';
      try {
        param = decodeURIComponent(param);
      } catch {
        // Starlette keeps undecodable escapes as they are.
      }
      const ctx: Context = {
        route: full.r.name, method, path, param, receivedAt, epoch,
        ip: req.socket.remoteAddress ?? '',
        body: parseBody(text, req.headers['content-type']),
      };
      reply = await handle(ctx);
    } else if (matches[0]) {
      reply = json(405, { detail: 'Method Not Allowed' }, { allow: matches[0].r.method });
    } else {
      // Starlette's redirect_slashes: retry the path with its trailing slash toggled.
      const toggled = path.endsWith('/') ? path.slice(0, -1) : `${path}/`;
      const query = (req.url ?? '').slice(path.length);
      reply = path !== '/' && ROUTES.some((r) => r.pattern.test(toggled))
        ? { status: 307, body: '', headers: { location: `http://${req.headers.host ?? hostPort()}${toggled}${query}` } }
        : json(404, { detail: 'Not Found' });
    }

    if (reply === 'drop' || fault?.kind === 'lose-response') req.socket.destroy();
    else if (fault?.kind === 'status') send(req, res, record, faultReply(fault));
    else if (fault?.kind !== 'hang') send(req, res, record, reply);
  }

  function faultReply(fault: Extract<Fault, { kind: 'status' }>): Reply {
    return json(fault.status, fault.body === undefined ? { detail: `Simulated ${fault.status}` } : fault.body);
  }

  function isFault(value: unknown): value is Fault {
    if (typeof value !== 'object' || value === null) return false;
    const f = value as Record<string, unknown>;
    if (f.store !== undefined && typeof f.store !== 'boolean') return false;
    if (f.kind === 'status') return Number.isInteger(f.status) && (f.status as number) >= 100 && (f.status as number) <= 599;
    return f.kind === 'pass' || f.kind === 'reset' || f.kind === 'hang' || f.kind === 'lose-response';
  }

  async function serveAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const text = await readBody(req);
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = text === '' ? {} : JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
    } catch {
      return send(req, res, null, json(400, { error: 'Body must be JSON' }));
    }
    const ok = json(200, { ok: true });
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /__sim/requests':
        return send(req, res, null, json(200, requests));
      case 'GET /__sim/state':
        return send(req, res, null, json(200, { hospitals: simulator.hospitals(), stats: simulator.stats() }));
      case 'POST /__sim/faults': {
        const times = body.times ?? 1;
        if (!ROUTE_NAMES.includes(body.route as RouteName) || !isFault(body.fault) || !Number.isInteger(times) || (times as number) < 1) {
          return send(req, res, null, json(400, { error: `Expected {route: ${ROUTE_NAMES.join('|')}, fault: {kind: status|reset|hang|lose-response, ...}, times?: positive integer}` }));
        }
        simulator.inject(body.route as RouteName, body.fault, times as number);
        return send(req, res, null, ok);
      }
      case 'POST /__sim/sleep':
        simulator.sleep();
        return send(req, res, null, ok);
      case 'POST /__sim/reset':
        simulator.reset();
        return send(req, res, null, ok);
      case 'POST /__sim/delay':
        if (!Number.isInteger(body.ms) || (body.ms as number) < 0) return send(req, res, null, json(400, { error: 'Expected {ms: non-negative integer}' }));
        simulator.setCreateDelay(body.ms as number);
        return send(req, res, null, ok);
      default:
        return send(req, res, null, json(404, { error: `Unknown admin route ${route}` }));
    }
  }

  const server = createServer((req, res) => {
    res.on('error', () => {}); // the client went away; nothing to answer
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    const serve = path.startsWith('/__sim/') ? serveAdmin(req, res, path) : serveApi(req, res, path);
    serve.catch(() => req.socket.destroy());
  });

  const hostPort = (): string => `${host.includes(':') ? `[${host}]` : host}:${port}`;

  function wipeHost(): void {
    store = new Map();
    nextId = 1;
    windows = new Map();
    epoch++;
  }

  const simulator: Simulator = {
    get url() {
      return `http://${hostPort()}`;
    },
    get port() {
      return port;
    },
    get requests() {
      return requests;
    },
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          port = (server.address() as AddressInfo).port;
          resolve();
        });
      });
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    inject(route, fault, times = 1) {
      const queue = faults.get(route) ?? [];
      for (let k = 0; k < times; k++) queue.push(fault);
      faults.set(route, queue);
    },
    setCreateDelay(ms) {
      createDelayMs = ms;
    },
    sleep() {
      wipeHost();
      asleep = coldStartMs > 0;
    },
    reset() {
      wipeHost();
      faults.clear();
      requests.length = 0;
      stats = { inFlightCreates: 0, maxInFlightCreates: 0, count429: 0, createTimes: [] };
      asleep = false;
    },
    hospitals() {
      return [...store.values()].map((h) => ({ ...h }));
    },
    stats() {
      return { ...stats, createTimes: [...stats.createTimes] };
    },
  };
  return simulator;
}
