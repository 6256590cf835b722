// A node's tasks: filterable by ref, status, error code and age,
// paginated by the API's cursor.

import { api, paths } from '../api.js';
import { h, mount, errorBox, pill, shortID, timeCell, fmtDur, since, emptyRow, query, select, field } from '../dom.js';

const enc = encodeURIComponent;
const STATUSES = ['active', 'waiting', 'escalated', 'succeeded', 'failed', 'canceled'];
const AGES = ['1m', '5m', '15m', '1h', '6h', '24h', '72h'];

export function render(main, { params, query: q, go }) {
  const [process, node] = params;
  const filter = {
    ref: q.get('ref') || '', status: q.get('status') || '', error_code: q.get('error_code') || '',
    older_than: q.get('older_than') || '', limit: q.get('limit') || '25',
  };
  const cursors = [''];
  let page = 0;
  let alive = true;

  const ref = h('input', { type: 'text', name: 'ref', value: filter.ref, placeholder: 'exact ref', autocomplete: 'off' });
  const st = select([['', 'any']].concat(STATUSES), filter.status, { name: 'status' });
  const code = h('input', { type: 'text', name: 'error_code', value: filter.error_code, placeholder: 'e.g. limit', autocomplete: 'off' });
  const age = h('input', { type: 'text', name: 'older_than', value: filter.older_than, placeholder: 'e.g. 10m', list: 'ages', autocomplete: 'off' });
  const limit = select(['25', '50', '100'], filter.limit, { name: 'limit' });
  const form = h('form', { class: 'filters', id: 'task-filters' },
    field('Ref', ref, { wide: false }),
    field('Status', st),
    field('Error code', code),
    field('Waiting longer than', age),
    h('datalist', { id: 'ages' }, AGES.map((a) => h('option', { value: a }))),
    field('Per page', limit),
    h('div', { class: 'row' },
      h('button', { class: 'btn btn-primary', type: 'submit' }, 'Apply'),
      h('button', {
        class: 'btn btn-ghost', type: 'button',
        onclick: () => go(`#/processes/${enc(process)}/nodes/${enc(node)}`),
      }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = { ref: ref.value.trim(), status: st.value, error_code: code.value.trim(), older_than: age.value.trim(), limit: limit.value === '25' ? '' : limit.value };
    go(`#/processes/${enc(process)}/nodes/${enc(node)}${query(f)}`);
  });

  const head = h('div', { class: 'page-head' });
  const body = h('tbody');
  const status = h('div');
  const pageInfo = h('span');
  const prev = h('button', { class: 'btn btn-sm', type: 'button', id: 'prev-page' }, '← Newer');
  const next = h('button', { class: 'btn btn-sm', type: 'button', id: 'next-page' }, 'Older →');
  let table;
  const bulkHref = `#/bulk${query({ process, node, status: filter.status, error_code: filter.error_code, older_than: filter.older_than })}`;
  mount(main, head, status,
    h('div', { class: 'card' }, form,
      h('div', { class: 'table-wrap' },
        table = h('table', { class: 'data', id: 'tasks' },
          h('thead', {}, h('tr', {}, ['Ref', 'Task', 'Status', 'Error', 'In node for', 'Updated', 'Attempt'].map((c) => h('th', {}, c)))),
          body)),
      h('div', { class: 'pager' }, pageInfo, h('div', { class: 'btn-group' }, prev, next))));

  async function drawHead() {
    let proc;
    try {
      proc = await api('GET', paths.process(process));
    } catch {
      proc = null;
    }
    if (!alive) return;
    const n = proc && proc.nodes.find((x) => x.name === node);
    const now = (n && n.counts.now) || {};
    mount(head,
      h('div', {},
        h('div', { class: 'crumbs' },
          h('a', { href: '#/' }, 'Processes'), h('span', { class: 'sep' }, '/'),
          h('a', { href: `#/processes/${enc(process)}` }, process), h('span', { class: 'sep' }, '/'), node),
        h('h1', {}, n ? (n.title || n.name) : node),
        h('div', { class: 'sub' },
          n ? h('span', { class: 'tag' }, n.kind) : null,
          n && n.title && n.title !== node ? h('span', { class: 'mono' }, node) : null,
          Object.entries(now).map(([k, v]) => h('span', {}, pill(k, `${v} ${k}`))),
          n && n.kind === 'final' ? h('span', {}, `${n.counts.total} arrived in total`) : null)),
      h('div', { class: 'actions' },
        h('button', { class: 'btn', type: 'button', onclick: () => load() }, 'Refresh'),
        h('a', { class: 'btn', href: bulkHref, id: 'bulk-from-node' }, 'Bulk action on these…')));
  }

  async function load() {
    const f = { process, node, ref: filter.ref, status: filter.status, error_code: filter.error_code, older_than: filter.older_than, limit: filter.limit, cursor: cursors[page] };
    prev.disabled = next.disabled = true;
    try {
      const out = await api('GET', paths.tasks(query(f)));
      if (!alive) return;
      mount(status);
      mount(body, out.tasks.length ? out.tasks.map(row) : emptyRow(7, 'No tasks match.'));
      table.dataset.loaded = query(f); // what is shown, for tests and bookmarks
      if (out.next_cursor) cursors[page + 1] = out.next_cursor;
      next.disabled = !out.next_cursor;
      prev.disabled = page === 0;
      const from = page * Number(filter.limit) + 1;
      pageInfo.textContent = out.tasks.length ? `Tasks ${from}–${from + out.tasks.length - 1}, newest first` : '';
    } catch (e) {
      if (alive) mount(status, errorBox(e, 'The tasks cannot be listed'));
    }
  }

  function row(t) {
    const open = () => go(`#/tasks/${enc(t.id)}`);
    return h('tr', { class: 'clickable', 'data-task': t.id, 'data-ref': t.ref || '', onclick: open },
      h('td', {}, h('a', { href: `#/tasks/${enc(t.id)}`, onclick: (ev) => ev.stopPropagation() }, t.ref || '—')),
      h('td', { class: 'mono' }, shortID(t.id)),
      h('td', {}, pill(t.status)),
      h('td', { class: 'wrap' }, t.error ? [h('span', { class: 'tag red' }, t.error.code), ' ', h('span', { class: 'muted' }, t.error.description)] : ''),
      h('td', { class: 'nowrap' }, t.finished ? h('span', { class: 'muted' }, 'finished') : fmtDur(since(t.entered))),
      h('td', {}, timeCell(t.updated)),
      h('td', { class: 'num' }, t.attempt || ''));
  }

  prev.addEventListener('click', () => { if (page > 0) { page--; load(); } });
  next.addEventListener('click', () => { if (cursors[page + 1]) { page++; load(); } });
  drawHead();
  load();
  return () => { alive = false; };
}
