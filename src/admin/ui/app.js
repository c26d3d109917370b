// The console's shell: routes (the page and its state live in the URL hash, so a link
// shows the same view), the token login, and the banner that says what is degraded.

import { api, token, ApiError } from './api.js';
import { h, state } from './format.js';
import * as pages from './pages.js';
import { queries } from './queries.js';
import { detail } from './detail.js';

const PAGES = {
  overview: pages.overview, queries, query: detail, slow: pages.slow,
  pools: pages.pools, jobs: pages.jobs, cache: pages.cache, advice: pages.advice,
};
const view = document.getElementById('view');
const banner = document.getElementById('banner');
const dialog = document.getElementById('login');
let current = null;
let status = null;

function parse() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const [name, arg] = path.split('/');
  return { name: PAGES[name] ? name : 'overview', arg: arg ? decodeURIComponent(arg) : null, params: new URLSearchParams(query) };
}

/** Goes to a page; `replace` rewrites the current history entry (filters, sorting). */
export function go(name, arg = null, params = {}, replace = false) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined));
  const hash = `#/${name}${arg ? '/' + encodeURIComponent(arg) : ''}${q.size ? '?' + q : ''}`;
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(null, '', hash);
    route();
  } else {
    location.hash = hash;
  }
}

/** A page's failure: a 401 asks for the token, anything else is shown in place. */
function fail(e, where, what) {
  if (e instanceof ApiError && e.status === 401) {
    login('The admin token is needed (or was changed): enter it again.');
    return;
  }
  if (e.name === 'AbortError') return;
  where.replaceChildren(state.error(e, what));
}

function route() {
  const r = parse();
  for (const a of document.querySelectorAll('#nav a')) {
    const on = a.dataset.page === r.name || (r.name === 'query' && a.dataset.page === 'queries');
    a.classList.toggle('active', on);
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current && current.name === r.name && current.arg === r.arg && current.page && current.page.update) {
    current.page.update(r.params);
    return;
  }
  if (current) current.controller.abort();
  const controller = new AbortController();
  const root = h('div', { 'data-page': r.name });
  view.replaceChildren(root);
  const ctx = {
    root, arg: r.arg, params: r.params, signal: controller.signal, status, go,
    fail: (e, where = root, what = 'this page') => fail(e, where, what),
    every(ms, f) {
      const id = setInterval(f, ms);
      controller.signal.addEventListener('abort', () => clearInterval(id));
    },
  };
  current = { name: r.name, arg: r.arg, controller, page: null };
  const mine = current;
  Promise.resolve(PAGES[r.name](ctx)).then((page) => {
    if (current === mine) mine.page = page || null;
  }, (e) => fail(e, root, 'this page'));
  document.title = `pgsidecar · ${r.name}`;
}

function showBanner() {
  const notes = [];
  if (status.store === 'down') {
    notes.push(`The store is down: showing the last ${status.memory_keeps.toLocaleString('en-US')} slow events, alerts and plans from memory, and no jobs. Check store_url and that PostgreSQL accepts the proxy\u2019s connections.`);
  }
  if (!status.stats) {
    notes.push('Statement statistics are off (stats = false): the Queries pages have nothing to show. Set stats = true and restart the proxy.');
  }
  banner.hidden = notes.length === 0;
  banner.textContent = notes.join(' ');
  document.getElementById('who').textContent = `${status.sidecar} · v${status.version}`;
  document.getElementById('logout').hidden = !token.get();
}

function login(message = '') {
  document.getElementById('login-error').textContent = message;
  if (!dialog.open) dialog.showModal();
  document.getElementById('token').focus();
}

async function boot() {
  try {
    status = await api('status');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      login(token.get() ? 'That token was not accepted.' : '');
      view.replaceChildren(state.empty('Sign in with the admin token to see the console.'));
      return;
    }
    view.replaceChildren(state.error(e, 'the proxy\u2019s status'));
    return;
  }
  showBanner();
  route();
}

document.getElementById('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const value = document.getElementById('token').value.trim();
  token.set(value);
  try {
    status = await api('status');
  } catch (err) {
    token.clear();
    const wrong = err instanceof ApiError && err.status === 401;
    document.getElementById('login-error').textContent = wrong
      ? 'That token was not accepted: use the admin_token of the proxy\u2019s configuration.'
      : err.message;
    return;
  }
  dialog.close();
  document.getElementById('token').value = '';
  current = null;
  showBanner();
  route();
});
dialog.addEventListener('cancel', (e) => e.preventDefault());
document.getElementById('logout').addEventListener('click', () => {
  token.clear();
  location.reload();
});
window.addEventListener('hashchange', () => status && route());
boot();
