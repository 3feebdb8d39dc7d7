/** The history screen: recent batches, newest first, with "Load more". */
import { getJson } from './api.js';
import { messageBox, TOTAL_TIME_LABEL } from './components.js';
import { append, h, labelCells, replace, scrollingTable, stackable } from './dom.js';
import { batchBadge, duration, preciseTimeElement, secondsBetween, shortId } from './format.js';
import type { BatchPage, BatchSummary } from './types.js';

const PAGE_SIZE = 20;
const COLUMNS = ['File', 'Status', 'Created', 'Failed', 'Activated', 'Uploaded', TOTAL_TIME_LABEL, 'Batch'];

export function historyScreen(): { element: HTMLElement; heading: HTMLElement; dispose(): void } {
  const heading = h('h1', { tabindex: -1, id: 'history-heading' }, 'History');
  const body = h('tbody');
  const table = stackable(h('table', { class: 'history-table stack' }, h('caption', {}, 'Uploads, newest first'), body), COLUMNS);
  const wrap = scrollingTable('Uploads', table);
  wrap.hidden = true;
  const status = h('p', { class: 'busy', role: 'status' }, 'Loading…');
  const more = h('button', { type: 'button', class: 'button button-secondary' }, 'Load more');
  more.hidden = true;
  const element = h(
    'section',
    { class: 'screen', 'aria-labelledby': 'history-heading' },
    h('div', { class: 'screen-head' }, heading, h('a', { href: '#/', class: 'button button-primary' }, 'Upload a file')),
    status,
    wrap,
    h('div', { class: 'actions' }, more),
  );

  let disposed = false;
  let cursor: string | null = null;
  let shown = 0;

  const load = async () => {
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (cursor) query.set('cursor', cursor);
      const page = await getJson<BatchPage>(`/batches?${query}`);
      if (disposed) return;
      append(body, page.batches.map(line));
      shown += page.batches.length;
      cursor = page.next_cursor;
      wrap.hidden = shown === 0;
      more.hidden = cursor === null;
      if (shown === 0) replace(status, 'No uploads yet. ', h('a', { href: '#/' }, 'Upload a file'), ' to start.');
      else replace(status, `${shown} ${shown === 1 ? 'upload' : 'uploads'} shown${cursor ? '; there are more' : ''}.`);
    } catch (error) {
      if (disposed) return;
      replace(status, messageBox('error', 'The history could not be loaded', error instanceof Error ? error.message : String(error)));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void load());
  void load();

  return {
    element,
    heading,
    dispose: () => {
      disposed = true;
    },
  };
}

/** One upload; the time to the second and the short id tell uploads of one file apart. */
function line(batch: BatchSummary): HTMLTableRowElement {
  return labelCells(
    h(
      'tr',
      { 'data-batch-id': batch.batch_id },
      h('th', { scope: 'row' }, h('a', { href: `#/batches/${encodeURIComponent(batch.batch_id)}` }, batch.filename)),
      h('td', {}, batchBadge(batch.status)),
      h('td', { class: 'num' }, `${batch.processed_hospitals} of ${batch.total_hospitals}`),
      h('td', { class: 'num' }, batch.failed_hospitals),
      h('td', {}, batch.batch_activated ? 'Yes' : 'No'),
      h('td', { class: 'nowrap' }, preciseTimeElement(batch.created_at)),
      h('td', { class: 'nowrap', 'data-col': 'time' }, duration(secondsBetween(batch.created_at, batch.completed_at))),
      h('td', { class: 'nowrap' }, h('code', { title: batch.batch_id }, shortId(batch.batch_id))),
    ),
    COLUMNS,
  );
}
