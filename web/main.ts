/**
 * The page's entry point: a hash router over three screens (#/ upload, #/batches history,
 * #/batches/<id> one batch) and the API-key field shown when the service answers 401.
 */
import { onKeyNeeded, storedKey, storeKey } from './api.js';
import { batchScreen } from './batch.js';
import { announce, h, pageTitle, replace } from './dom.js';
import { historyScreen } from './history.js';
import { uploadScreen } from './upload.js';

interface Screen {
  element: HTMLElement;
  heading: HTMLElement;
  dispose?(): void;
}

const main = document.getElementById('main')!;
const keySlot = document.getElementById('key-slot')!;
const keyStatus = document.getElementById('key-status')!;
let current: Screen | null = null;

function route(moveFocus: boolean): void {
  const hash = location.hash || '#/';
  // Only "#/…" is a screen; other fragments (the skip link's #main) are in-page anchors.
  if (!hash.startsWith('#/')) return;
  const path = hash.slice(1);
  current?.dispose?.();
  const batch = /^\/batches\/([^/?#]+)\/?$/.exec(path);
  let name: 'upload' | 'history' | 'batch';
  if (path === '/batches' || path === '/batches/') {
    current = historyScreen();
    name = 'history';
    pageTitle('History');
  } else if (batch?.[1]) {
    current = batchScreen(decodeURIComponent(batch[1]));
    name = 'batch';
    pageTitle('Batch');
  } else {
    current = uploadScreen();
    name = 'upload';
    pageTitle('Upload');
  }
  replace(main, current.element);
  for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a[data-route]')) {
    const here = link.dataset['route'] === name;
    if (here) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  // After a navigation, start reading at the new screen's heading.
  if (moveFocus) current.heading.focus();
}

/** Asks for the API key above the screen; resolves when one is entered. */
function askForKey(reason: string): Promise<string> {
  return new Promise((resolve) => {
    const input = h('input', { type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'api-key-reason api-key-hint' });
    const form = h(
      'form',
      { class: 'key-form' },
      h('h2', { id: 'api-key-heading' }, 'API key needed'),
      h('p', { id: 'api-key-reason' }, reason),
      h('div', { class: 'field' }, h('label', { for: 'api-key' }, 'API key'), input, h('button', { type: 'submit', class: 'button button-primary' }, 'Use this key')),
      h('p', { id: 'api-key-hint', class: 'hint' }, 'Kept only in this browser tab (session storage) and sent with every request.'),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      replace(keySlot);
      showKeyStatus(true);
      announce('API key saved for this tab.');
      resolve(key);
    });
    replace(keySlot, h('section', { class: 'box box-warning key-panel', 'aria-labelledby': 'api-key-heading' }, form));
    input.focus();
    announce(`API key needed. ${reason}`);
  });
}

function showKeyStatus(hasKey: boolean): void {
  replace(
    keyStatus,
    hasKey
      ? [
          'An API key is in use in this tab. ',
          h(
            'button',
            {
              type: 'button',
              class: 'link-button',
              onclick: () => {
                storeKey(null);
                showKeyStatus(false);
                announce('API key forgotten.');
              },
            },
            'Forget it',
          ),
        ]
      : [],
  );
}

onKeyNeeded(askForKey);
showKeyStatus(storedKey() !== null);

// A file dropped outside the drop zone must not make the browser leave the page.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (event) => {
    if ((event as DragEvent).dataTransfer?.types.includes('Files')) event.preventDefault();
  });
}

document.querySelector<HTMLAnchorElement>('.skip-link')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => route(true));
route(false);
