// Small helpers: building elements, numbers and times for people, and SQL laid out
// and coloured.

/** h('div', {class: 'x', onclick: f}, child, 'text', ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    // Through the CSSOM: the page's CSP forbids style attributes.
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const NF = new Intl.NumberFormat('en-US');

export const fmt = {
  int: (v) => (v === null || v === undefined ? '–' : NF.format(v)),
  /** Milliseconds with a precision that suits the size. */
  ms(v) {
    if (v === null || v === undefined) return '–';
    if (v >= 60000) return `${(v / 60000).toFixed(1)} min`;
    if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
    if (v >= 100) return `${v.toFixed(0)} ms`;
    if (v >= 1) return `${v.toFixed(2)} ms`;
    return `${(v * 1000).toFixed(0)} µs`;
  },
  num: (v, d = 1) => (v === null || v === undefined ? '–' : v.toFixed(d)),
  pct: (v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(0)}%`),
  time(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  },
  clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  },
  ago(iso) {
    const s = Math.max(0, (Date.now() - new Date(iso)) / 1000);
    if (s < 60) return `${s.toFixed(0)} s ago`;
    if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} days ago`;
  },
};

const KEYWORDS = new Set(`select from where and or not in is null as on join left right inner outer full cross
 group by order having limit offset insert into values update set delete returning with union all distinct case
 when then else end exists between like ilike any some create table index drop alter begin commit rollback
 asc desc nulls first last lateral using default conflict do nothing for share nowait skip locked true false
 interval cast coalesce over partition window filter within recursive materialized except intersect fetch only
 rows row explain analyze vacuum copy to show grant revoke truncate`.split(/\s+/));

// Tokens: comments, strings, quoted names, parameters, numbers, words, anything else.
const TOKEN = /(--[^\n]*|\/\*[\s\S]*?\*\/)|('(?:[^']|'')*')|("(?:[^"]|"")*")|(\$\d+)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_$]*)|(\s+)|(.)/g;

/** The statement's tokens as [class, text] pairs. */
function tokens(sql) {
  const out = [];
  for (const m of sql.matchAll(TOKEN)) {
    const [text, cmt, str, ident, param, num, word, space] = m;
    let cls = '';
    if (cmt) cls = 'cmt';
    else if (str) cls = 'str';
    else if (ident) cls = '';
    else if (param) cls = 'param';
    else if (num) cls = 'num';
    else if (word && KEYWORDS.has(word.toLowerCase())) cls = 'kw';
    else if (space) cls = 'space';
    out.push([cls, text]);
  }
  return out;
}

// Clause keywords that start a new line when laid out.
const BREAK_BEFORE = new Set(['select', 'from', 'where', 'group', 'order', 'having', 'limit', 'offset',
  'values', 'set', 'returning', 'union', 'join', 'left', 'right', 'inner', 'full', 'cross', 'on', 'and', 'or',
  'insert', 'update', 'delete', 'with', 'except', 'intersect']);
const NO_BREAK_AFTER = new Set(['left', 'right', 'inner', 'full', 'cross', 'outer', 'union', 'is', 'not', 'between']);

/** The SQL on several lines (clauses first, AND/OR indented), coloured, as a fragment. */
export function sqlBlock(sql) {
  const frag = document.createDocumentFragment();
  let depth = 0;
  let prevWord = '';
  let betweenOpen = false;
  const list = tokens(sql);
  for (let i = 0; i < list.length; i++) {
    const [cls, text] = list[i];
    if (cls === 'space') {
      frag.append(' ');
      continue;
    }
    const low = text.toLowerCase();
    if (text === '(') depth++;
    if (text === ')') depth = Math.max(0, depth - 1);
    if (cls === 'kw' && BREAK_BEFORE.has(low) && !NO_BREAK_AFTER.has(prevWord) && i > 0 && !(low === 'and' && betweenOpen)) {
      // Drop the space before the break, then indent by nesting (and AND/OR a bit more).
      if (frag.lastChild && frag.lastChild.nodeType === 3 && frag.lastChild.data === ' ') frag.lastChild.remove();
      const extra = low === 'and' || low === 'or' || low === 'on' ? '  ' : '';
      frag.append('\n' + '  '.repeat(depth) + extra);
    }
    if (low === 'between') betweenOpen = true;
    else if (low === 'and' && betweenOpen) betweenOpen = false;
    frag.append(cls ? h('span', { class: cls, text }) : text);
    if (cls === 'kw' || cls === '') prevWord = low;
  }
  return h('pre', { class: 'sql' }, frag);
}

/** One line of SQL, coloured (for lists). */
export function sqlInline(sql) {
  const frag = document.createDocumentFragment();
  for (const [cls, text] of tokens(sql)) {
    frag.append(cls && cls !== 'space' ? h('span', { class: cls, text }) : text);
  }
  return h('code', { class: 'sql-inline' }, frag);
}

/** A loading line, an empty state, an error with what to do. */
export const state = {
  loading: (what) => h('p', { class: 'loading', text: `Loading ${what}…` }),
  empty: (text) => h('div', { class: 'empty', text }),
  error: (e, what) => h('div', { class: 'empty error', role: 'alert' },
    `Cannot load ${what}: ${e.message}`),
};
