import { z } from 'zod';
import { BATCH_STATUSES, ROW_STATUSES } from '../bulk/status.js';
import { DIRECTORY_OPS } from '../directory/types.js';

/**
 * Everything the HTTP API takes and gives, as zod schemas. The request schemas are the ones
 * src/http/routes.ts validates with; the response schemas type the builders in
 * src/http/presenter.ts (a drift is a compile error) and become the OpenAPI document's
 * `components.schemas` (src/http/openapi.ts), so the documentation cannot disagree with
 * either. Schemas with a `.meta({ id })` are emitted as named components.
 */

// ---------------------------------------------------------------------------------------
// Requests

export const batchIdParam = z
  .uuid({ error: 'The batch id must be a UUID.' })
  .meta({ id: 'BatchId', description: 'A batch id, as given by the upload (a UUID).', examples: ['fc5fc521-90eb-499d-a769-47f404628a17'] });

const limitMessage = 'limit must be a whole number from 1 to 200';
export const listQuery = z.object({
  limit: z.coerce
    .number({ error: limitMessage })
    .int({ error: limitMessage })
    .min(1, { error: limitMessage })
    .max(200, { error: limitMessage })
    .default(50)
    .meta({ description: 'How many batches to return, newest first.' }),
  cursor: z
    .string()
    .optional()
    .meta({ description: 'The `next_cursor` of the previous page; omit it for the first page.' }),
});

// The IETF draft makes the key a structured-field string ("…"); a bare token is accepted too.
export const idempotencyKey = z
  .string()
  .transform((value) => value.trim().replace(/^"(.*)"$/, '$1'))
  .pipe(z.string().regex(/^[\x21-\x7e]{1,255}$/, { error: 'Idempotency-Key must be 1 to 255 visible ASCII characters.' }))
  .meta({
    description:
      'Makes a retried upload safe: the same key with the same file returns the same batch instead of creating a second one ' +
      '(409 with Location while it still runs); the same key with another file is refused with 422. ' +
      '1 to 255 visible ASCII characters, bare or as a quoted structured-field string.',
    examples: ['"9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"'],
  });

/** Documented only: the route reads these itself (anything but `respond-async` / `true` means synchronous). */
export const preferHeader = z.string().meta({
  description: 'RFC 7240. `respond-async` answers 202 at once and processes the batch in the background.',
  examples: ['respond-async'],
});
export const uploadQuery = z.object({
  async: z
    .enum(['true', 'false'])
    .optional()
    .meta({ description: '`true` does what `Prefer: respond-async` does, for clients that cannot set headers.' }),
});
export const lastEventIdHeader = z.string().meta({
  description: 'Resume a stream: only events after this event id are sent (browsers send it on reconnect).',
  examples: ['42'],
});

export const rowParam = z
  .string()
  .regex(/^[1-9]\d{0,8}$/, { error: 'The row must be a data row number: a whole number from 1.' })
  .transform(Number)
  .meta({ description: 'A data row number, 1-based, as in the report (`row`).', examples: ['2'] });

const editedValue = (field: string) =>
  z.string({ error: `${field} must be a string.` }).meta({ description: `The new ${field}: checked like an upload's (stripped, at most 255 characters).` });

/** The body of PATCH /batches/{id}/rows/{row}: its shape here, its values by the upload's rules (src/bulk/editRow.ts). */
export const RowEditSchema = z
  .strictObject(
    {
      name: editedValue('name').optional(),
      address: editedValue('address').optional(),
      phone: z
        .string({ error: 'phone must be a string or null.' })
        .nullable()
        .optional()
        .meta({ description: 'The new phone; null or blank for none.' }),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `Unknown field ${issue.keys.map((key) => `"${key}"`).join(', ')}: a row has name, address and phone.`
          : 'Send the row as a JSON object: {"name": …, "address": …, "phone": …}.',
    },
  )
  .meta({
    id: 'RowEdit',
    description: 'New values for a row: any of `name`, `address` and `phone`; the fields left out keep their values.',
    examples: [{ address: '12 Harbour Road, Leith' }],
  });

export const UploadFormSchema = z
  .object({
    file: z.file().meta({
      description:
        'The hospitals, as a CSV or an Excel workbook (.xlsx, recognised by its bytes, not its name). A CSV may be UTF-8 ' +
        '(with or without BOM), UTF-16 with a BOM, or Windows-1252, separated by commas, semicolons or tabs (detected from ' +
        'the header). Columns `name` and `address` required, `phone` optional, in any order; headers match ignoring case, ' +
        'spaces and punctuation, and familiar names such as "Hospital Name", "Street Address" or "Phone Number" are accepted ' +
        '(README "What files we read" lists them).',
    }),
    sheet: z.string().optional().meta({ description: 'The worksheet to read from a workbook; the first when absent. Ignored for a CSV.' }),
  })
  .meta({ id: 'UploadForm', description: 'The multipart form of an upload: exactly one file, in the field `file`.' });

// ---------------------------------------------------------------------------------------
// Responses

export const BatchStatusSchema = z.enum(BATCH_STATUSES).meta({
  id: 'BatchStatus',
  description:
    '`pending` recorded, not started; `processing` running; `completed` every row created and the batch activated; ' +
    '`failed` some row not created (resumable); `interrupted` the service stopped during it (resumable); ' +
    '`rolled_back` deleted from the directory; `cancelled` stopped on request (rows not attempted stay `pending`, nothing ' +
    'activated; resumable, or roll it back).',
});

export const RowStatusSchema = z.enum(ROW_STATUSES).meta({
  id: 'RowStatus',
  description:
    '`pending` never attempted; `creating` on the wire; `created` exists upstream, batch not activated; ' +
    '`created_and_activated`; `failed` (see `error_message`); `unknown` no answer: it may exist, a resume checks; ' +
    '`deleted` rolled back.',
});

const count = (description: string) => z.int().nonnegative().meta({ description });
const timestamp = (description: string) => z.iso.datetime().meta({ description });

export const RowReportSchema = z
  .object({
    row: z.int().positive().meta({ description: 'Data row number in the file, 1-based (the header is row 0).' }),
    hospital_id: z.int().nullable().meta({ description: 'The hospital id in the directory, once created.' }),
    directory_batch_id: z
      .uuid()
      .optional()
      .meta({ description: 'Only for a file of more than 20 rows: the directory batch the row is created in (see `directory_batches`).' }),
    name: z.string(),
    address: z.string(),
    phone: z.string().nullable(),
    status: RowStatusSchema,
    error_message: z.string().nullable().meta({ description: 'Why the row is not created, in words a person can act on.' }),
    attempts: count('Create requests sent for this row so far.'),
  })
  .meta({ id: 'RowReport', description: 'What happened to one CSV row.' });

export const ProgressSchema = z
  .object({
    done: count('Rows created.'),
    failed: count('Rows failed or of unknown outcome.'),
    pending: count('Rows still to go.'),
    percent: z.int().min(0).max(100).meta({ description: 'Rows finished (done or failed), in percent.' }),
    current_row: z.int().positive().nullable().meta({ description: 'The row being sent now, if any.' }),
    elapsed_seconds: z.number().nonnegative(),
    eta_seconds: z
      .number()
      .nonnegative()
      .nullable()
      .meta({ description: 'Estimated seconds to go (never below the wait the rate limiter predicts); null before anything is known.' }),
  })
  .meta({ id: 'Progress', description: 'Where a running batch is.' });

const summaryShape = {
  batch_id: batchIdParam,
  filename: z.string().meta({ description: 'The uploaded file name, for display.' }),
  status: BatchStatusSchema,
  total_hospitals: count('Data rows in the file.'),
  processed_hospitals: count('Rows created in the directory.'),
  failed_hospitals: count('Rows that failed.'),
  batch_activated: z.boolean().meta({ description: 'Whether the batch was activated (only when every row was created).' }),
  created_at: timestamp('When the upload was received.'),
  completed_at: timestamp('When the batch last finished.').nullable(),
  created_by: z
    .string()
    .nullable()
    .meta({ description: 'The name of the API key that uploaded it (API_KEYS); null for the unnamed API_KEY or when no key is set.' }),
};

export const BatchSummarySchema = z.object(summaryShape).meta({ id: 'BatchSummary', description: 'One upload in the history.' });

export const BatchReportSchema = z
  .object({
    ...summaryShape,
    processing_time_seconds: z.number().nonnegative().nullable(),
    error: z.string().nullable().meta({ description: 'Why the batch as a whole stopped, if it did.' }),
    notice: z.string().nullable().meta({ description: 'What a resume found out, e.g. that the directory had forgotten the batch.' }),
    hospitals: z.array(RowReportSchema).meta({ description: 'Every row, in file order.' }),
    cancel_requested_at: timestamp('When a cancel was asked for while the batch runs; it stops after the row in flight. Null otherwise.').nullable(),
    audit: z
      .array(
        z.object({
          action: z.enum(['resume', 'rollback', 'cancel', 'edit_row']),
          by: z.string().nullable().meta({ description: 'The API key name (API_KEYS); null for the unnamed API_KEY or when no key is set.' }),
          at: timestamp('When.'),
        }),
      )
      .meta({ description: 'Who resumed, rolled back or cancelled the batch, or edited a row, and when; oldest first.' }),
    progress: ProgressSchema.optional().meta({ description: 'Only while the batch is pending or processing.' }),
    directory_batches: z
      .array(
        z.object({
          id: z.uuid().meta({ description: "The directory batch's id (`creation_batch_id` upstream); the first is the upload's `batch_id`." }),
          first_row: z.int().positive(),
          last_row: z.int().positive(),
          activated: z.boolean().meta({ description: 'Every hospital of this directory batch is active.' }),
        }),
      )
      .optional()
      .meta({
        description:
          'Only for a file of more than 20 rows (the most the directory holds in one batch): it is created as directory batches of 20 rows, in file order. ' +
          'None is activated until every row of every one exists; `batch_activated` is true once all are.',
      }),
  })
  .meta({ id: 'BatchReport', description: 'A batch and every row of it: the answer of an upload, a resume, a rollback and GET /batches/{id}.' });

export const BatchListSchema = z
  .object({
    batches: z.array(BatchSummarySchema).meta({ description: 'Newest first.' }),
    next_cursor: z.string().nullable().meta({ description: 'Pass it as `cursor` for the next page; null on the last page.' }),
  })
  .meta({ id: 'BatchList', description: 'A page of the upload history.' });

export const AsyncAcceptedSchema = z
  .object({
    batch_id: batchIdParam,
    status: BatchStatusSchema,
    total_hospitals: count('Data rows in the file.'),
    links: z.object({
      self: z.string().meta({ description: 'Poll it for the report and `progress`.' }),
      events: z.string().meta({ description: 'Follow it as server-sent events.' }),
    }),
  })
  .meta({ id: 'AsyncAccepted', description: 'An upload accepted for background processing.' });

export const HealthSchema = z
  .object({
    status: z.literal('ok'),
    version: z.string().meta({ description: 'The service version.' }),
    instance: z.string().meta({ description: 'Which instance answered (INSTANCE_ID, or host-pid-random).' }),
    database: z.enum(['sqlite', 'postgres']).meta({ description: 'The database engine this instance uses.' }),
  })
  .meta({ id: 'Health', description: 'The service is up.' });

export const ReadinessSchema = z
  .object({
    status: z.literal('ready'),
    instance: z.string().meta({ description: 'Which instance answered.' }),
    database: z.object({
      engine: z.enum(['sqlite', 'postgres']),
      ready: z.boolean().meta({ description: 'The database answers and every migration is applied.' }),
      detail: z.string().nullable().meta({ description: 'Why not, when not.' }),
    }),
    shutting_down: z.boolean().meta({ description: 'The instance is stopping (SIGTERM): send new work elsewhere.' }),
    directory: z
      .object({
        state: z.enum(['unknown', 'reachable', 'unreachable']).meta({ description: '`unknown` until this instance has sent it anything.' }),
        last_status: z.int().nullable().meta({ description: 'HTTP status of its last answer; null without one.' }),
        last_answer_at: z.iso.datetime().nullable(),
      })
      .meta({ description: 'The Hospital Directory as this instance last heard from it (not called by this check, and not part of readiness).' }),
  })
  .meta({ id: 'Readiness', description: 'Whether this instance should receive traffic: 200 ready, 503 not (yet, or any more).' });

export const NotReadySchema = ReadinessSchema.extend({
  type: z.literal('urn:hospital-bulk:problem:not_ready'),
  title: z.literal('Not ready'),
  status: z.literal(503),
  detail: z.string().meta({ description: 'Why not, in words.' }),
}).meta({ id: 'NotReady', description: 'The readiness answer as RFC 9457 problem details (503): the Readiness members and why not.' });

export const CsvProblemSchema = z
  .object({
    row: z.int().positive().nullable().meta({ description: 'Data row number, 1-based; null for file-level problems.' }),
    line: z.int().positive().nullable().meta({ description: 'Line in the file, 1-based; null when not tied to a line.' }),
    column: z.string().nullable().meta({ description: 'The column, when the problem is about one.' }),
    message: z.string(),
  })
  .meta({ id: 'CsvProblem', description: 'One problem found in an uploaded CSV.' });

export const ProblemSchema = z
  .object({
    type: z
      .string()
      .regex(/^urn:hospital-bulk:problem:[a-z_]+$/)
      .meta({ description: 'Identifies the kind of problem, e.g. `urn:hospital-bulk:problem:invalid_csv`.' }),
    title: z.string().meta({ description: 'A short summary of the kind of problem.' }),
    status: z.int().min(400).max(599),
    detail: z.string().meta({ description: 'What went wrong this time, and what to do.' }),
    errors: z
      .array(CsvProblemSchema)
      .optional()
      .meta({ description: 'Every problem in the CSV (invalid_csv), or in the values of a row edit (bad_request on PATCH /batches/{id}/rows/{row}).' }),
    batch_id: batchIdParam.optional().meta({ description: 'The batch concerned (409, 422 and 503).' }),
    batch_status: BatchStatusSchema.optional().meta({ description: 'The state that prevented the action (409 on resume, rollback, cancel and row edits).' }),
    row: z.int().positive().optional().meta({ description: 'The row concerned (409 on a row edit).' }),
    row_status: RowStatusSchema.optional().meta({ description: "The row's state that prevented the edit (409 on a row edit)." }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details, sent as application/problem+json.' });

export const FileFormatSchema = z
  .object({
    type: z.enum(['csv', 'xlsx']),
    encoding: z.enum(['utf-8', 'utf-16le', 'utf-16be', 'windows-1252']).nullable().meta({ description: "The CSV's text encoding; null for a workbook." }),
    delimiter: z.enum([',', ';', '\t']).nullable().meta({ description: "The CSV's delimiter; null for a workbook." }),
    sheet: z.string().nullable().meta({ description: 'The worksheet read; null for a CSV.' }),
    columns: z
      .array(z.object({ header: z.string(), field: z.enum(['name', 'address', 'phone']) }))
      .meta({ description: 'Each header that names a field, and the field ("Hospital Name" → name), in the file\'s order.' }),
  })
  .meta({ id: 'FileFormat', description: 'How an uploaded file was read. In a workbook, `line` in problems is the worksheet row.' });

export const DryRunSchema = z
  .object({
    valid: z.boolean().meta({ description: 'Whether the upload would be accepted.' }),
    total_rows: count('Data rows read.'),
    rows: z
      .array(
        z.object({
          row: z.int().positive(),
          name: z.string(),
          address: z.string(),
          phone: z.string().nullable(),
        }),
      )
      .meta({ description: 'The rows as an upload would read them.' }),
    errors: z.array(CsvProblemSchema).meta({ description: 'Every problem an upload would be refused for.' }),
    warnings: z
      .array(
        z.object({
          kind: z.enum(['repeated_in_file', 'exists_in_directory', 'looks_like_formula', 'not_checked']),
          row: z.int().positive().nullable(),
          message: z.string(),
        }),
      )
      .meta({
        description:
          'Not reasons to refuse: rows repeated in the file, rows whose name and address already exist in the directory, ' +
          '`looks_like_formula` for a value a spreadsheet would run as a formula (stored as written; results.csv neutralises it), ' +
          'or `not_checked` when the directory could not be reached.',
      }),
    format: FileFormatSchema.nullable().meta({ description: 'How the file was read; null when it could not be read as a table.' }),
    notices: z.array(z.string()).meta({ description: 'What the person should check about how the file was read, e.g. that it was read as Windows-1252.' }),
  })
  .meta({ id: 'DryRun', description: 'What an upload of this file would be told, without creating or recording anything.' });

// ---------------------------------------------------------------------------------------
// Server-sent events of GET /batches/{id}/events

export const RowEventSchema = z
  .object({
    row: z.int().positive(),
    status: RowStatusSchema,
    hospital_id: z.int().nullable(),
    error_message: z.string().nullable(),
    attempts: z.int().nonnegative(),
    progress: ProgressSchema.optional().meta({ description: 'The batch progress after this row.' }),
  })
  .meta({ id: 'RowEvent', description: 'SSE event `row`: a row reached an outcome.' });

export const BatchEventSchema = z
  .object({
    status: BatchStatusSchema,
    error: z.string().nullable().optional(),
    batch_activated: z.boolean().optional(),
    directory_batch_id: z.uuid().optional().meta({ description: 'A file of more than 20 rows: this directory batch was just activated (`batch_activated` stays false until all are).' }),
    directory_batch_activated: z.boolean().optional(),
  })
  .meta({ id: 'BatchEvent', description: 'SSE event `batch`: the batch changed state (or was activated).' });

export const DirectoryEventSchema = z
  .object({
    row: z.int().positive().nullable().meta({ description: 'The row the call is for; null for calls about the whole batch (wake, activate, read, delete).' }),
    op: z.enum(DIRECTORY_OPS).meta({ description: 'The directory call: `wake` (GET /), `create`, `activate`, `get_batch`, `delete_batch`, `list`.' }),
    reason: z.enum(['retry', 'rate_limited']).meta({
      description: "`retry`: an attempt failed and the next one waits its backoff; `rate_limited`: the call waits for the directory's rate window.",
    }),
    attempt: z.int().positive().meta({ description: 'For `retry`, the attempt that failed (the next try is attempt + 1); for `rate_limited`, the attempt being held.' }),
    status: z.int().nullable().meta({ description: 'The HTTP status the directory answered (429 for its rate limit); null when it did not answer, or when we pace ourselves.' }),
    message: z.string().meta({ description: 'What happened, in words.' }),
    retry_at: timestamp('When the next try goes out.'),
    retry_in_seconds: z.number().nonnegative().meta({ description: 'Seconds from when this event was sent to the next try (0 once past): count down from it.' }),
  })
  .meta({
    id: 'DirectoryEvent',
    description: 'SSE event `directory`: a directory call is waiting before it tries again. It holds until the next `row` or `batch` event.',
  });

/** SSE event name → schema of its `data:` JSON; `report` is the final report, after which the stream ends. */
export const sseEventSchemas = {
  row: RowEventSchema,
  batch: BatchEventSchema,
  directory: DirectoryEventSchema,
  report: BatchReportSchema,
} as const;

/** The named schemas of the OpenAPI document's components, in the order they are listed. */
export const componentSchemas = [
  BatchReportSchema,
  RowReportSchema,
  ProgressSchema,
  BatchSummarySchema,
  BatchListSchema,
  AsyncAcceptedSchema,
  HealthSchema,
  ReadinessSchema,
  NotReadySchema,
  ProblemSchema,
  CsvProblemSchema,
  DryRunSchema,
  RowEventSchema,
  BatchEventSchema,
  DirectoryEventSchema,
  BatchStatusSchema,
  RowStatusSchema,
  batchIdParam,
  UploadFormSchema,
  RowEditSchema,
  FileFormatSchema,
] as const;

export type AsyncAccepted = z.infer<typeof AsyncAcceptedSchema>;
export type BatchList = z.infer<typeof BatchListSchema>;
export type DryRun = z.infer<typeof DryRunSchema>;
export type RowEdit = z.infer<typeof RowEditSchema>;
export type Health = z.infer<typeof HealthSchema>;
export type Readiness = z.infer<typeof ReadinessSchema>;
export type NotReady = z.infer<typeof NotReadySchema>;
export type Problem = z.infer<typeof ProblemSchema>;
export type RowEvent = z.infer<typeof RowEventSchema>;
export type BatchEvent = z.infer<typeof BatchEventSchema>;
export type DirectoryEvent = z.infer<typeof DirectoryEventSchema>;
