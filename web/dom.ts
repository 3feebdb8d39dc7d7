/**
 * The only way this page builds DOM: elements, attributes and text nodes. Data never goes
 * through innerHTML, so a hospital named `<script>` is shown as exactly that text.
 */

export type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      if (!name.startsWith('on')) throw new Error(`h(): a function can only be given as an on… listener, not ${name}`);
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name.startsWith('on')) {
      throw new Error(`h(): the listener ${name} must be a function`);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else if (value !== false && value !== null && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

/** Replaces everything inside `parent` with `children`. */
export function replace(parent: Node, ...children: (Child | Child[])[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** A table that scrolls sideways on a narrow screen, reachable and named for keyboard users. */
export function scrollingTable(label: string, table: HTMLTableElement): HTMLDivElement {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: 0 }, table);
}

/** A `<thead>` row of column headers. */
export function headerRow(...names: string[]): HTMLTableSectionElement {
  return h('thead', {}, h('tr', {}, names.map((name) => h('th', { scope: 'col' }, name))));
}

/**
 * Gives a table (class "stack") its column headers, and the roles that keep it a table
 * for screen readers when a narrow screen stacks each row into a labelled block (CSS
 * display changes drop a table's semantics in some browsers). Rows get labelCells().
 */
export function stackable(table: HTMLTableElement, labels: string[]): HTMLTableElement {
  const head = headerRow(...labels);
  head.setAttribute('role', 'rowgroup');
  head.querySelector('tr')?.setAttribute('role', 'row');
  head.querySelectorAll('th').forEach((th) => th.setAttribute('role', 'columnheader'));
  table.setAttribute('role', 'table');
  table.tBodies[0]?.setAttribute('role', 'rowgroup');
  table.insertBefore(head, table.tBodies[0] ?? null);
  return table;
}

/** Names each cell of `tr` after its column, shown beside the value when rows are stacked. */
export function labelCells(tr: HTMLTableRowElement, labels: string[]): HTMLTableRowElement {
  tr.setAttribute('role', 'row');
  Array.from(tr.cells).forEach((cell, i) => {
    cell.dataset['label'] = labels[i] ?? '';
    cell.setAttribute('role', cell.tagName === 'TH' ? 'rowheader' : 'cell');
  });
  return tr;
}

/** Says `message` to screen-reader users through the page's polite live region. */
export function announce(message: string): void {
  const region = document.getElementById('announcer');
  if (!region) return;
  // Cleared first so the same words said twice are still announced.
  region.textContent = '';
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/** Sets the tab's title (screen first, so tabs and screen readers tell pages apart). */
export function pageTitle(screen: string): void {
  document.title = `${screen} · Hospital bulk upload`;
}

/** A decorative line icon (hidden from screen readers) drawn from SVG path data. */
export function svgIcon(className: string, paths: string[]): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  for (const [name, value] of Object.entries({
    class: className,
    viewBox: '0 0 24 24',
    fill: 'none',
    stroke: 'currentColor',
    'stroke-width': '2',
    'stroke-linecap': 'round',
    'stroke-linejoin': 'round',
    'aria-hidden': 'true',
    focusable: 'false',
  })) {
    svg.setAttribute(name, value);
  }
  for (const d of paths) {
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d);
    svg.appendChild(path);
  }
  return svg;
}
