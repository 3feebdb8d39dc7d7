/**
 * Fix and finish, on the batch page: a row the directory rejected gets an "Edit" button that
 * opens a form under the row; Save sends PATCH /batches/:id/rows/:row, and the page then
 * offers Resume to create it. Keyboard first: the form takes focus, Escape cancels and gives
 * focus back to the button.
 */
import { ApiError, patchJson } from './api.js';
import { messageBox } from './components.js';
import { h, replace } from './dom.js';
import type { BatchReport, RowReport } from './types.js';

/** A row the directory refused as it stands: a resume will not send it until it is edited. */
export const isRejected = (row: RowReport) => row.status === 'failed' && (row.error_message ?? '').startsWith('Rejected by the directory');

const FIELDS = [
  { name: 'name', label: 'Name', required: true },
  { name: 'address', label: 'Address', required: true },
  { name: 'phone', label: 'Phone', required: false },
] as const;

/** The Edit button of `row`; `saved` gets the report after a successful save. */
export function editButton(batchId: string, row: RowReport, columns: number, saved: (report: BatchReport, row: number) => void): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'button button-secondary button-small', 'aria-expanded': 'false', 'aria-label': `Edit row ${row.row} (${row.name})` }, 'Edit');
  let editor: HTMLTableRowElement | null = null;

  const close = () => {
    editor?.remove();
    editor = null;
    button.setAttribute('aria-expanded', 'false');
    button.focus();
  };

  button.addEventListener('click', () => {
    if (editor) {
      editor.querySelector('input')?.focus();
      return;
    }
    const tr = button.closest('tr');
    if (!tr) return;
    editor = editorRow(batchId, row, columns, close, saved);
    tr.after(editor);
    button.setAttribute('aria-expanded', 'true');
    editor.querySelector('input')?.focus();
  });
  return button;
}

function editorRow(batchId: string, row: RowReport, columns: number, close: () => void, saved: (report: BatchReport, row: number) => void): HTMLTableRowElement {
  const id = (field: string) => `edit-${row.row}-${field}`;
  const inputs = FIELDS.map((field) =>
    h('input', { id: id(field.name), name: field.name, value: row[field.name] ?? '', required: field.required, maxlength: 255, autocomplete: 'off' }),
  );
  const problem = h('div', { class: 'editor-problem' });
  const save = h('button', { type: 'submit', class: 'button button-primary' }, 'Save');
  const form = h(
    'form',
    { class: 'row-editor', 'aria-label': `Edit row ${row.row}`, novalidate: true },
    h('p', { class: 'hint' }, `The directory rejected row ${row.row}: ${row.error_message ?? ''}. Correct it and save; then resume the batch to create it.`),
    FIELDS.map((field, i) => h('div', { class: 'field' }, h('label', { for: id(field.name) }, field.label), inputs[i])),
    problem,
    h('div', { class: 'actions' }, save, h('button', { type: 'button', class: 'button button-secondary', onclick: close }, 'Cancel')),
  );
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const [name, address, phone] = inputs.map((input) => input.value);
    save.disabled = true;
    replace(problem);
    patchJson<BatchReport>(`/batches/${encodeURIComponent(batchId)}/rows/${row.row}`, { name, address, phone: phone?.trim() ? phone : null }).then((report) => saved(report, row.row), (error: unknown) => {
      save.disabled = false;
      const errors = error instanceof ApiError && Array.isArray(error.problem?.['errors']) ? (error.problem['errors'] as { column: string | null; message: string }[]) : [];
      replace(problem, messageBox('error', 'The row was not saved', error instanceof Error ? error.message : String(error)));
      const field = inputs.find((input) => errors.some((e) => e.column === input.name)) ?? inputs[0];
      field?.setAttribute('aria-invalid', 'true');
      field?.focus();
    });
  });
  return h('tr', { class: 'editor-row', role: 'row' }, h('td', { colspan: columns, role: 'cell' }, form));
}
