// A virtual table for long lists: rows have one fixed height, only the rows in view
// (plus a margin) exist in the DOM and are reused as the list scrolls, and rows are
// fetched in slices as they come into view. Each frame's rendering is recorded with
// the Performance API (`performance.measure('vt-render')`) so its cost can be read.

import { h } from './format.js';

const OVERSCAN = 6;
const SLICE = 200;

export class VirtualTable {
  /**
   * columns: [{key, label, width, numeric, format(value, row)}]; load(offset, limit)
   * resolves to {total, rows, reset} (reset: earlier slices are stale); onOpen(row);
   * onSort(key); sort and order name the current sort.
   */
  constructor(o) {
    this.o = o;
    this.rh = 30;
    this.total = 0;
    this.slices = new Map();
    this.pending = new Set();
    this.sel = 0;
    this.pool = [];
    this.raf = 0;
    this.generation = 0;
    this.root = h('div', { class: 'vt', tabindex: 0, role: 'grid', 'aria-label': o.label || 'table' });
    this.root.style.setProperty('--cols', o.columns.map((c) => c.width).join(' '));
    this.head = h('div', { class: 'vt-row vt-head', role: 'row' }, o.columns.map((c) =>
      h('span', { class: c.numeric ? 'n' : '', role: 'columnheader', 'data-key': c.key, title: `Sort by ${c.label}`,
        onclick: () => o.onSort && o.onSort(c.key) }, c.label)));
    this.spacer = h('div', { class: 'vt-spacer' });
    this.layer = h('div', { class: 'vt-layer', role: 'rowgroup' });
    this.body = h('div', { class: 'vt-body' }, this.spacer, this.layer);
    this.root.append(this.head, this.body);
    this.body.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.root.addEventListener('keydown', (e) => this.key(e));
    this.layer.addEventListener('click', (e) => {
      const row = e.target.closest('.vt-row');
      if (!row || row._idx === undefined) return;
      this.select(row._idx);
      this.open();
    });
    this.markSort(o.sort, o.order);
  }

  markSort(sort, order) {
    for (const span of this.head.children) {
      const on = span.dataset.key === sort;
      span.setAttribute('aria-sort', on ? (order === 'asc' ? 'ascending' : 'descending') : 'none');
    }
  }

  /** Starts over with a first slice already fetched. */
  reset(total, rows) {
    this.generation++;
    this.total = total;
    this.slices = new Map([[0, rows]]);
    this.pending = new Set();
    this.sel = Math.min(this.sel, Math.max(0, total - 1));
    this.spacer.style.height = `${total * this.rh}px`;
    this.root.setAttribute('aria-rowcount', total);
    for (const row of this.pool) row._idx = -1;
    this.body.scrollTop = 0;
    this.render();
  }

  rowAt(i) {
    const slice = this.slices.get(Math.floor(i / SLICE));
    return slice ? slice[i % SLICE] : undefined;
  }

  schedule() {
    if (!this.raf) {
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        this.render();
      });
    }
  }

  render() {
    const start = performance.now();
    const height = this.body.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.body.scrollTop / this.rh) - OVERSCAN);
    const count = Math.max(0, Math.min(this.total - first, Math.ceil(height / this.rh) + 2 * OVERSCAN));
    while (this.pool.length < count) this.pool.push(this.newRow());
    this.layer.style.transform = `translateY(${first * this.rh}px)`;
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      if (i >= count) {
        if (!row.hidden) row.hidden = true;
        continue;
      }
      if (row.hidden) row.hidden = false;
      this.fill(row, first + i);
    }
    this.fetchMissing(first, first + count);
    performance.measure('vt-render', { start, end: performance.now() });
    if (performance.getEntriesByName('vt-render').length > 5000) performance.clearMeasures('vt-render');
  }

  newRow() {
    const row = h('div', { class: 'vt-row', role: 'row' });
    for (const c of this.o.columns) row.append(h('span', { class: c.numeric ? 'n' : '', role: 'gridcell' }));
    this.layer.append(row);
    return row;
  }

  /** Writes row `i` into `el`, touching only cells whose text changed. */
  fill(el, i) {
    const data = this.rowAt(i);
    const sel = i === this.sel;
    if (el._idx === i && el._data === data && el._sel === sel) return;
    el._idx = i;
    el._data = data;
    el._sel = sel;
    el.classList.toggle('sel', sel);
    el.classList.toggle('pending', !data);
    el.setAttribute('aria-rowindex', i + 1);
    if (sel) el.setAttribute('aria-selected', 'true');
    else el.removeAttribute('aria-selected');
    const cells = el.children;
    this.o.columns.forEach((c, k) => {
      const text = data ? c.format(data[c.key], data) : (k === 0 ? '…' : '');
      if (cells[k].textContent !== text) cells[k].textContent = text;
    });
    if (data && this.o.title) el.title = this.o.title(data);
  }

  fetchMissing(from, to) {
    for (let s = Math.floor(from / SLICE); s * SLICE < to; s++) {
      if (this.slices.has(s) || this.pending.has(s)) continue;
      this.pending.add(s);
      const generation = this.generation;
      this.o.load(s * SLICE, SLICE).then((r) => {
        if (generation !== this.generation) return;
        this.pending.delete(s);
        if (r.reset) {
          this.slices.clear();
          this.total = r.total;
          this.spacer.style.height = `${r.total * this.rh}px`;
        }
        this.slices.set(s, r.rows);
        this.schedule();
      }, (e) => {
        this.pending.delete(s);
        if (this.o.onError) this.o.onError(e);
      });
    }
  }

  select(i) {
    if (this.total === 0) return;
    this.sel = Math.max(0, Math.min(this.total - 1, i));
    const top = this.sel * this.rh;
    const height = this.body.clientHeight;
    if (top < this.body.scrollTop) this.body.scrollTop = top;
    else if (top + this.rh > this.body.scrollTop + height) this.body.scrollTop = top + this.rh - height;
    this.render();
  }

  open() {
    const data = this.rowAt(this.sel);
    if (data && this.o.onOpen) this.o.onOpen(data);
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.body.clientHeight / this.rh) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, j: 1, k: -1 };
    if (e.key in moves) this.select(this.sel + moves[e.key]);
    else if (e.key === 'Home') this.select(0);
    else if (e.key === 'End') this.select(this.total - 1);
    else if (e.key === 'Enter') this.open();
    else return;
    e.preventDefault();
  }
}
