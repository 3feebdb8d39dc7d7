/** The shapes of the service's JSON answers that the page reads (see README "Using it"). */

export type BatchStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'interrupted' | 'rolled_back' | 'cancelled';
export type RowStatus = 'pending' | 'creating' | 'created' | 'created_and_activated' | 'failed' | 'unknown' | 'deleted';

export interface CsvProblem {
  row: number | null;
  line: number | null;
  column: string | null;
  message: string;
}

export interface DryRunWarning {
  kind: 'repeated_in_file' | 'exists_in_directory' | 'looks_like_formula' | 'not_checked';
  row: number | null;
  message: string;
}

/** How the service read an uploaded file (see README "What files we read"). */
export interface FileFormat {
  type: 'csv' | 'xlsx';
  encoding: string | null;
  delimiter: string | null;
  sheet: string | null;
  columns: { header: string; field: string }[];
}

export interface DryRunResult {
  valid: boolean;
  total_rows: number;
  rows: { row: number; name: string; address: string; phone: string | null }[];
  errors: CsvProblem[];
  warnings: DryRunWarning[];
  format: FileFormat | null;
  notices: string[];
}

export interface Accepted {
  batch_id: string;
  status: BatchStatus;
  total_hospitals: number;
  links: { self: string; events: string };
}

export interface Progress {
  done: number;
  failed: number;
  pending: number;
  percent: number;
  current_row: number | null;
  elapsed_seconds: number;
  eta_seconds: number | null;
}

export interface BatchSummary {
  batch_id: string;
  filename: string;
  status: BatchStatus;
  total_hospitals: number;
  processed_hospitals: number;
  failed_hospitals: number;
  batch_activated: boolean;
  created_at: string;
  completed_at: string | null;
  /** The API key name that uploaded it (API_KEYS); null when unnamed. */
  created_by: string | null;
}

export interface RowReport {
  row: number;
  hospital_id: number | null;
  name: string;
  address: string;
  phone: string | null;
  status: RowStatus;
  error_message: string | null;
  attempts: number;
  /** The directory batch this row is created in; only on an upload split into several (over 20 rows). */
  directory_batch_id?: string;
}

/** One of the directory batches of at most 20 rows a bigger upload is created as, in file order. */
export interface DirectoryBatch {
  id: string;
  first_row: number;
  last_row: number;
  activated: boolean;
}

export interface BatchReport extends BatchSummary {
  processing_time_seconds: number | null;
  error: string | null;
  notice: string | null;
  hospitals: RowReport[];
  cancel_requested_at: string | null;
  audit: { action: 'resume' | 'rollback' | 'cancel' | 'edit_row'; by: string | null; at: string }[];
  progress?: Progress;
  /** Only on an upload split into several directory batches (over 20 rows). */
  directory_batches?: DirectoryBatch[];
}

export interface BatchPage {
  batches: BatchSummary[];
  next_cursor: string | null;
}

/** `event: row` of GET /batches/:id/events. */
export interface RowEvent {
  row: number;
  status: RowStatus;
  hospital_id: number | null;
  error_message: string | null;
  attempts: number;
  progress?: Progress;
}

/** `event: directory` of GET /batches/:id/events: a directory call waits before trying again. */
export interface DirectoryEvent {
  row: number | null;
  op: string;
  reason: 'retry' | 'rate_limited';
  attempt: number;
  status: number | null;
  message: string;
  retry_at: string;
  retry_in_seconds: number;
}

/** `event: batch` of GET /batches/:id/events. */
export interface BatchEvent {
  status: BatchStatus;
  error?: string | null;
  batch_activated?: boolean;
  /** A split upload: this directory batch was just activated (`batch_activated` comes when all are). */
  directory_batch_id?: string;
  directory_batch_activated?: boolean;
}
