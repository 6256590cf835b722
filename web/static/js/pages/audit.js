// The audit log: every operator action, single or bulk, with who, when,
// why and what changed.

import { api, paths } from '../api.js';
import { h, mount, errorBox, shortID, fmtTime, ago, emptyRow, query, field } from '../dom.js';

const enc = encodeURIComponent;

// auditTable renders audit entries; the task page reuses it.
export function auditTable(entries, { showTask = true } = {}) {
  const cols = ['When', 'Actor', 'Action'].concat(showTask ? ['Task'] : [], ['Change', 'Reason', 'Detail', 'Job']);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data audit' },
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
    h('tbody', {}, entries.length ? entries.map((e) => h('tr', { 'data-action': e.action, 'data-task': e.task_id || '' },
      h('td', { class: 'nowrap', title: ago(e.at) }, fmtTime(e.at)),
      h('td', {}, h('b', {}, e.actor || '')),
      h('td', {}, h('span', { class: 'tag', title: e.action }, String(e.action || '').replace(/^operator_/, ''))),
      showTask ? h('td', {}, e.task_id ? h('a', { class: 'mono', href: `#/tasks/${enc(e.task_id)}` }, shortID(e.task_id)) : '', e.process ? h('div', { class: 'small muted' }, e.process) : null) : null,
      h('td', { class: 'mono nowrap' }, e.from || e.to ? `${e.from || '?'} → ${e.to || '?'}` : ''),
      h('td', { class: 'wrap' }, e.reason || ''),
      h('td', { class: 'wrap muted' }, e.detail || ''),
      h('td', {}, e.job_id ? h('a', { class: 'mono', href: `#/bulk/${enc(e.job_id)}` }, shortID(e.job_id)) : ''))) : emptyRow(cols.length, 'No operator actions recorded.'))));
}

export function render(main, { query: q, go }) {
  const filter = { task: q.get('task') || '', actor: q.get('actor') || '' };
  const cursors = [''];
  let page = 0;
  let alive = true;
  const task = h('input', { type: 'text', name: 'task', value: filter.task, placeholder: 'task id', autocomplete: 'off', spellcheck: 'false' });
  const actor = h('input', { type: 'text', name: 'actor', value: filter.actor, placeholder: 'e.g. token:alice', autocomplete: 'off' });
  const form = h('form', { class: 'filters' },
    h('div', { class: 'field grow' }, h('label', { for: 'audit-task' }, 'Task'), Object.assign(task, { id: 'audit-task' })),
    field('Actor', actor),
    h('div', { class: 'row' },
      h('button', { class: 'btn btn-primary', type: 'submit' }, 'Apply'),
      h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => go('#/audit') }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(`#/audit${query({ task: task.value.trim(), actor: actor.value.trim() })}`);
  });
  const table = h('div');
  const status = h('div');
  const prev = h('button', { class: 'btn btn-sm', type: 'button' }, '← Newer');
  const next = h('button', { class: 'btn btn-sm', type: 'button' }, 'Older →');
  const info = h('span');
  mount(main,
    h('div', { class: 'page-head' }, h('div', {},
      h('h1', {}, 'Audit log'),
      h('div', { class: 'sub' }, 'Every operator action, single or bulk: who, when, why and what changed. Newest first.'))),
    status,
    h('div', { class: 'card', id: 'audit' }, form, table, h('div', { class: 'pager' }, info, h('div', { class: 'btn-group' }, prev, next))));

  async function load() {
    prev.disabled = next.disabled = true;
    try {
      const out = await api('GET', paths.audit(query({ ...filter, limit: 50, cursor: cursors[page] })));
      if (!alive) return;
      const entries = out.entries || [];
      mount(table, auditTable(entries));
      if (out.next_cursor) cursors[page + 1] = out.next_cursor;
      next.disabled = !out.next_cursor;
      prev.disabled = page === 0;
      info.textContent = entries.length ? `Page ${page + 1}` : '';
    } catch (e) {
      if (!alive) return;
      if (e.missing) {
        mount(status, h('div', { class: 'alert info' }, h('h3', {}, 'No audit log on this server yet'),
          'GET /api/v1/audit is not served by this version. Each task\'s history still records every operator action.'));
      } else mount(status, errorBox(e, 'The audit log cannot be read'));
    }
  }
  prev.addEventListener('click', () => { if (page > 0) { page--; load(); } });
  next.addEventListener('click', () => { if (cursors[page + 1]) { page++; load(); } });
  load();
  return () => { alive = false; };
}
