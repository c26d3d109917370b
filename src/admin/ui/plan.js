// A captured EXPLAIN (FORMAT JSON) plan as a tree people can read: each node's type,
// relation and index, rows estimated against actual, time and buffers, with the most
// expensive node highlighted (exclusive time when analyzed, exclusive cost otherwise).

import { h, fmt } from './format.js';

/** The root node of EXPLAIN's JSON, whichever wrapping it came in. */
function rootOf(plan) {
  const top = Array.isArray(plan) ? plan[0] : plan;
  return top && (top.Plan || top.plan || top);
}

const loops = (n) => n['Actual Loops'] || 1;
const totalTime = (n) => (n['Actual Total Time'] ?? 0) * loops(n);

/** Time (or cost) spent in the node itself, not its children. */
function exclusive(n, analyzed) {
  const kids = n.Plans || [];
  if (analyzed) return Math.max(0, totalTime(n) - kids.reduce((a, k) => a + totalTime(k), 0));
  return Math.max(0, (n['Total Cost'] ?? 0) - kids.reduce((a, k) => a + (k['Total Cost'] ?? 0), 0));
}

function walk(n, f) {
  f(n);
  for (const k of n.Plans || []) walk(k, f);
}

function describe(n) {
  let what = n['Node Type'] || '?';
  if (n['Join Type'] && /Join|Nested Loop/.test(what)) what = `${n['Join Type']} ${what}`;
  const on = [];
  if (n['Relation Name']) {
    const rel = n.Schema && n.Schema !== 'public' ? `${n.Schema}.${n['Relation Name']}` : n['Relation Name'];
    on.push(n.Alias && n.Alias !== n['Relation Name'] ? `${rel} ${n.Alias}` : rel);
  }
  const using = n['Index Name'] ? ` using ${n['Index Name']}` : '';
  return (on.length ? `${what} on ${on.join(' ')}` : what) + using;
}

function facts(n, analyzed, share) {
  const out = [];
  const est = n['Plan Rows'];
  if (analyzed && n['Actual Rows'] !== undefined) {
    const actual = n['Actual Rows'] * loops(n);
    const off = Math.max(est, 1) / Math.max(actual, 1);
    const bad = off > 10 || off < 0.1;
    out.push(h('span', { class: bad ? 'misest' : '', title: 'rows estimated by the planner vs rows produced' },
      `rows ${fmt.int(est)} est / ${fmt.int(actual)} actual${loops(n) > 1 ? ` (${fmt.int(loops(n))} loops)` : ''}`));
    out.push(h('span', {}, `time ${fmt.ms(totalTime(n))} (self ${fmt.ms(exclusive(n, true))}, ${fmt.pct(share)})`));
  } else {
    out.push(h('span', {}, `rows ${fmt.int(est)} est`));
  }
  out.push(h('span', {}, `cost ${fmt.num(n['Startup Cost'] ?? 0, 2)}..${fmt.num(n['Total Cost'] ?? 0, 2)}`));
  const hit = n['Shared Hit Blocks'];
  const read = n['Shared Read Blocks'];
  if (hit !== undefined || read !== undefined) {
    out.push(h('span', { title: 'shared buffers: found in cache / read from disk' },
      `buffers hit ${fmt.int(hit ?? 0)} read ${fmt.int(read ?? 0)}`));
  }
  for (const key of ['Index Cond', 'Filter', 'Hash Cond', 'Join Filter', 'Sort Key']) {
    if (n[key]) out.push(h('span', { class: 'mono' }, `${key}: ${Array.isArray(n[key]) ? n[key].join(', ') : n[key]}`));
  }
  if (n['Rows Removed by Filter']) out.push(h('span', {}, `removed by filter ${fmt.int(n['Rows Removed by Filter'])}`));
  return out;
}

/** The tree, or null when the plan has no node. */
export function planTree(plan, analyzed) {
  const root = rootOf(plan);
  if (!root || !root['Node Type']) return null;
  let hottest = root;
  let total = 0;
  walk(root, (n) => {
    total += exclusive(n, analyzed);
    if (exclusive(n, analyzed) > exclusive(hottest, analyzed)) hottest = n;
  });
  const node = (n) => {
    const hot = n === hottest;
    const share = total > 0 ? exclusive(n, analyzed) / total : 0;
    return h('li', {},
      h('div', { class: hot ? 'node hot' : 'node', 'data-node': n['Node Type'] },
        h('div', { class: 'what' }, describe(n), hot ? h('span', { class: 'badge change', title: 'most of the time (or cost) is spent here' }, ' most expensive') : null),
        h('div', { class: 'facts' }, facts(n, analyzed, share))),
      n.Plans && n.Plans.length ? h('ul', {}, n.Plans.map(node)) : null);
  };
  return h('ul', { class: 'plan' }, node(root));
}
