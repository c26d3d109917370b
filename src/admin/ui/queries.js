// The Queries page: every fingerprint in a window, sorted and filtered by the server
// (`/api/queries/table`), shown in a virtual table fed slice by slice.

import { api } from './api.js';
import { h, fmt, state } from './format.js';
import { VirtualTable } from './table.js';

export const WINDOWS = ['1m', '5m', '1h', '24h'];
const FILTERS = ['database', 'user', 'command', 'table'];
const ms = (v) => fmt.ms(v);
const COLUMNS = [
  { key: 'query', label: 'Query', width: 'minmax(240px, 4fr)', format: (v) => v },
  { key: 'database', label: 'Database', width: 'minmax(110px, 1fr)', format: (v) => v },
  { key: 'user', label: 'User', width: 'minmax(90px, 1fr)', format: (v) => v },
  { key: 'command', label: 'Command', width: '124px', format: (v) => v },
  { key: 'calls', label: 'Calls', width: '84px', numeric: true, format: fmt.int },
  { key: 'total_ms', label: 'Total', width: '96px', numeric: true, format: ms },
  { key: 'mean_ms', label: 'Mean', width: '92px', numeric: true, format: ms },
  { key: 'p50_ms', label: 'p50', width: '92px', numeric: true, format: ms },
  { key: 'p95_ms', label: 'p95', width: '92px', numeric: true, format: ms },
  { key: 'p99_ms', label: 'p99', width: '92px', numeric: true, format: ms },
  { key: 'rows', label: 'Rows', width: '80px', numeric: true, format: fmt.int },
  { key: 'errors', label: 'Errors', width: '64px', numeric: true, format: fmt.int },
];

/** The listing's parameters from the URL, with defaults. */
function read(params) {
  const p = {
    window: WINDOWS.includes(params.get('window')) ? params.get('window') : '1h',
    sort: params.get('sort') || 'total_ms',
    order: params.get('order') === 'asc' ? 'asc' : 'desc',
    q: params.get('q') || '',
  };
  for (const f of FILTERS) p[f] = params.get(f) || '';
  return p;
}

function objects(answer) {
  const cols = answer.columns;
  return answer.rows.map((r) => Object.fromEntries(cols.map((c, i) => [c, r[i]])));
}

export async function queries(ctx) {
  let p = read(ctx.params);
  let snapshot = null;
  const set = (changes) => ctx.go('queries', null, { ...p, ...changes }, true);
  const count = h('span', { class: 'muted', id: 'q-count' });
  const note = h('div');
  const seg = h('div', { class: 'seg', role: 'group', 'aria-label': 'Window' }, WINDOWS.map((w) =>
    h('button', { 'data-window': w, onclick: () => set({ window: w }) }, w)));
  const search = h('input', { type: 'search', id: 'q-search', placeholder: 'Search the normalized SQL…', value: p.q, 'aria-label': 'Search' });
  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => set({ q: search.value.trim() }), 250);
  });
  const selects = Object.fromEntries(FILTERS.map((f) => [f, h('select', { id: `q-${f}`, 'aria-label': f,
    onchange: (e) => set({ [f]: e.target.value }) })]));
  const table = new VirtualTable({
    label: 'Query statistics',
    columns: COLUMNS,
    sort: p.sort, order: p.order,
    title: (r) => r.query,
    onSort: (key) => set({ sort: key, order: p.sort === key && p.order === 'desc' ? 'asc' : 'desc' }),
    onOpen: (r) => ctx.go('query', r.fingerprint, { database: r.database, user: r.user, window: p.window }),
    onError: (e) => ctx.fail(e, note, 'more rows'),
    load: async (offset, limit) => {
      const answer = await api('queries/table', { ...params(), offset, limit, snapshot }, ctx.signal);
      const reset = answer.snapshot !== snapshot;
      snapshot = answer.snapshot;
      table.root.dataset.snapshot = snapshot;
      return { total: answer.total, rows: objects(answer), reset };
    },
  });
  const params = () => ({ window: p.window, sort: p.sort, order: p.order, q: p.q,
    ...Object.fromEntries(FILTERS.map((f) => [f, p[f]])) });

  function facets(f) {
    if (!f) return;
    for (const name of FILTERS) {
      const values = new Set(f[name]);
      if (p[name]) values.add(p[name]);
      selects[name].replaceChildren(h('option', { value: '' }, `any ${name}`),
        ...[...values].map((v) => h('option', { value: v }, v)));
      selects[name].value = p[name];
    }
  }

  async function reload() {
    for (const b of seg.children) b.setAttribute('aria-pressed', String(b.dataset.window === p.window));
    table.markSort(p.sort, p.order);
    if (search.value.trim() !== p.q && document.activeElement !== search) search.value = p.q;
    count.textContent = 'loading…';
    snapshot = null;
    let answer;
    try {
      answer = await api('queries/table', { ...params(), offset: 0, limit: 200 }, ctx.signal);
    } catch (e) {
      count.textContent = '';
      ctx.fail(e, note, 'the statement statistics');
      return;
    }
    snapshot = answer.snapshot;
    // The frozen listing on screen, so what is shown can be compared with the API's.
    table.root.dataset.snapshot = snapshot;
    facets(answer.facets);
    count.textContent = `${fmt.int(answer.total)} fingerprints in the last ${p.window}`;
    const filtered = p.q || FILTERS.some((f) => p[f]);
    note.replaceChildren(answer.total ? '' : state.empty(filtered
      ? `No statement in the last ${p.window} matches these filters. Clear them or pick a longer window.`
      : `No statement ran through the proxy in the last ${p.window}. Connect a client to the proxy\u2019s port and run some queries.`));
    table.root.hidden = answer.total === 0;
    table.reset(answer.total, objects(answer));
  }

  ctx.root.append(
    h('h1', {}, 'Queries'),
    h('div', { class: 'toolbar' }, seg, search, Object.values(selects),
      h('button', { onclick: () => set({ q: '', database: '', user: '', command: '', table: '' }) }, 'Clear filters'),
      h('button', { onclick: () => reload(), title: 'Read the statistics again' }, 'Refresh'), count),
    note, table.root,
    h('p', { class: 'muted' }, 'Click a column to sort; ↑/↓, PgUp/PgDn, Home/End move, Enter opens the query.'));
  await reload();
  return {
    update(params) {
      p = read(params);
      reload();
    },
  };
}
