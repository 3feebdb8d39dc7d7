// The floor for the concurrency figure: the least any service can do for one upload of the
// benchmark's CSV. It receives POST /hospitals/bulk, wakes the directory (GET /), creates
// each row (UPSTREAM_CONCURRENCY at once, or one at a time when it is 1), activates the
// batch and answers: no CSV checks, no database, no pacing, no retries, no events. With
// FLOOR_CLIENT=got it calls the directory through got, configured and used as
// src/directory/transport.ts does (its stream interface); otherwise through plain node:http
// with the same keep-alive agent. So the service's time above this floor is its own work,
// and got's time above the node:http floor is what the client library costs. Plain
// JavaScript run by node, like hello-server.js.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import got from 'got';

const directory = new URL(process.env.HOSPITAL_API_BASE_URL);
const concurrency = Number(process.env.UPSTREAM_CONCURRENCY ?? 1);
const agent = new http.Agent({ keepAlive: true, timeout: 4_000 });

/** One request to the directory through node:http: its status. */
function plainCall(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = { 'user-agent': 'hospital-bulk', ...(data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }) };
    const req = http.request({ host: directory.hostname, port: directory.port, path, method, agent, headers, timeout: 90_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const api = got.extend({
  prefixUrl: directory.href,
  retry: { limit: 0 },
  throwHttpErrors: false,
  followRedirect: false,
  agent: { http: agent },
  headers: { 'user-agent': 'hospital-bulk' },
  timeout: { connect: 10_000, request: 90_000 },
});

/** One request to the directory through got's stream interface, as the service's transport sends it: its status. */
function gotCall(method, path, json) {
  return new Promise((resolve, reject) => {
    const stream = api.stream(path.slice(1), json === undefined ? { method } : { method, json });
    let status = 0;
    stream.on('response', (res) => (status = res.statusCode));
    stream.on('data', () => {});
    stream.on('end', () => resolve(status));
    stream.on('error', reject);
    if (json === undefined && method !== 'GET') stream.end();
  });
}
const call = process.env.FLOOR_CLIENT === 'got' ? gotCall : plainCall;

/** The data lines of the benchmark's CSV (name,address,phone, no quoting) inside the multipart body. */
function csvRows(body) {
  const lines = body.split(/\r?\n/);
  const header = lines.indexOf('name,address,phone');
  const rows = [];
  for (const line of lines.slice(header + 1)) {
    if (line === '' || line.startsWith('--')) break;
    const [name, address, phone] = line.split(',');
    rows.push({ name, address, phone });
  }
  return rows;
}

async function upload(rows) {
  const batchId = randomUUID();
  await call('GET', '/');
  let created = 0;
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const row = rows[next++];
      if ((await call('POST', '/hospitals/', { ...row, creation_batch_id: batchId })) < 300) created += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker));
  const activated = created === rows.length && (await call('PATCH', `/hospitals/batch/${batchId}/activate`)) === 200;
  return { batch_id: batchId, status: activated ? 'completed' : 'failed', batch_activated: activated, total_hospitals: rows.length, processed_hospitals: created };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/health') return reply(200, { status: 'ok' });
    if (req.method !== 'POST' || req.url !== '/hospitals/bulk') return reply(404, { error: 'not found' });
    upload(csvRows(Buffer.concat(chunks).toString('utf8'))).then(
      (report) => reply(200, report),
      (error) => reply(502, { error: String(error) }),
    );
  });
});
server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
