import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { version } from '../version.js';
import {
  componentSchemas,
  idempotencyKey,
  lastEventIdHeader,
  listQuery,
  preferHeader,
  sseEventSchemas,
  uploadQuery,
} from './schemas.js';

/**
 * The OpenAPI 3.1 description of the API, built from the same zod schemas that validate
 * requests and type responses (src/http/schemas.ts), and the routes that serve it:
 * GET /openapi.json and an interactive GET /docs (Swagger UI, served from our own origin,
 * no CDN, no inline script).
 */

type JsonSchema = Record<string, unknown>;
type Operation = Record<string, unknown>;
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, unknown> };
}

export interface OpenApiLimits {
  maxRows: number;
  maxUploadBytes: number;
}

const SCHEMA_URI = (id: string) => `#/components/schemas/${id}`;
const ref = (id: string) => ({ $ref: SCHEMA_URI(id) });

/** A JSON Schema embedded in the document: OpenAPI 3.1's dialect is the default, so no `$schema`/`$id`. */
function embedded(schema: JsonSchema): JsonSchema {
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rest;
}

function toComponents(): Record<string, JsonSchema> {
  const registry = z.registry<z.core.GlobalMeta>();
  for (const schema of componentSchemas) {
    const meta = z.globalRegistry.get(schema);
    if (!meta?.id) throw new Error('Every component schema needs .meta({ id })');
    registry.add(schema, meta);
  }
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-2020-12', io: 'output', uri: SCHEMA_URI });
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, embedded(schema as JsonSchema)]));
}

/** A request-side schema as clients send it (before coercion, defaults and transforms). */
const input = (schema: z.ZodType) => embedded(z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' }) as JsonSchema);

/** The query parameters of a zod object, each with its schema, description and whether it is required. */
function queryParameters(schema: z.ZodObject): Operation[] {
  const json = input(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: 'query', required: json.required?.includes(name) ?? false, description, schema: rest };
  });
}

function header(name: string, schema: z.ZodType, required = false): Operation {
  const { description, examples, ...rest } = input(schema);
  // A transform's input schema loses the examples of its .meta(): read them from the registry.
  const listed = Array.isArray(examples) ? examples : (z.globalRegistry.get(schema) as { examples?: unknown[] } | undefined)?.examples;
  const example: unknown = listed?.[0];
  return { name, in: 'header', required, description, schema: rest, ...(example === undefined ? {} : { example }) };
}

const batchIdPath = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'The batch id (a UUID).',
  schema: ref('BatchId'),
};

const json = (schema: string, description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/json': { schema: ref(schema) } },
});

const problem = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { 'application/problem+json': { schema: ref('Problem') } },
});

const headers = {
  location: { description: 'Where the batch is: GET it for the report.', schema: { type: 'string', examples: ['/batches/fc5fc521-90eb-499d-a769-47f404628a17'] } },
  replayed: {
    description: '`true` when the answer is for an earlier upload with the same Idempotency-Key.',
    schema: { type: 'string', enum: ['true'] },
  },
  retryAfter: { description: 'Seconds to wait before sending the request again.', required: true, schema: { type: 'string', examples: ['30'] } },
  preferenceApplied: { description: 'Confirms `respond-async`.', schema: { type: 'string', enum: ['respond-async'] } },
};

const unavailable = problem(
  'Come back later: the directory could not be reached (the batch is kept, with its `batch_id`, and can be resumed), ' +
    'the service is restarting, or too many batches are running.',
  { 'Retry-After': headers.retryAfter },
);
const internal = problem('Unexpected error on our side; it was logged.');
const unauthorized = problem('The service has an API key set and the request did not carry it (or carried a wrong one).', {
  'WWW-Authenticate': { description: 'Bearer realm="hospital-bulk"', schema: { type: 'string' } },
});
const rateLimited = problem(
  'Too many uploads, resumes and rollbacks from this client in the last minute (UPLOAD_RATE_PER_MIN); `detail` and ' +
    'Retry-After say how many seconds to wait.',
  { 'Retry-After': headers.retryAfter },
);
const dryRunsLimited = problem(
  'Too many dry runs from this client in the last minute (VALIDATE_RATE_PER_MIN, a budget apart from uploads); ' +
    '`detail` and Retry-After say how many seconds to wait.',
  { 'Retry-After': headers.retryAfter },
);

/** The API routes need `Authorization: Bearer <API_KEY>` when the service has one set; `{}` says it may not. */
const secured = { security: [{ bearerAuth: [] }, {}] };

const uploadBody = {
  required: true,
  content: {
    'multipart/form-data': {
      schema: ref('UploadForm'),
      encoding: {
        file: { contentType: 'text/csv, text/plain, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, application/octet-stream' },
      },
    },
  },
};

function paths(limits: OpenApiLimits): OpenApiDocument['paths'] {
  return {
    '/health': {
      get: {
        tags: ['service'],
        operationId: 'getHealth',
        summary: 'Liveness and version',
        responses: { 200: json('Health', 'The service is up.') },
      },
    },
    '/health/ready': {
      get: {
        tags: ['service'],
        operationId: 'getReadiness',
        summary: 'Readiness: should this instance receive traffic?',
        description:
          '200 when the database answers and every migration is applied and the instance is not shutting down; 503 otherwise ' +
          '(before migrations, while the database is unreachable, after SIGTERM). Also says how the Hospital Directory last ' +
          'answered this instance, without calling it. No API key needed.',
        responses: {
          200: json('Readiness', 'Ready.'),
          503: {
            description: 'Not ready: `detail` says why (`database.detail`, `shutting_down`).',
            content: { 'application/problem+json': { schema: ref('NotReady') } },
          },
        },
      },
    },
    '/metrics': {
      get: {
        tags: ['service'],
        operationId: 'getMetrics',
        summary: "This instance's metrics, in Prometheus' text format",
        description:
          "Node's default metrics and `hospital_bulk_*`: batches by status and running (counted in the shared database, so " +
          'every instance agrees), row outcomes, directory requests, their durations and rate-limit waits, refused requests ' +
          '(counted per instance: Prometheus sums them). README "Operating it" lists them.',
        ...secured,
        responses: {
          200: { description: 'The exposition text.', content: { 'text/plain': { schema: { type: 'string' } } } },
          401: unauthorized,
          500: internal,
        },
      },
    },
    '/hospitals/bulk': {
      post: {
        tags: ['uploads'],
        operationId: 'uploadHospitals',
        summary: 'Upload a CSV or .xlsx of hospitals: create them all in the directory under one batch',
        description:
          `Multipart form data with the CSV or Excel workbook in the field \`file\` (see UploadForm for the encodings, delimiters and column names read; a workbook's sheet may be named in the field \`sheet\`): columns \`name\` and \`address\` required, \`phone\` optional, ` +
          `at most ${limits.maxRows} data rows and ${limits.maxUploadBytes} bytes. A file with problems is refused with 400 before ` +
          'anything is stored or sent, listing every problem. Otherwise the rows are created in the directory in file order and ' +
          'the batch is activated only when every row was created.\n\n' +
          'A file of more than 20 rows (with `MAX_ROWS` raised, up to 1,000) is one upload created as directory batches of 20 rows ' +
          'in file order (the most the directory holds in one batch): none is activated until every row of every one exists; the ' +
          'report then lists `directory_batches` and each row its `directory_batch_id`. The directory takes at most 30 creates a ' +
          'minute, so such a file takes at least rows ÷ 30 minutes: send it with `Prefer: respond-async`.\n\n' +
          'By default the request blocks until every row has been handled and answers the report (a batch with a failed row ' +
          'is still 200, with `status: failed`). With `Prefer: respond-async` (or `?async=true`) it answers 202 at once; ' +
          'follow the batch with GET /batches/{id} or its event stream.',
        ...secured,
        parameters: [
          ...queryParameters(uploadQuery),
          header('Prefer', preferHeader),
          header('Idempotency-Key', idempotencyKey),
        ],
        requestBody: uploadBody,
        responses: {
          200: json('BatchReport', 'The batch was processed (or, with a known Idempotency-Key, had been): the report.', {
            'Idempotent-Replayed': headers.replayed,
          }),
          202: json('AsyncAccepted', 'Accepted: the batch runs in the background.', {
            Location: { ...headers.location, required: true },
            'Preference-Applied': headers.preferenceApplied,
          }),
          400: problem(
            'The file has problems (every one is listed in `errors`, nothing was created), no file was sent, the Idempotency-Key is malformed, ' +
              'or the workbook cannot be read (damaged, password-protected, no such sheet).',
          ),
          401: unauthorized,
          409: problem('The upload with this Idempotency-Key is still being processed: follow Location.', {
            Location: headers.location,
            'Idempotent-Replayed': headers.replayed,
          }),
          413: problem(`The file is larger than ${limits.maxUploadBytes} bytes, or the workbook unpacks to more than we read (a zip bomb, a huge sheet).`),
          415: problem('The body is not multipart/form-data, or the file is neither text in an encoding we read nor an .xlsx workbook (e.g. a legacy .xls).'),
          422: problem('This Idempotency-Key was already used for a different file.'),
          429: rateLimited,
          500: internal,
          503: unavailable,
        },
      },
    },
    '/hospitals/bulk/validate': {
      post: {
        tags: ['uploads'],
        operationId: 'validateUpload',
        summary: 'Dry run: what an upload of this file would be told',
        description:
          'Applies every upload rule to the file and answers the rows as read, every problem and warnings (rows repeated in ' +
          'the file, rows already in the directory), and how the file was read (`format`: CSV or workbook, encoding, delimiter, ' +
          'sheet, and which header became which field), with `notices` such as "read as Windows-1252". Nothing is created or ' +
          'recorded. A file with problems, or one that cannot be read at all, is still 200, with `valid: false`.',
        ...secured,
        requestBody: uploadBody,
        responses: {
          200: json('DryRun', 'The verdict.'),
          400: problem('No file was sent, or the multipart body is malformed.'),
          401: unauthorized,
          413: problem(`The file is larger than ${limits.maxUploadBytes} bytes.`),
          415: problem('The body is not multipart/form-data.'),
          429: dryRunsLimited,
          500: internal,
        },
      },
    },
    '/batches': {
      get: {
        tags: ['batches'],
        operationId: 'listBatches',
        summary: 'The upload history, newest first',
        ...secured,
        parameters: queryParameters(listQuery),
        responses: {
          200: json('BatchList', 'A page of batches.'),
          400: problem('`limit` or `cursor` is not valid.'),
          401: unauthorized,
          500: internal,
        },
      },
    },
    '/batches/{id}': {
      get: {
        tags: ['batches'],
        operationId: 'getBatch',
        summary: 'A batch and every row of it',
        description: 'The same report as the upload; while the batch is pending or processing it also carries `progress`.',
        ...secured,
        parameters: [batchIdPath],
        responses: {
          200: json('BatchReport', 'The report.'),
          400: problem('The id is not a UUID.'),
          401: unauthorized,
          404: problem('No batch with this id.'),
          500: internal,
        },
      },
    },
    '/batches/{id}/results.csv': {
      get: {
        tags: ['batches'],
        operationId: 'downloadBatchResults',
        summary: "A batch's outcome as a CSV download",
        description:
          'One line per row: `row,name,address,phone,hospital_id,status,error_message`. A cell a spreadsheet would run as a ' +
          'formula gets a leading apostrophe.',
        ...secured,
        parameters: [batchIdPath],
        responses: {
          200: {
            description: 'The CSV, named after the upload (`hospitals.csv` → `hospitals-results.csv`).',
            headers: {
              'Content-Disposition': {
                description: 'attachment, with the file name (ASCII `filename` and UTF-8 `filename*`).',
                schema: { type: 'string' },
              },
            },
            content: { 'text/csv': { schema: { type: 'string' } } },
          },
          400: problem('The id is not a UUID.'),
          401: unauthorized,
          404: problem('No batch with this id.'),
          500: internal,
        },
      },
    },
    '/batches/{id}/resume': {
      post: {
        tags: ['batches'],
        operationId: 'resumeBatch',
        summary: 'Finish a failed, interrupted or cancelled batch',
        description:
          'Checks the directory first (a row whose answer was lost is adopted, not created twice; rows the directory forgot ' +
          'are created again), creates what is missing and activates the batch. Blocks until done. A row the directory ' +
          'rejected is not sent again until it is edited (PATCH /batches/{id}/rows/{row}): it stays `failed` with its reason.',
        ...secured,
        parameters: [batchIdPath],
        responses: {
          200: json('BatchReport', 'The batch was resumed: the report (which may still be `failed`).'),
          400: problem('The id is not a UUID.'),
          401: unauthorized,
          404: problem('No batch with this id.'),
          409: problem('The batch is not failed, interrupted or cancelled (`batch_status` says what it is).'),
          429: rateLimited,
          500: internal,
          503: unavailable,
        },
      },
    },
    '/batches/{id}/rollback': {
      post: {
        tags: ['batches'],
        operationId: 'rollbackBatch',
        summary: 'Delete a batch from the directory',
        description: 'Allowed for a failed, interrupted, cancelled or completed batch; every row becomes `deleted`. A file of more than 20 rows has every one of its directory batches deleted.',
        ...secured,
        parameters: [batchIdPath],
        responses: {
          200: json('BatchReport', 'The batch was rolled back: the report.'),
          400: problem('The id is not a UUID.'),
          401: unauthorized,
          404: problem('No batch with this id.'),
          409: problem('The batch is pending, processing or already rolled back (`batch_status` says which).'),
          429: rateLimited,
          500: internal,
          503: unavailable,
        },
      },
    },
    '/batches/{id}/rows/{row}': {
      patch: {
        tags: ['batches'],
        operationId: 'editBatchRow',
        summary: 'Correct a row that was not created, so that a resume can create it',
        description:
          'Fix and finish: new values for a row the directory rejected (or one that failed), checked like an upload\'s ' +
          '(name and address required, blank as the directory means it, at most 255 characters each). The row becomes ' +
          '`pending` again, without its error, and the next POST /batches/{id}/resume creates it: no re-upload, no duplicate. ' +
          'A resume never re-sends a rejected row unchanged: until it is edited, it stays `failed` with its reason.\n\n' +
          'Only while the batch is failed, interrupted or cancelled, and only for a row that is `pending` or `failed` (an `unknown` row ' +
          'may exist upstream: resume first to settle it). Appends a `row` event to the batch\'s stream; recorded in the report\'s `audit`.',
        ...secured,
        parameters: [
          batchIdPath,
          { name: 'row', in: 'path', required: true, description: 'The data row number, 1-based, as in the report.', schema: { type: 'integer', minimum: 1 } },
        ],
        requestBody: { required: true, content: { 'application/json': { schema: ref('RowEdit') } } },
        responses: {
          200: json('BatchReport', 'The row was changed: the batch report.'),
          400: problem(
            'The id or row number is malformed, the body is not a JSON object of name, address and phone, a value breaks an ' +
              'upload\'s rule (each in `errors`), or the values are the ones the directory rejected. Nothing was changed.',
          ),
          401: unauthorized,
          404: problem('No batch with this id, or no such row in it.'),
          409: problem(
            'The batch is pending, processing or rolled back (`batch_status`), or the row is not one that can be edited: ' +
              'created, being sent, of unknown outcome or deleted (`row_status`).',
          ),
          413: problem('The body is larger than 16 KiB.'),
          415: problem('The body is not application/json.'),
          500: internal,
        },
      },
    },
    '/batches/{id}/cancel': {
      post: {
        tags: ['batches'],
        operationId: 'cancelBatch',
        summary: 'Stop a queued or running batch',
        description:
          'A pending batch is cancelled at once (200). A processing one is stopped by whichever instance runs it, after the row ' +
          'in flight (202; follow Location or the event stream until `status: cancelled`). Rows not attempted stay `pending` ' +
          'and nothing is activated; a cancelled batch can be resumed or rolled back. Recorded in the report\'s `audit`.',
        ...secured,
        parameters: [batchIdPath],
        responses: {
          200: json('BatchReport', 'The batch was queued and is now cancelled.'),
          202: json('BatchReport', 'The batch is running: it stops after the row in flight (`cancel_requested_at` is set).', {
            Location: { ...headers.location, required: true },
          }),
          400: problem('The id is not a UUID.'),
          401: unauthorized,
          404: problem('No batch with this id.'),
          409: problem('The batch is not pending or processing (`batch_status` says what it is).'),
          500: internal,
        },
      },
    },
    '/batches/{id}/events': {
      get: {
        tags: ['batches'],
        operationId: 'streamBatchEvents',
        summary: 'Follow a batch as server-sent events',
        description:
          'A `text/event-stream`. Every recorded event after `Last-Event-ID` (all of them for a new client), then live ones as ' +
          'they happen; each has an `id:` (pass it back as Last-Event-ID to resume), an `event:` name and a JSON `data:` line:\n\n' +
          '- `row` (RowEvent): a row reached an outcome, with the batch `progress` after it;\n' +
          '- `batch` (BatchEvent): the batch changed state, or was activated (`batch_activated: true`);\n' +
          '- `directory` (DirectoryEvent): a directory call is waiting before it tries again (a retry after a failed attempt, ' +
          'or its rate limit), with the attempt and when the next try goes out; it holds until the next `row` or `batch` event;\n' +
          '- `report` (BatchReport): the final report, sent once the batch has finished; then the stream ends.\n\n' +
          'A finished batch replays its events and the report, and ends. Comment lines (`: keep-alive`) are sent every 15 s.',
        ...secured,
        parameters: [batchIdPath, header('Last-Event-ID', lastEventIdHeader)],
        responses: {
          200: {
            description: 'The event stream.',
            content: {
              'text/event-stream': {
                schema: { type: 'string', description: 'Server-sent events; see the operation description.' },
                example: 'id: 7\nevent: row\ndata: {"row":1,"status":"created","hospital_id":101,"error_message":null,"attempts":1}\n\n',
                // The `data:` JSON of each event name, for tools (and our tests) that read the stream.
                'x-sse-events': Object.fromEntries(
                  Object.entries(sseEventSchemas).map(([event, schema]) => [event, ref(z.globalRegistry.get(schema)!.id!)]),
                ),
              },
            },
          },
          400: problem('The id is not a UUID.'),
          401: unauthorized,
          404: problem('No batch with this id.'),
          500: internal,
        },
      },
    },
    '/': {
      get: {
        tags: ['pages'],
        operationId: 'getPage',
        summary: 'The operations page: upload, follow and manage batches in a browser',
        description: 'Its scripts and styles are files served next to it, from the same origin.',
        responses: { 200: { description: 'An HTML page.', content: { 'text/html': { schema: { type: 'string' } } } } },
      },
    },
    '/template.csv': {
      get: {
        tags: ['pages'],
        operationId: 'getCsvTemplate',
        summary: 'A CSV to start from: the three headers and one example row',
        description: 'UTF-8 with a BOM, so that Excel opens it as UTF-8. No API key needed.',
        responses: { 200: { description: 'The template, as an attachment.', content: { 'text/csv': { schema: { type: 'string' } } } } },
      },
    },
    '/template.xlsx': {
      get: {
        tags: ['pages'],
        operationId: 'getXlsxTemplate',
        summary: 'An Excel workbook to start from: the three headers and one example row',
        description: 'No API key needed.',
        responses: {
          200: {
            description: 'The template, as an attachment.',
            content: { 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
          },
        },
      },
    },
    '/openapi.json': {
      get: {
        tags: ['pages'],
        operationId: 'getOpenApi',
        summary: 'This document',
        responses: { 200: { description: 'The OpenAPI 3.1 document.', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    },
    '/docs': {
      get: {
        tags: ['pages'],
        operationId: 'getDocs',
        summary: 'Interactive documentation (Swagger UI)',
        description: 'Its script and styles are served from /docs/assets/ and /docs/swagger-init.js: nothing is loaded from elsewhere.',
        responses: { 200: { description: 'An HTML page.', content: { 'text/html': { schema: { type: 'string' } } } } },
      },
    },
    '/docs/swagger-init.js': {
      get: {
        tags: ['pages'],
        operationId: 'getDocsScript',
        summary: 'The script that starts Swagger UI on /docs',
        responses: { 200: { description: 'JavaScript.', content: { 'text/javascript': { schema: { type: 'string' } } } } },
      },
    },
  };
}

let components: Record<string, JsonSchema> | undefined;

/** The OpenAPI document; the limits are the configured ones, so the text states them. */
export function buildOpenApiDocument(limits: OpenApiLimits): OpenApiDocument {
  components ??= toComponents();
  return {
    openapi: '3.1.1',
    info: {
      title: 'hospital-bulk',
      version,
      description:
        'Upload a CSV of hospitals; every row is created in the Hospital Directory under one batch, the batch is activated ' +
        'only when every row made it, and each upload is kept in a history that can be resumed or rolled back. ' +
        'Every error is RFC 9457 problem JSON (`application/problem+json`).',
    },
    tags: [
      { name: 'uploads', description: 'Uploading a CSV.' },
      { name: 'batches', description: 'The upload history and the actions on a batch.' },
      { name: 'service', description: 'Operations.' },
      { name: 'pages', description: 'For people: the operations page, this documentation and its interactive form.' },
    ],
    paths: paths(limits),
    components: {
      schemas: components,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key, when the service has any set (API_KEY, or the named keys of API_KEYS); without one the API is open.',
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------
// Serving it

const swaggerUiDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
// Only what the page uses: swagger-ui-dist also ships a demo page that loads the petstore from the internet.
const SWAGGER_ASSETS = new Set(['/swagger-ui-bundle.js', '/swagger-ui-bundle.js.map', '/swagger-ui.css', '/swagger-ui.css.map', '/favicon-32x32.png', '/favicon-16x16.png']);

// No inline script or style, so a strict Content-Security-Policy (script-src 'self') fits.
const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>hospital-bulk API</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-init.js"></script>
</body>
</html>
`;

const DOCS_INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    // The online validator badge would call validator.swagger.io: the page stays offline.
    validatorUrl: null,
  });
});
`;

/** GET /openapi.json, GET /docs and the files the docs page loads. The document is serialised once. */
export function docsRoutes(document: OpenApiDocument): Router {
  const body = JSON.stringify(document);
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(body);
  });
  router.get('/docs', (_req, res) => {
    res.type('html').send(DOCS_HTML);
  });
  router.get('/docs/swagger-init.js', (_req, res) => {
    res.type('text/javascript').send(DOCS_INIT_JS);
  });
  const onlyUsedAssets: RequestHandler = (req, _res, next) => (SWAGGER_ASSETS.has(req.path) ? next() : next('router'));
  router.use('/docs/assets', onlyUsedAssets, express.static(swaggerUiDir, { index: false, maxAge: '1d' }));
  return router;
}
