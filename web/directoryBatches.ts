/**
 * Progress per directory batch, for an upload the service split into several (over 20 rows:
 * the directory caps a batch at 20). One table row per directory batch: its rows, how many
 * are created, failed and waiting, and whether it is activated. Filled in from the report,
 * then kept current by the event stream's `row` events and the `batch` events that name a
 * `directory_batch_id`. The table is not a live region: the progress bar's sentence speaks.
 */
import { h, labelCells, replace, scrollingTable, stackable } from './dom.js';
import { plural } from './format.js';
import type { BatchEvent, BatchReport, DirectoryBatch, RowStatus } from './types.js';

/** The directory's batch limit: an upload with more rows is split (README "Files bigger than 20 rows"). */
export const DIRECTORY_BATCH_SIZE = 20;

const COLUMNS = ['Directory batch', 'Rows', 'Created', 'Failed', 'Waiting', 'Activated', 'ID'];

// How far along a row is: a report read while events arrive may be older than an event already seen.
const STAGE: Record<RowStatus, number> = { pending: 0, creating: 1, failed: 2, unknown: 2, created: 3, created_and_activated: 4, deleted: 5 };

interface Cells {
  tr: HTMLTableRowElement;
  created: HTMLTableCellElement;
  failed: HTMLTableCellElement;
  waiting: HTMLTableCellElement;
  activated: HTMLTableCellElement;
}

export class DirectoryBatchesView {
  /** Empty until a report with `directory_batches` arrives; stays empty for an upload of one. */
  readonly element: HTMLDivElement;
  private batches: DirectoryBatch[] = [];
  private readonly statuses = new Map<number, RowStatus>();
  private readonly activatedIds = new Set<string>();
  private readonly cells = new Map<string, Cells>();

  constructor(private readonly filename: string) {
    this.element = h('div', { class: 'directory-batches', 'data-testid': 'directory-batches' });
  }

  /** Whether the upload is split (the table is shown). */
  get split(): boolean {
    return this.batches.length > 0;
  }

  /** For the progress sentence while they are activated: "… 2 of 3 active." */
  activationSentence(): string {
    const activated = this.batches.filter((batch) => this.activatedIds.has(batch.id)).length;
    return `Every row was created; activating the directory batches: ${activated} of ${this.batches.length} active.`;
  }

  /** Lays the table out from a report; what events already said is kept where it is further along. */
  setReport(report: BatchReport): void {
    for (const row of report.hospitals) {
      const seen = this.statuses.get(row.row);
      if (seen === undefined || STAGE[row.status] >= STAGE[seen]) this.statuses.set(row.row, row.status);
    }
    for (const batch of report.directory_batches ?? []) if (batch.activated) this.activatedIds.add(batch.id);
    this.batches = report.directory_batches ?? [];
    this.draw();
  }

  /** A `row` event. */
  row(event: { row: number; status: RowStatus }): void {
    this.statuses.set(event.row, event.status);
    const batch = this.batches.find((b) => event.row >= b.first_row && event.row <= b.last_row);
    if (batch) this.fill(batch);
  }

  /** A `batch` event: one directory batch activated, or (`batch_activated`) all of them. */
  batch(event: BatchEvent): void {
    if (event.directory_batch_id && event.directory_batch_activated) this.activatedIds.add(event.directory_batch_id);
    if (event.batch_activated) for (const batch of this.batches) this.activatedIds.add(batch.id);
    for (const batch of this.batches) this.fill(batch);
  }

  private draw(): void {
    this.cells.clear();
    if (!this.split) {
      replace(this.element);
      return;
    }
    const body = h('tbody');
    this.batches.forEach((batch, i) => {
      const cells: Cells = {
        tr: h('tr', { 'data-directory-batch': batch.id }),
        created: h('td', { class: 'num', 'data-count': 'created' }),
        failed: h('td', { class: 'num', 'data-count': 'failed' }),
        waiting: h('td', { class: 'num', 'data-count': 'waiting' }),
        activated: h('td', { class: 'nowrap', 'data-col': 'activated' }),
      };
      cells.tr.append(
        h('th', { scope: 'row', class: 'num' }, `${i + 1} of ${this.batches.length}`),
        h('td', { class: 'nowrap', 'data-col': 'rows' }, rowsRange(batch)),
        cells.created,
        cells.failed,
        cells.waiting,
        cells.activated,
        h('td', {}, h('code', {}, batch.id)),
      );
      labelCells(cells.tr, COLUMNS);
      this.cells.set(batch.id, cells);
      this.fill(batch);
      body.append(cells.tr);
    });
    const caption = `Directory batches of ${this.filename}`;
    const table = stackable(h('table', { class: 'directory-batches-table stack' }, h('caption', {}, caption), body), COLUMNS);
    replace(
      this.element,
      h(
        'p',
        { class: 'hint' },
        `The directory takes at most ${DIRECTORY_BATCH_SIZE} hospitals per batch, so this file is created as ${plural(this.batches.length, 'directory batch', 'directory batches')}, in file order. `,
        'None is activated until every row of every one exists.',
      ),
      scrollingTable(caption, table),
    );
  }

  private fill(batch: DirectoryBatch): void {
    const cells = this.cells.get(batch.id);
    if (!cells) return;
    let created = 0;
    let failed = 0;
    let waiting = 0;
    let deleted = 0;
    for (let row = batch.first_row; row <= batch.last_row; row += 1) {
      const status = this.statuses.get(row) ?? 'pending';
      if (status === 'created' || status === 'created_and_activated') created += 1;
      else if (status === 'failed' || status === 'unknown') failed += 1;
      else if (status === 'deleted') deleted += 1;
      else waiting += 1;
    }
    const size = batch.last_row - batch.first_row + 1;
    const activated = this.activatedIds.has(batch.id);
    cells.created.textContent = String(created);
    cells.failed.textContent = String(failed);
    cells.waiting.textContent = String(waiting);
    cells.activated.textContent = deleted === size ? 'Rolled back' : activated ? 'Yes' : 'No';
    cells.tr.dataset['activated'] = String(activated && deleted < size);
  }
}

/** "rows 1–20" */
export const rowsRange = (batch: Pick<DirectoryBatch, 'first_row' | 'last_row'>) =>
  batch.first_row === batch.last_row ? `row ${batch.first_row}` : `rows ${batch.first_row}–${batch.last_row}`;
