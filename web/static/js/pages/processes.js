// The landing page: every process with what stands in it now.

import { api, paths } from '../api.js';
import { h, mount, errorBox } from '../dom.js';

// totals sums what stands in the process now, and every arrival into its
// final nodes.
function totals(proc) {
  const t = { active: 0, waiting: 0, escalated: 0, finished: 0 };
  for (const n of proc.nodes) {
    const now = n.counts.now || {};
    t.active += now.active || 0;
    t.waiting += now.waiting || 0;
    t.escalated += now.escalated || 0;
    if (n.kind === 'final') t.finished += n.counts.total || 0;
  }
  return t;
}

function card(proc) {
  const t = totals(proc);
  const stat = (n, label, hot) => h('div', { class: ['stat', hot && n > 0 && 'hot'] }, h('b', {}, n), h('span', {}, label));
  return h('a', { class: 'card proc-card', href: `#/processes/${encodeURIComponent(proc.name)}`, 'data-process': proc.name },
    h('h2', {}, proc.title || proc.name),
    h('div', { class: 'name' }, `${proc.name} · ${proc.version} · ${proc.nodes.length} nodes`),
    h('div', { class: 'desc' }, proc.description || `Starts at ${proc.start}.`),
    h('div', { class: 'stats' },
      stat(t.active, 'active'),
      stat(t.waiting, 'waiting'),
      stat(t.escalated, 'escalated', true),
      stat(t.finished, 'finished')));
}

export function render(main, { poll }) {
  const grid = h('div', { class: 'proc-grid' });
  const status = h('div');
  mount(main,
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Processes'), h('div', { class: 'sub' }, 'Live counts of the tasks in every flow. Open one to see its graph.'))),
    status, grid);
  let timer;
  let alive = true;
  async function load() {
    try {
      const out = await api('GET', paths.processes());
      if (!alive) return;
      mount(status);
      mount(grid, out.processes.length ? out.processes.map(card) : h('div', { class: 'card empty' }, 'No processes are loaded.'));
    } catch (e) {
      if (alive) mount(status, errorBox(e, 'The processes cannot be read'));
    }
    if (alive) timer = setTimeout(load, Math.max(poll, 2000));
  }
  load();
  return () => { alive = false; clearTimeout(timer); };
}
