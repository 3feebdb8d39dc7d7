import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Express } from 'express';
import request from 'supertest';
import { writeWorkbook } from '../src/bulk/xlsxWrite.js';
import { closedPortUrl, parseSse, type Stack, startStack } from './helpers.js';

/**
 * The OpenAPI document against the app that serves it: every route is documented and
 * every documented route exists; real answers, driven through the real stack, validate
 * against the schemas documented for their path, method, status and media type.
 */

interface MediaType {
  schema?: unknown;
  'x-sse-events'?: Record<string, unknown>;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, { required?: boolean }>;
  content?: Record<string, MediaType>;
}
interface Operation {
  operationId: string;
  responses: Record<string, ResponseObject>;
}
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const DOC_ID = 'https://hospital-bulk.test/openapi.json';
const UUID = '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55';
const KEY = 'a-test-api-key-that-is-long-enough';

const csv = (rows: number) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `Hospital ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

let stack: Stack;
afterEach(async () => stack?.close());

/** The document as the app serves it, and an ajv that knows it (its components resolve `$ref`s). */
async function served(app: Express) {
  const res = await request(app).get('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const doc = res.body as OpenApiDoc;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  // The formats the document uses (ajv knows none without ajv-formats; zod also emits patterns for them).
  ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addFormat('date-time', (value: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value) && !Number.isNaN(Date.parse(value)));
  ajv.addFormat('binary', true);
  ajv.addSchema({ ...doc, $id: DOC_ID });
  return { doc, ajv };
}

const pointer = (...parts: string[]) => parts.map((part) => `/${part.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

/** Every route the express app really has, as "METHOD /openapi/{path}", from its router stacks. */
function appRoutes(app: Express): Set<string> {
  interface Layer {
    route?: { path: string | string[]; methods: Record<string, boolean> };
    handle?: { stack?: Layer[] };
    rawPath?: unknown;
  }
  const found = new Set<string>();
  const walk = (layers: Layer[]) => {
    for (const layer of layers) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (!on) continue;
          if (method === '_all') throw new Error(`app.all() on ${String(layer.route.path)}: document each method instead`);
          for (const path of [layer.route.path].flat()) {
            found.add(`${method.toUpperCase()} ${path.replace(/:(\w+)/g, '{$1}')}`);
          }
        }
      } else if (layer.handle?.stack) {
        // Every router is mounted at the root; a prefix would have to be added to its paths.
        if (layer.rawPath !== '/') throw new Error(`a router mounted at ${String(layer.rawPath)}: teach this walk about prefixes`);
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return found;
}

/** Asserts an answer is documented for its route and status and validates its body against the documented schema. */
function expectDocumented(
  ctx: { doc: OpenApiDoc; ajv: Ajv2020 },
  method: string,
  path: string,
  res: request.Response,
): MediaType {
  const operation = ctx.doc.paths[path]?.[method];
  if (!operation) throw new Error(`${method.toUpperCase()} ${path} is not documented`);
  const response = operation.responses[String(res.status)];
  if (!response) throw new Error(`${method.toUpperCase()} ${path} answered ${res.status}, which is not documented: ${res.text.slice(0, 300)}`);
  const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  const content = response.content?.[mediaType];
  if (!content) throw new Error(`${method.toUpperCase()} ${path} ${res.status} answered ${mediaType}; documented: ${Object.keys(response.content ?? {}).join(', ')}`);
  for (const [name, header] of Object.entries(response.headers ?? {})) {
    if (header.required) expect(res.headers[name.toLowerCase()]).toBeDefined();
  }
  const body: unknown = /json$/.test(mediaType) ? res.body : res.text;
  validate(ctx.ajv, pointer('paths', path, method, 'responses', String(res.status), 'content', mediaType, 'schema'), body, `${method.toUpperCase()} ${path} ${res.status}`);
  return content;
}

function validate(ajv: Ajv2020, at: string, value: unknown, what: string): void {
  const check = ajv.getSchema(`${DOC_ID}#${at}`);
  if (!check) throw new Error(`no schema at ${at}`);
  if (!check(value)) {
    throw new Error(`${what} does not match its documented schema: ${ajv.errorsText(check.errors)}\n${JSON.stringify(value).slice(0, 800)}`);
  }
}

const upload = (app: Express, content: string | Buffer, filename = 'hospitals.csv') =>
  request(app).post('/hospitals/bulk').attach('file', Buffer.from(content), filename);

describe('the document and the routes', () => {
  test('every route the app serves is documented, and every documented operation is a route the app serves', async () => {
    stack = await startStack();
    const { doc } = await served(stack.app);

    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.keys(item)
          .filter((key) => HTTP_METHODS.includes(key))
          .map((method) => `${method.toUpperCase()} ${path}`),
      ),
    );
    const routes = appRoutes(stack.app);

    expect(routes.size).toBeGreaterThanOrEqual(10);
    expect([...routes].filter((route) => !documented.has(route)).sort()).toEqual([]);
    // A page served by express.static (the operations page at / once it is built) has no route
    // layer: such a documented GET must then really answer.
    const notRoutes = [...documented].filter((route) => !routes.has(route));
    for (const route of notRoutes) {
      const [method, path] = route.split(' ') as [string, string];
      expect([route, method]).toEqual([route, 'GET']);
      expect([route, (await request(stack.app).get(path)).status]).toEqual([route, 200]);
    }
  });

  test('the document is OpenAPI 3.1 with the package version, unique operation ids, and every error as problem JSON', async () => {
    stack = await startStack();
    const { doc, ajv } = await served(stack.app);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

    expect(doc.openapi).toBe('3.1.1');
    expect(doc.info.version).toBe(pkg.version);
    const operations = Object.values(doc.paths).flatMap((item) => Object.values(item));
    const ids = operations.map((operation) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const operation of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) >= 400) expect([operation.operationId, Object.keys(response.content ?? {})]).toEqual([operation.operationId, ['application/problem+json']]);
      }
    }
    // Every component compiles, so every $ref in it resolves.
    for (const name of Object.keys(doc.components.schemas)) expect(ajv.getSchema(`${DOC_ID}#${pointer('components', 'schemas', name)}`)).toBeDefined();
  });
});

describe('real answers match the documented schemas', () => {
  test('health, a completed upload, the history, the batch, its results CSV, a rollback and a refused resume', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);

    expectDocumented(ctx, 'get', '/health', await request(stack.app).get('/health'));
    expectDocumented(ctx, 'get', '/health/ready', await request(stack.app).get('/health/ready'));
    expectDocumented(ctx, 'get', '/metrics', await request(stack.app).get('/metrics'));

    const done = await upload(stack.app, csv(3));
    expect(done.body).toMatchObject({ status: 'completed', batch_activated: true });
    expectDocumented(ctx, 'post', '/hospitals/bulk', done);
    const id = done.body.batch_id as string;

    expectDocumented(ctx, 'get', '/batches', await request(stack.app).get('/batches?limit=1'));
    expectDocumented(ctx, 'get', '/batches/{id}', await request(stack.app).get(`/batches/${id}`));
    const results = await request(stack.app).get(`/batches/${id}/results.csv`);
    expect(results.status).toBe(200);
    expectDocumented(ctx, 'get', '/batches/{id}/results.csv', results);

    const refused = await request(stack.app).post(`/batches/${id}/resume`);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ batch_id: id, batch_status: 'completed' });
    expectDocumented(ctx, 'post', '/batches/{id}/resume', refused);

    const rolledBack = await request(stack.app).post(`/batches/${id}/rollback`);
    expect(rolledBack.body.status).toBe('rolled_back');
    expectDocumented(ctx, 'post', '/batches/{id}/rollback', rolledBack);
    const again = await request(stack.app).post(`/batches/${id}/rollback`);
    expect(again.status).toBe(409);
    expectDocumented(ctx, 'post', '/batches/{id}/rollback', again);
  });

  test('an upload the directory partly refuses: 200 with a failed report, and its resume', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'x' } });

    const res = await upload(stack.app, csv(3));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'failed', failed_hospitals: 1, batch_activated: false });
    expect(res.body.hospitals[1]).toMatchObject({ status: 'failed', error_message: expect.stringContaining('x') });
    expectDocumented(ctx, 'post', '/hospitals/bulk', res);
    const resumed = await request(stack.app).post(`/batches/${res.body.batch_id}/resume`);
    expect(resumed.status).toBe(200);
    expectDocumented(ctx, 'post', '/batches/{id}/resume', resumed);
  });

  test('an async upload: 202 with Location, then GET /batches/{id} with progress while it runs', async () => {
    stack = await startStack({ sim: { createDelayMs: 50 } });
    const ctx = await served(stack.app);

    const accepted = await request(stack.app).post('/hospitals/bulk').set('Prefer', 'respond-async').attach('file', Buffer.from(csv(4)), 'h.csv');

    expect(accepted.status).toBe(202);
    expectDocumented(ctx, 'post', '/hospitals/bulk', accepted);
    let withProgress = 0;
    for (let i = 0; i < 400; i += 1) {
      const res = await request(stack.app).get(accepted.headers.location!);
      expectDocumented(ctx, 'get', '/batches/{id}', res);
      if (res.body.progress) withProgress += 1;
      if (res.body.status === 'completed') break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(withProgress).toBeGreaterThan(0);
  });

  test('the event stream of a finished batch: every event validates against the schema documented for its name', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);
    const { body: report } = await upload(stack.app, csv(2));

    const res = await request(stack.app).get(`/batches/${report.batch_id}/events`);

    const media = expectDocumented(ctx, 'get', '/batches/{id}/events', res);
    const events = parseSse(res.text);
    expect(events.map((e) => e.event)).toEqual(['batch', 'row', 'row', 'batch', 'batch', 'report']);
    const documentedEvents = Object.keys(media['x-sse-events'] ?? {});
    expect(documentedEvents.sort()).toEqual(['batch', 'directory', 'report', 'row']);
    const at = pointer('paths', '/batches/{id}/events', 'get', 'responses', '200', 'content', 'text/event-stream', 'x-sse-events');
    for (const event of events) validate(ctx.ajv, `${at}/${event.event}`, event.data, `SSE event ${event.event}`);
  });

  test('the event stream of a batch whose directory answered 503 once: the `directory` event validates against its documented schema', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);
    stack.sim.inject('create', { kind: 'status', status: 503 });
    const { body: report } = await upload(stack.app, csv(1));

    const res = await request(stack.app).get(`/batches/${report.batch_id}/events`);

    const events = parseSse(res.text);
    expect(events.map((e) => e.event)).toEqual(['batch', 'directory', 'row', 'batch', 'batch', 'report']);
    const at = pointer('paths', '/batches/{id}/events', 'get', 'responses', '200', 'content', 'text/event-stream', 'x-sse-events');
    for (const event of events) validate(ctx.ajv, `${at}/${event.event}`, event.data, `SSE event ${event.event}`);
  });

  test('a row edit: 200 with the report, and its refusals (400, 404, 409, 415) are documented problem JSON', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 422, body: { detail: [{ loc: ['body', 'name'], msg: 'bad' }] } });
    const { body: report } = await upload(stack.app, csv(2));
    const patch = (row: number, body: unknown) =>
      request(stack.app).patch(`/batches/${report.batch_id}/rows/${row}`).set('Content-Type', 'application/json').send(JSON.stringify(body));

    const answers = [
      await patch(2, { name: ' ' }),
      await patch(3, { name: 'A' }),
      await patch(1, { name: 'A' }),
      await request(stack.app).patch(`/batches/${report.batch_id}/rows/2`).type('text').send('name=A'),
      await patch(2, { name: 'Hospital 2b', phone: null }),
    ];

    expect(answers.map((res) => res.status)).toEqual([400, 404, 409, 415, 200]);
    for (const res of answers) expectDocumented(ctx, 'patch', '/batches/{id}/rows/{row}', res);
  });

  test('a dry run, valid or not, answers the documented verdict', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);

    const valid = await request(stack.app).post('/hospitals/bulk/validate').attach('file', Buffer.from(`${csv(2)}\nHospital 1,1 Main St,\n`), 'h.csv');
    const invalid = await request(stack.app).post('/hospitals/bulk/validate').attach('file', Buffer.from('name,address\n ,1 Road\n'), 'h.csv');

    expect(valid.body).toMatchObject({ valid: true, warnings: [expect.objectContaining({ kind: 'repeated_in_file' })] });
    expectDocumented(ctx, 'post', '/hospitals/bulk/validate', valid);
    expect(invalid.body).toMatchObject({ valid: false, errors: [expect.objectContaining({ column: 'name' })] });
    expectDocumented(ctx, 'post', '/hospitals/bulk/validate', invalid);

    const workbook = await request(stack.app).post('/hospitals/bulk/validate').attach('file', writeWorkbook([['Hospital Name', 'Street'], ['A', 'B']]), 'h.xlsx');
    const legacy = await request(stack.app).post('/hospitals/bulk/validate').attach('file', Buffer.from('name;address\nH\xf4pital;Rue 1\n', 'latin1'), 'h.csv');
    const unreadable = await request(stack.app).post('/hospitals/bulk/validate').attach('file', Buffer.from([0, 1, 2]), 'h.csv');
    expect(workbook.body.format).toMatchObject({ type: 'xlsx', sheet: 'Hospitals' });
    expect(legacy.body.format).toMatchObject({ encoding: 'windows-1252', delimiter: ';' });
    expect(unreadable.body).toMatchObject({ valid: false, format: null });
    for (const res of [workbook, legacy, unreadable]) expectDocumented(ctx, 'post', '/hospitals/bulk/validate', res);
  });

  test('the templates are the documented downloads', async () => {
    stack = await startStack();
    const ctx = await served(stack.app);

    expectDocumented(ctx, 'get', '/template.csv', await request(stack.app).get('/template.csv'));
    expectDocumented(ctx, 'get', '/template.xlsx', await request(stack.app).get('/template.xlsx'));
  });

  test('refusals: 400 CSV problems, 400 bad id or limit, 404, 413, 415 and 422 are documented problem JSON', async () => {
    stack = await startStack({ env: { MAX_UPLOAD_BYTES: '2000', UPLOAD_RATE_PER_MIN: '1000' } });
    const ctx = await served(stack.app);

    const invalid = await upload(stack.app, 'name,address,phone\nGood,1 Road,\n ,2 Road,\n');
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors).toEqual([{ row: 2, line: 3, column: 'name', message: 'Line 3: name is required' }]);
    expectDocumented(ctx, 'post', '/hospitals/bulk', invalid);

    const badId = await request(stack.app).get('/batches/not-a-uuid');
    expect(badId.status).toBe(400);
    expectDocumented(ctx, 'get', '/batches/{id}', badId);
    const badLimit = await request(stack.app).get('/batches?limit=0');
    expect(badLimit.status).toBe(400);
    expectDocumented(ctx, 'get', '/batches', badLimit);

    for (const [method, path] of [
      ['get', '/batches/{id}'],
      ['get', '/batches/{id}/events'],
      ['get', '/batches/{id}/results.csv'],
      ['post', '/batches/{id}/resume'],
      ['post', '/batches/{id}/rollback'],
    ] as const) {
      const res = await request(stack.app)[method](path.replace('{id}', UUID));
      expect(res.status).toBe(404);
      expectDocumented(ctx, method, path, res);
    }

    const tooLarge = await upload(stack.app, `name,address\n${'Hospital,Street\n'.repeat(300)}`);
    expect(tooLarge.status).toBe(413);
    expectDocumented(ctx, 'post', '/hospitals/bulk', tooLarge);

    const notMultipart = await request(stack.app).post('/hospitals/bulk').send({ name: 'x' });
    expect(notMultipart.status).toBe(415);
    expectDocumented(ctx, 'post', '/hospitals/bulk', notMultipart);

    const first = await upload(stack.app, csv(1)).set('Idempotency-Key', 'k-1');
    expect(first.status).toBe(200);
    const replay = await upload(stack.app, csv(1)).set('Idempotency-Key', 'k-1');
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expectDocumented(ctx, 'post', '/hospitals/bulk', replay);
    const reused = await upload(stack.app, csv(2)).set('Idempotency-Key', 'k-1');
    expect(reused.status).toBe(422);
    expect(reused.body.batch_id).toBe(first.body.batch_id);
    expectDocumented(ctx, 'post', '/hospitals/bulk', reused);
  });

  test('503: the directory cannot be reached, or the service is stopping', async () => {
    stack = await startStack({ env: { HOSPITAL_API_BASE_URL: await closedPortUrl(), WARMUP_TIMEOUT_MS: '200' } });
    const ctx = await served(stack.app);

    const down = await upload(stack.app, csv(1));
    expect(down.status).toBe(503);
    expect(down.body.batch_id).toEqual(expect.any(String));
    expectDocumented(ctx, 'post', '/hospitals/bulk', down);

    await stack.deps.lifecycle.stop();
    const stopping = await request(stack.app).post(`/batches/${down.body.batch_id}/resume`);
    expect(stopping.status).toBe(503);
    expectDocumented(ctx, 'post', '/batches/{id}/resume', stopping);
  });

  test('401 without the API key and 429 past the dry-run rate; the docs stay open', async () => {
    stack = await startStack({ env: { API_KEY: KEY, VALIDATE_RATE_PER_MIN: '1' } });
    const ctx = await served(stack.app);

    const anonymous = await request(stack.app).get('/batches');
    expect(anonymous.status).toBe(401);
    expectDocumented(ctx, 'get', '/batches', anonymous);
    expect((await request(stack.app).get('/docs')).status).toBe(200);

    const dryRun = () => request(stack.app).post('/hospitals/bulk/validate').set('Authorization', `Bearer ${KEY}`).attach('file', Buffer.from(csv(1)), 'h.csv');
    expect((await dryRun()).status).toBe(200);
    const limited = await dryRun();
    expect(limited.status).toBe(429);
    expectDocumented(ctx, 'post', '/hospitals/bulk/validate', limited);
  });
});

describe('the docs page', () => {
  test('GET /docs is our own HTML page, without inline script, loading Swagger UI from /docs/assets/ and the document from /openapi.json', async () => {
    stack = await startStack();

    const page = await request(stack.app).get('/docs');

    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).toContain('src="/docs/assets/swagger-ui-bundle.js"');
    expect(page.text).toContain('href="/docs/assets/swagger-ui.css"');
    expect(page.text).not.toMatch(/https?:\/\//);
    const scripts = [...page.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    expect(scripts.every(([, attributes, body]) => /\ssrc="\/docs\//.test(attributes!) && body!.trim() === '')).toBe(true);

    const bundle = await request(stack.app).get('/docs/assets/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    expect(bundle.headers['content-type']).toMatch(/^(text|application)\/javascript/);
    const css = await request(stack.app).get('/docs/assets/swagger-ui.css');
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    const init = await request(stack.app).get('/docs/swagger-init.js');
    expect(init.status).toBe(200);
    expect(init.headers['content-type']).toMatch(/^(text|application)\/javascript/);
    expect(init.text).toContain("url: '/openapi.json'");
    expect(init.text).not.toMatch(/https?:\/\//);
  });

  test('only the files the page uses are served from swagger-ui-dist', async () => {
    stack = await startStack();

    const demo = await request(stack.app).get('/docs/assets/index.html');
    const traversal = await request(stack.app).get('/docs/assets/..%2Fpackage.json');

    expect(demo.status).toBe(404);
    expect(traversal.status).toBe(404);
  });
});
