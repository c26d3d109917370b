// One fingerprint: its SQL, percentiles per window, latency histogram, minutes over
// the last hour, captured plans (plan changes marked), slow events and alerts.

import { api, apiAll } from './api.js';
import { h, fmt, state, sqlBlock } from './format.js';
import { lineChart, histogram } from './charts.js';
import { planTree } from './plan.js';
import { WINDOWS } from './queries.js';
import { eventsTable } from './pages.js';

const STAT_COLUMNS = [['calls', 'Calls', fmt.int], ['errors', 'Errors', fmt.int], ['rows', 'Rows', fmt.int],
  ['mean_ms', 'Mean', fmt.ms], ['p50_ms', 'p50', fmt.ms], ['p95_ms', 'p95', fmt.ms], ['p99_ms', 'p99', fmt.ms],
  ['p999_ms', 'p99.9', fmt.ms], ['max_ms', 'Max', fmt.ms], ['total_ms', 'Total', fmt.ms]];

function windowsTable(entry) {
  return h('div', { class: 'scroll-x' }, h('table', { class: 'plain', id: 'd-windows' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Window'), STAT_COLUMNS.map(([, l]) => h('th', { class: 'n' }, l)))),
    h('tbody', {}, [...WINDOWS, 'all'].filter((w) => entry.windows[w]).map((w) => {
      const s = entry.windows[w];
      // A window without calls has no latency: dashes, not zeros.
      const cell = (k, f) => (s.calls === 0 && k.endsWith('_ms') ? '–' : f(s[k]));
      return h('tr', { 'data-window': w }, h('td', {}, w === 'all' ? 'since start' : w),
        STAT_COLUMNS.map(([k, , f]) => h('td', { class: 'n', 'data-col': k }, cell(k, f))));
    }))));
}

async function histogramPart(ctx, fp, entry, win, box) {
  box.replaceChildren(state.loading('the histogram'));
  try {
    const r = await api(`queries/${fp}/histogram`, { window: win, database: entry.database, user: entry.user }, ctx.signal);
    const chart = histogram(r.buckets);
    box.replaceChildren(chart ? h('div', { id: 'd-histogram', 'data-total': r.total }, chart)
      : state.empty(`No call in the last ${win}: pick a longer window.`));
  } catch (e) {
    ctx.fail(e, box, 'the histogram');
  }
}

async function historyPart(ctx, fp, entry, box) {
  try {
    const r = await api(`minutes/${fp}`, { database: entry.database }, ctx.signal);
    const series = r.series.find((x) => x.user === entry.user);
    if (!series || !series.points.length) {
      box.replaceChildren(state.empty('No completed minute with calls in the last hour yet: points appear a minute after the calls.'));
      return;
    }
    box.replaceChildren(h('div', { class: 'grid' },
      h('div', { class: 'panel card' }, h('h3', {}, 'Calls per minute'), lineChart(series.points, [{ key: 'calls', label: 'calls', color: 'var(--c1)' }], (v) => (Number.isInteger(v) ? fmt.int(v) : fmt.num(v, 1)))),
      h('div', { class: 'panel card' }, h('h3', {}, 'p95 per minute'), lineChart(series.points, [{ key: 'p95_ms', label: 'p95', color: 'var(--c3)' }], fmt.ms))));
  } catch (e) {
    ctx.fail(e, box, 'the minutes');
  }
}

function plansPart(ctx, plans, chosen, box) {
  if (!plans.length) {
    box.replaceChildren(state.empty(`No plan captured for this query. Plans are captured when a call takes longer than slow_critical_ms (${ctx.status.slow_critical_ms} ms).`));
    return;
  }
  // Newest first: a plan whose hash differs from the next older one is a plan change.
  const changed = plans.map((p, i) => i + 1 < plans.length && plans[i + 1].plan_hash !== p.plan_hash);
  const shown = plans.find((p) => String(p.id) === chosen) || plans[0];
  const list = h('div', { class: 'plans-list', role: 'listbox', 'aria-label': 'Captured plans' }, plans.map((p, i) =>
    h('button', { 'aria-pressed': String(p === shown), 'data-plan': p.id, onclick: () => ctx.go('query', ctx.arg, { ...Object.fromEntries(ctx.params), plan: p.id }, true) },
      h('div', {}, fmt.time(p.captured_at), ' ', changed[i] ? h('span', { class: 'badge change', title: 'the plan hash differs from the previous capture' }, 'plan changed') : null),
      h('div', { class: 'muted mono' }, `${p.plan_hash} · cost ${fmt.num(p.total_cost, 1)}${p.analyzed ? ` · ${fmt.ms(p.actual_ms)}` : ' · not analyzed'}`))));
  const tree = planTree(shown.plan, shown.analyzed);
  box.replaceChildren(h('div', { class: 'two' }, list, h('div', { id: 'd-plan' },
    h('p', { class: 'muted' }, shown.analyzed ? 'EXPLAIN ANALYZE with the call\u2019s own values.' : 'EXPLAIN only (the statement was not safe to run again).'),
    tree || state.empty('This plan has no node to show.'))));
}

export async function detail(ctx) {
  const fp = ctx.arg;
  const database = ctx.params.get('database') || '';
  const user = ctx.params.get('user') || '';
  const win = WINDOWS.includes(ctx.params.get('window')) ? ctx.params.get('window') : '1h';
  ctx.root.append(h('p', { class: 'muted' }, h('a', { href: '#/queries' }, '← Queries')), state.loading('the query'));
  let q;
  try {
    q = await api(`queries/${fp}`, { database }, ctx.signal);
  } catch (e) {
    ctx.fail(e, ctx.root, `query ${fp}`);
    return;
  }
  const entry = q.entries.find((e) => !user || e.user === user) || q.entries[0];
  const params = Object.fromEntries(ctx.params);
  const seg = h('div', { class: 'seg', role: 'group', 'aria-label': 'Window' }, WINDOWS.map((w) =>
    h('button', { 'aria-pressed': String(w === win), onclick: () => ctx.go('query', fp, { ...params, window: w }, true) }, w)));
  const hist = h('div');
  const minutes = h('div', { id: 'd-minutes' }, state.loading('the minutes'));
  const plansBox = h('div', {}, state.loading('plans'));
  const slowBox = h('div', {}, state.loading('slow events'));
  const alertBox = h('div', {}, state.loading('alerts'));
  ctx.root.replaceChildren(
    h('p', { class: 'muted' }, h('a', { href: '#/queries' }, '← Queries')),
    h('h1', {}, `${q.command} · `, h('span', { class: 'mono', id: 'd-fingerprint' }, q.fingerprint)),
    h('dl', { class: 'kv' }, h('dt', {}, 'Database / user'), h('dd', {}, q.entries.length > 1
      ? h('select', { 'aria-label': 'entry', onchange: (e) => { const [d, u] = e.target.value.split('\n'); ctx.go('query', fp, { ...params, database: d, user: u }, true); } },
        q.entries.map((e) => h('option', { value: `${e.database}\n${e.user}`, selected: e === entry }, `${e.database} / ${e.user}`)))
      : `${entry.database} / ${entry.user}`),
    h('dt', {}, 'Tables'), h('dd', {}, q.tables.join(', ') || '–'),
    h('dt', {}, 'Seen'), h('dd', {}, `${fmt.time(entry.first_seen)} – ${fmt.time(entry.last_seen)}`)),
    h('h2', {}, 'Statement'), h('div', { id: 'd-sql' }, sqlBlock(q.query)),
    h('h2', {}, 'Percentiles per window'), windowsTable(entry),
    h('h2', {}, 'Latency histogram ', seg), hist,
    h('h2', {}, 'The last hour'), minutes,
    h('h2', {}, 'Captured plans'), plansBox,
    h('h2', {}, 'Slow events'), slowBox,
    h('h2', {}, 'Alerts'), alertBox,
    h('h2', {}, 'Advice'), state.empty('Index advice is not built yet: when the advisor lands, its suggestions for this query appear here.'));
  histogramPart(ctx, fp, entry, win, hist);
  historyPart(ctx, fp, entry, minutes);
  apiAll('plans', { fingerprint: fp, database: entry.database }, 50, ctx.signal)
    .then((r) => plansPart(ctx, r.rows, ctx.params.get('plan'), plansBox), (e) => ctx.fail(e, plansBox, 'plans'));
  const mine = (r) => r.rows.filter((x) => x.fingerprint === fp && x.database === entry.database);
  apiAll('slow', {}, 300, ctx.signal).then((r) => slowBox.replaceChildren(
    eventsTable(mine(r), 'No slow event for this query among the latest 300.', false)), (e) => ctx.fail(e, slowBox, 'slow events'));
  apiAll('alerts', {}, 300, ctx.signal).then((r) => alertBox.replaceChildren(
    eventsTable(mine(r), 'No alert for this query among the latest 300.', true)), (e) => ctx.fail(e, alertBox, 'alerts'));
}
