// The Overview, Slow log & alerts, Pools & clients, Jobs, Cache and Advice pages.

import { api, apiAll } from './api.js';
import { h, fmt, state, sqlInline } from './format.js';
import { lineChart } from './charts.js';

/** Alerts fired this recently count as active. */
const ACTIVE_MINUTES = 15;

/** A table of slow events or alerts; each query links to its detail. */
export function eventsTable(rows, empty, alerts) {
  if (!rows.length) return state.empty(empty);
  return h('div', { class: 'scroll-x' }, h('table', { class: 'plain' },
    h('thead', {}, h('tr', {}, ['When', 'Level', 'Database', 'User', alerts ? 'In a row' : 'App', 'Duration', 'Query']
      .map((t, i) => h('th', { class: i === 4 || i === 5 ? 'n' : '' }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', { 'data-id': r.id, 'data-fingerprint': r.fingerprint },
      h('td', { title: fmt.time(r.at) }, fmt.ago(r.at)),
      h('td', {}, h('span', { class: `badge ${r.level}` }, r.level)),
      h('td', {}, r.database), h('td', {}, r.username),
      h('td', { class: 'n' }, alerts ? fmt.int(r.consecutive) : (r.application_name || '')),
      h('td', { class: 'n' }, fmt.ms(r.duration_ms)),
      h('td', {}, h('a', { href: `#/query/${r.fingerprint}?database=${encodeURIComponent(r.database)}&user=${encodeURIComponent(r.username)}` }, sqlInline(r.query))))))));
}

/** Columns and text rows (as the SHOW lists answer) as a table. */
function showTable(answer, id) {
  if (!answer.data.length) return h('div', { id }, state.empty('None right now.'));
  const numeric = (i) => answer.data.every((r) => r[i] === null || /^-?\d+(\.\d+)?$/.test(r[i]));
  const nums = answer.columns.map((_, i) => numeric(i));
  return h('div', { class: 'scroll-x' }, h('table', { class: 'plain', id },
    h('thead', {}, h('tr', {}, answer.columns.map((c, i) => h('th', { class: nums[i] ? 'n' : '' }, c)))),
    h('tbody', {}, answer.data.map((r) => h('tr', {}, r.map((v, i) => h('td', { class: nums[i] ? 'n' : '' }, v ?? '–')))))),
  answer.has_more ? h('p', { class: 'muted' }, `Showing ${answer.data.length} of ${answer.total}.`) : null);
}

function card(id, title, latest, body) {
  return h('div', { class: 'panel card', id, 'data-latest': latest ?? '' },
    h('h3', {}, h('span', {}, title), h('span', { class: 'big' }, latest ?? '–')), body);
}

export async function overview(ctx) {
  const charts = h('div', { class: 'grid' }, state.loading('the last hour'));
  const alerts = h('div', {}, state.loading('alerts'));
  const facts = h('dl', { class: 'kv' });
  ctx.root.append(h('h1', {}, 'Overview'), facts, h('h2', {}, 'The last hour, per minute'), charts,
    h('h2', {}, `Active alerts (fired in the last ${ACTIVE_MINUTES} minutes)`), alerts);
  async function refresh() {
    try {
      const [st, hist] = await Promise.all([api('status', {}, ctx.signal), api('minutes', {}, ctx.signal)]);
      facts.replaceChildren(...[['Uptime', `${fmt.num(st.uptime_s / 60, 0)} min`],
        ['Fingerprints tracked', st.stats ? `${fmt.int(st.fingerprints_tracked)} of ${fmt.int(st.max_fingerprints)}` : 'statistics off'],
        ['Store', st.store], ['Slow thresholds', `warning ${st.slow_warning_ms} ms, critical ${st.slow_critical_ms} ms`]]
        .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
      charts.replaceChildren(...overviewCharts(hist));
    } catch (e) {
      ctx.fail(e, charts, 'the last hour');
    }
    try {
      const since = Date.now() - ACTIVE_MINUTES * 60000;
      const r = await apiAll('alerts', {}, 100, ctx.signal);
      const active = r.rows.filter((a) => new Date(a.at) >= since);
      alerts.replaceChildren(eventsTable(active, `No alert in the last ${ACTIVE_MINUTES} minutes.`, true));
    } catch (e) {
      ctx.fail(e, alerts, 'alerts');
    }
  }
  await refresh();
  ctx.every(15000, refresh);
}

/** An axis label for a count: whole numbers plain, halves with one decimal. */
const count = (v) => (Number.isInteger(v) ? fmt.int(v) : fmt.num(v, 1));

function overviewCharts(hist) {
  const pts = hist.points.map((p) => ({
    ...p,
    pool_use: p.pool_size ? p.servers_active / p.pool_size : 0,
    // No calls, no latency: a gap in the line rather than a drop to zero.
    ...(p.calls ? {} : { p50_ms: null, p95_ms: null, p99_ms: null }),
  }));
  const last = pts[pts.length - 1];
  const wait = `Collecting: the first point comes after the first full minute (in about ${hist.next_point_in_s} s).`;
  const chart = (id, title, latest, series, format) => card(id, title, last ? latest(last) : null,
    pts.length ? lineChart(pts, series, format) : state.empty(wait));
  return [
    chart('chart-tps', 'Statements per second', (p) => fmt.num(p.tps, 1), [{ key: 'tps', label: 'TPS', color: 'var(--c1)' }], (v) => fmt.num(v, 1)),
    chart('chart-latency', 'Latency', (p) => (p.calls ? `p95 ${fmt.ms(p.p95_ms)}` : 'no calls'), [
      { key: 'p50_ms', label: 'p50', color: 'var(--c4)' }, { key: 'p95_ms', label: 'p95', color: 'var(--c2)' },
      { key: 'p99_ms', label: 'p99', color: 'var(--c3)' }], fmt.ms),
    chart('chart-errors', 'Errors per minute', (p) => fmt.int(p.errors), [{ key: 'errors', label: 'errors', color: 'var(--c3)' }], count),
    chart('chart-waiting', 'Clients waiting (most in the minute)', (p) => fmt.int(p.clients_waiting), [{ key: 'clients_waiting', label: 'waiting', color: 'var(--c2)' }], count),
    chart('chart-pool', 'Pool use (servers in use / pool size)', (p) => fmt.pct(p.pool_use), [{ key: 'pool_use', label: 'in use', color: 'var(--c1)' }], fmt.pct),
    card('chart-cache', 'Cache hit ratio', null, state.empty('No cache yet: the result cache is not built, so there is no hit ratio to show.')),
  ];
}

/** A newest-first list with a "Load more" button. */
async function pagedList(ctx, path, box, render, what) {
  const rows = [];
  let cursor = null;
  const more = h('button', {}, 'Load more');
  async function next() {
    more.disabled = true;
    try {
      const page = await api(path, { limit: 100, cursor }, ctx.signal);
      rows.push(...page.data);
      cursor = page.has_more ? page.next_cursor : null;
      box.replaceChildren(render(rows), cursor ? more : '');
    } catch (e) {
      ctx.fail(e, box, what);
    }
    more.disabled = false;
  }
  more.addEventListener('click', next);
  await next();
}

function source(ctx) {
  const keep = ctx.status.memory_keeps.toLocaleString('en-US');
  if (ctx.status.store === 'connected') return h('p', { class: 'muted' }, 'From the store (every sidecar that shares it).');
  if (ctx.status.store === 'down') return h('p', { class: 'error' }, `The store is down: showing the last ${keep} events from memory. They are lost on restart; check store_url and the store\u2019s PostgreSQL.`);
  return h('p', { class: 'muted' }, `No store (store = false): showing the last ${keep} events kept in memory by this proxy.`);
}

export async function slow(ctx) {
  const alerts = h('div', {}, state.loading('alerts'));
  const events = h('div', {}, state.loading('slow events'));
  ctx.root.append(h('h1', {}, 'Slow log & alerts'), source(ctx),
    h('h2', {}, 'Alerts'), alerts, h('h2', {}, 'Slow events'), events);
  const thresholds = `slower than ${ctx.status.slow_warning_ms} ms`;
  await Promise.all([
    pagedList(ctx, 'alerts', alerts, (rows) => eventsTable(rows, 'No alert yet: an alert fires when a query stays slow several calls in a row.', true), 'alerts'),
    pagedList(ctx, 'slow', events, (rows) => eventsTable(rows, `No slow event yet (none ${thresholds}).`, false), 'slow events'),
  ]);
}

export async function pools(ctx) {
  const boxes = Object.fromEntries(['pools', 'clients', 'servers'].map((n) => [n, h('div', {}, state.loading(n))]));
  ctx.root.append(h('h1', {}, 'Pools & clients'),
    h('p', { class: 'muted' }, 'What SHOW POOLS, SHOW CLIENTS and SHOW SERVERS answer in the SQL console; refreshed every 5 s.'),
    h('h2', {}, 'Pools'), boxes.pools, h('h2', {}, 'Clients'), boxes.clients, h('h2', {}, 'Servers'), boxes.servers);
  async function refresh() {
    await Promise.all(Object.entries(boxes).map(async ([name, box]) => {
      try {
        box.replaceChildren(showTable(await api(`show/${name}`, {}, ctx.signal), `show-${name}`));
      } catch (e) {
        ctx.fail(e, box, name);
      }
    }));
  }
  await refresh();
  ctx.every(5000, refresh);
}

export async function jobs(ctx) {
  const status = ctx.params.get('status') || '';
  const box = h('div', {}, state.loading('jobs'));
  const pick = h('select', { 'aria-label': 'status', id: 'jobs-status', onchange: (e) => ctx.go('jobs', null, { status: e.target.value }) },
    ['', 'pending', 'running', 'done', 'failed'].map((s) => h('option', { value: s, selected: s === status }, s || 'any status')));
  ctx.root.append(h('h1', {}, 'Jobs'), h('div', { class: 'toolbar' }, pick), box);
  if (ctx.status.store !== 'connected') {
    box.replaceChildren(state.empty(ctx.status.store === 'down'
      ? 'Jobs live in the store, which is down: check store_url and the store\u2019s PostgreSQL.'
      : 'Jobs live in the store, which is off (store = false): there is nothing to show.'));
    return;
  }
  try {
    const r = await apiAll('jobs', { status }, 300, ctx.signal);
    if (!r.rows.length) {
      box.replaceChildren(state.empty(status ? `No ${status} job.` : 'No job yet.'));
      return;
    }
    const columns = Object.keys(r.rows[0]);
    box.replaceChildren(showTable({ columns, data: r.rows.map((j) => columns.map((c) => j[c] === null ? null : String(j[c]))), has_more: r.more, total: r.rows.length }, 'jobs-table'));
  } catch (e) {
    ctx.fail(e, box, 'jobs');
  }
}

export function cache(ctx) {
  ctx.root.append(h('h1', {}, 'Cache'), state.empty('The result cache is not built yet. When it lands, this page shows its hit ratio, size and invalidations, and the overview charts the hit ratio.'));
}

export function advice(ctx) {
  ctx.root.append(h('h1', {}, 'Advice'), state.empty('The index advisor is not built yet. When it lands, this page lists its suggestions, and each query\u2019s page shows those for it.'));
}
