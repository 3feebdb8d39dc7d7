import type { Config } from '../config.js';
import type { DirectoryClient } from '../directory/client.js';
import { AppError, type CsvProblem } from '../errors.js';
import { listedProblems, type HospitalRow } from './csv.js';
import { inspectUpload, type FileFormat } from './read.js';

export interface Warning {
  kind: 'repeated_in_file' | 'exists_in_directory' | 'looks_like_formula' | 'not_checked';
  row: number | null;
  message: string;
}

// A dry run must answer while the person waits: a sleeping directory is reported as
// "not checked" rather than held for a full cold start.
const DIRECTORY_CHECK_TIMEOUT_MS = 10_000;

/**
 * Everything an upload would be told, without creating or recording anything: the rows as
 * read, every problem, and warnings for rows repeated in the file or already in the
 * directory (one GET /hospitals/, paced like every other call).
 */
export async function dryRun(
  deps: { directory: DirectoryClient; config: Pick<Config, 'MAX_ROWS'> },
  content: Buffer,
  sheet: string | null = null,
) {
  let rows: HospitalRow[] = [];
  let problems: CsvProblem[];
  let problemCount: number;
  let format: FileFormat | null = null;
  let notices: string[] = [];
  try {
    ({ rows, problems, problemCount, format, notices } = await inspectUpload(content, { maxRows: deps.config.MAX_ROWS, sheet }));
  } catch (error) {
    // A file that cannot be read as a table (not text, a damaged or oversized workbook) is one problem to show.
    if (!(error instanceof AppError)) throw error;
    problems = [{ row: null, line: null, column: null, message: error.message }];
    problemCount = 1;
  }
  const warnings = [
    ...repeatedRows(rows),
    ...formulaLookalikes(rows),
    ...(rows.length > 0 ? await alreadyInDirectory(deps.directory, rows) : []),
  ];
  return {
    valid: problemCount === 0,
    total_rows: rows.length,
    rows: rows.map(({ row, name, address, phone }) => ({ row, name, address, phone })),
    errors: listedProblems(problems, problemCount),
    warnings,
    format,
    notices,
  };
}

export type DryRunResult = Awaited<ReturnType<typeof dryRun>>;

/** Name and address compared the way a person would: case and spacing do not matter. */
const identity = (row: { name: string; address: string }) =>
  `${row.name}\u0000${row.address}`.toLocaleLowerCase('en').replace(/\s+/g, ' ').trim();

function repeatedRows(rows: HospitalRow[]): Warning[] {
  const first = new Map<string, number>();
  return rows.flatMap((row) => {
    const key = identity(row);
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, row.row);
      return [];
    }
    return [{ kind: 'repeated_in_file' as const, row: row.row, message: `Row ${row.row} repeats row ${earlier} (same name and address).` }];
  });
}

// The characters that make a spreadsheet run a cell as a formula (OWASP, CSV injection).
// Values are trimmed when read, so a leading tab or CR only survives inside quotes.
const FORMULA_START = /^[=+\-@\t\r]/;
// "+44 20 7946 0958" is a phone number, not a formula worth a warning (the download still neutralises it).
const PHONE_NUMBER = /^\+[\d\s().-]+$/;

/** One warning per cell a spreadsheet would run as a formula: stored as written, neutralised in results.csv. */
function formulaLookalikes(rows: HospitalRow[]): Warning[] {
  return rows.flatMap((row) =>
    (['name', 'address', 'phone'] as const).flatMap((column) => {
      const value = row[column];
      if (value === null || !FORMULA_START.test(value) || (column === 'phone' && PHONE_NUMBER.test(value))) return [];
      const first = JSON.stringify(value[0]);
      return [
        {
          kind: 'looks_like_formula' as const,
          row: row.row,
          message:
            `Row ${row.row}: ${column} starts with ${first}, so a spreadsheet would run it as a formula. ` +
            'Stored as written; the results download keeps it as text.',
        },
      ];
    }),
  );
}

async function alreadyInDirectory(directory: DirectoryClient, rows: HospitalRow[]): Promise<Warning[]> {
  let existing: Set<string>;
  try {
    existing = new Set((await directory.listHospitals(DIRECTORY_CHECK_TIMEOUT_MS)).map(identity));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return [{ kind: 'not_checked', row: null, message: `Not checked against the directory, which could not be reached (${why}).` }];
  }
  return rows
    .filter((row) => existing.has(identity(row)))
    .map((row) => ({
      kind: 'exists_in_directory' as const,
      row: row.row,
      message: `Row ${row.row}: a hospital with this name and address already exists in the directory.`,
    }));
}
