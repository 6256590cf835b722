// A task: its data (masked by the API), its error, its history as a
// timeline, its audit entries, and the operator actions.

import { api, paths } from '../api.js';
import { h, mount, errorBox, pill, shortID, fmtTime, fmtClock, fmtDur, since, ago, select, field, toast, query } from '../dom.js';
import { openAction } from '../dialog.js';
import { auditTable } from './audit.js';

const enc = encodeURIComponent;
const FINAL = ['succeeded', 'failed', 'canceled'];

const EVENTS = {
  submit: 'Submitted',
  operator_retry: 'Retried by an operator',
  operator_edit: 'Edited and retried by an operator',
  operator_move: 'Moved by an operator',
  operator_cancel: 'Canceled by an operator',
  callback: 'Callback received',
  early_callback: 'Callback came before the reply',
  reply: 'Provider replied',
  retry_scheduled: 'Call retry scheduled',
  late_callback: 'Late callback recorded',
  timeout: 'Timed out',
  error: 'Error',
  next: 'Moved on',
};

function dataTable(task, proc) {
  const declared = (proc && proc.input.fields) || [];
  const fields = new Map(declared.map((f) => [f.name, f]));
  const data = task.data || {};
  // Input fields in the schema's order, then what the flow added.
  const keys = declared.map((f) => f.name).filter((k) => k in data)
    .concat(Object.keys(data).filter((k) => !fields.has(k)).sort());
  if (!keys.length) return h('div', { class: 'empty' }, 'No data.');
  return h('table', { class: 'kv', id: 'task-data' }, keys.map((k) => {
    const v = task.data[k];
    const f = fields.get(k);
    let cell;
    if (f && f.sensitive) cell = [h('span', { class: 'masked' }, String(v)), h('span', { class: 'sealed', title: 'sealed on the server; shown masked' }, 'sensitive')];
    else if (v !== null && typeof v === 'object') {
      const n = Array.isArray(v) ? `[${v.length} items]` : `{${Object.keys(v).length} fields}`;
      cell = h('details', {}, h('summary', {}, n), h('pre', {}, JSON.stringify(v, null, 2)));
    }
    else cell = h('span', {}, String(v));
    return h('tr', { 'data-key': k }, h('th', {}, k), h('td', {}, cell));
  }));
}

function timeline(task, proc) {
  const hist = task.history || [];
  const kinds = new Map(((proc && proc.nodes) || []).map((n) => [n.name, n.kind]));
  const finished = FINAL.includes(task.status);
  return h('ol', { class: 'timeline', id: 'timeline' }, hist.map((e, i) => {
    const nextAt = hist[i + 1] ? new Date(hist[i + 1].at).getTime() : null;
    const at = new Date(e.at).getTime();
    let stay;
    if (nextAt !== null) stay = `${fmtDur(nextAt - at)} in ${e.to}`;
    else if (!finished) stay = `${fmtDur(since(e.at))} so far in ${e.to}`;
    const operator = e.event.startsWith('operator_');
    const cls = [operator && 'operator', kinds.get(e.to) === 'escalation' && 'error', i === hist.length - 1 && finished && task.status === 'succeeded' && 'final'];
    return h('li', { class: cls, 'data-event': e.event },
      h('span', { class: 'dot' }),
      h('div', { class: 'row1' },
        h('span', { class: 'ev' }, EVENTS[e.event] || e.event),
        h('span', { class: 'tag' }, e.event),
        h('span', { class: 'when', title: fmtTime(e.at) }, `${fmtTime(e.at).slice(0, 10)} ${fmtClock(e.at)}`)),
      h('div', { class: 'row2' },
        h('span', { class: 'where' }, e.from && e.from !== e.to ? `${e.from} → ${e.to}` : `in ${e.to}`),
        e.actor ? h('span', {}, 'by ', h('b', {}, e.actor)) : null,
        stay ? h('span', {}, stay) : null),
      e.reason ? h('div', { class: 'reason' }, `“${e.reason}”`) : null,
      e.detail ? h('div', { class: 'detail' }, e.detail) : null);
  }));
}

export function render(main, { params, go }) {
  const [id] = params;
  let alive = true;
  let timer;
  let task;
  let proc;
  let shown = '';
  const view = h('div', { class: 'stack' });
  mount(main, view);

  function actions() {
    const escalated = task.status === 'escalated' && task.error;
    const open = !FINAL.includes(task.status);
    const b = (label, idAttr, enabled, why, run, danger) => h('button', {
      class: ['btn', danger && 'btn-danger'], type: 'button', id: idAttr, disabled: !enabled,
      title: enabled ? null : why, onclick: run,
    }, label);
    return h('div', { class: 'actions' },
      b('Retry', 'act-retry', escalated, 'Only escalated tasks can be retried', retry),
      b('Edit & retry', 'act-edit', escalated, 'Only escalated tasks can be edited', edit),
      b('Move to node…', 'act-move', open, 'Finished tasks cannot be moved', move),
      b('Cancel task', 'act-cancel', open, 'The task has finished', cancel, true));
  }

  async function act(action, body) {
    const out = await api('POST', paths.action(id, action), body);
    toast(`Task ${task.ref || shortID(task.id)}: ${action} done; now ${out.status} in ${out.node}.`);
    shown = '';
    await load();
    return out;
  }

  const retry = () => openAction({
    id: 'dlg-retry', title: 'Retry the task',
    text: `Runs ${task.error.node} again with the task's data as it is.`,
    submit: 'Retry', run: (reason) => act('retry', { reason }),
  });

  function edit() {
    const editor = h('textarea', { id: 'edit-data', rows: 8, spellcheck: 'false', autocomplete: 'off', placeholder: '{\n  "field": "new value"\n}' });
    editor.value = '{\n  \n}';
    const fields = (proc && proc.input.fields) || [];
    const chips = h('div', { class: 'chips' }, fields.map((f) => h('button', {
      class: ['chip', f.sensitive && 'secret'], type: 'button', title: f.sensitive ? 'sensitive: sealed, never shown' : f.description || f.type,
      onclick: () => {
        let obj;
        try {
          obj = JSON.parse(editor.value || '{}');
        } catch {
          return;
        }
        if (!(f.name in obj)) obj[f.name] = '';
        editor.value = JSON.stringify(obj, null, 2);
        editor.focus();
      },
    }, f.sensitive ? `${f.name} · sensitive` : f.name)));
    return openAction({
      id: 'dlg-edit', wide: true, title: 'Edit the data, then retry',
      text: `Send only the fields to change; null removes a field. Then ${task.error.node} runs again.`,
      body: [
        field('Data patch (JSON)', editor, { required: true, hint: 'Declared fields must still satisfy the input schema. Sensitive fields are sealed on the server and never shown again.' }),
        h('div', {}, h('div', { class: 'label' }, 'Insert a field'), chips),
      ],
      submit: 'Save & retry',
      run: async (reason) => {
        let data;
        try {
          data = JSON.parse(editor.value);
        } catch (e) {
          throw new Error(`The patch is not valid JSON: ${e.message}`);
        }
        if (!data || typeof data !== 'object' || Array.isArray(data)) throw new Error('The patch must be a JSON object of fields.');
        try {
          return await act('edit', { data, reason });
        } finally {
          editor.value = ''; // never keep a card number typed here
        }
      },
    });
  }

  function move() {
    const nodes = ((proc && proc.nodes) || []).filter((n) => n.name !== task.node);
    const to = select(nodes.map((n) => [n.name, `${n.title || n.name} (${n.name}, ${n.kind})`]), undefined, { id: 'move-to', required: true });
    return openAction({
      id: 'dlg-move', title: 'Move the task to another node',
      text: `The task leaves ${task.node} and enters the node you choose as a fresh visit.`,
      body: [field('To node', to, { required: true })],
      submit: 'Move', run: (reason) => act('move', { to: to.value, reason }),
    });
  }

  const cancel = () => openAction({
    id: 'dlg-cancel', title: 'Cancel the task',
    text: `The task ends where it stands, in ${task.node}. This cannot be undone.`,
    submit: 'Cancel task', danger: true, run: (reason) => act('cancel', { reason }),
  });

  async function auditCard() {
    const box = h('div', { class: 'card', id: 'task-audit' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Operator actions (audit)'),
        h('a', { class: 'small', href: `#/audit${query({ task: id })}` }, 'Open in the audit log →')));
    try {
      const out = await api('GET', paths.audit(query({ task: id, limit: 50 })));
      box.append(auditTable(out.entries || [], { showTask: false }));
    } catch (e) {
      box.append(h('div', { class: 'empty' }, e.missing ? 'This server has no audit log yet; the history above records every action.' : e.message));
    }
    return box;
  }

  async function draw() {
    const node = proc && proc.nodes.find((n) => n.name === task.node);
    const tail = h('div');
    mount(view,
      h('div', { class: 'page-head' },
        h('div', {},
          h('div', { class: 'crumbs' },
            h('a', { href: '#/' }, 'Processes'), h('span', { class: 'sep' }, '/'),
            h('a', { href: `#/processes/${enc(task.process)}` }, task.process), h('span', { class: 'sep' }, '/'),
            h('a', { href: `#/processes/${enc(task.process)}/nodes/${enc(task.node)}` }, task.node), h('span', { class: 'sep' }, '/'),
            'task'),
          h('h1', {}, `Task ${task.ref || shortID(task.id)}`),
          h('div', { class: 'sub' },
            h('span', { id: 'task-status', 'data-status': task.status }, pill(task.status)),
            h('span', {}, 'in ', h('a', { href: `#/processes/${enc(task.process)}/nodes/${enc(task.node)}`, id: 'task-node' }, node ? `${node.title || node.name}` : task.node)),
            h('span', { class: 'mono' }, task.id))),
        actions()),
      task.error ? h('div', { class: 'alert error errbox', id: 'task-error' },
        h('span', { class: 'code' }, task.error.code),
        h('div', {},
          h('h3', {}, task.error.description || 'Escalated'),
          h('div', { class: 'small' }, 'Failed in ', h('code', {}, task.error.node), `; escalated ${ago(task.entered)}. Retry runs that node again.`))) : null,
      h('div', { class: 'card' }, h('div', { class: 'card-body meta' },
        h('div', {}, h('span', {}, 'Process'), h('b', {}, h('a', { href: `#/processes/${enc(task.process)}` }, task.process))),
        h('div', {}, h('span', {}, 'Version'), h('b', { class: 'mono' }, task.version)),
        h('div', {}, h('span', {}, 'Created'), h('b', { title: ago(task.created) }, fmtTime(task.created))),
        h('div', {}, h('span', {}, task.finished ? 'Finished' : 'In node for'), h('b', {}, task.finished ? fmtTime(task.finished) : fmtDur(since(task.entered)))),
        h('div', {}, h('span', {}, 'Updated'), h('b', { title: fmtTime(task.updated) }, ago(task.updated))),
        task.timer_at ? h('div', {}, h('span', {}, 'Timer fires'), h('b', {}, fmtTime(task.timer_at))) : null,
        task.attempt ? h('div', {}, h('span', {}, 'Call attempt'), h('b', {}, task.attempt)) : null)),
      h('div', { class: 'grid-2' },
        h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Data'), h('span', { class: 'small muted' }, 'sensitive fields masked by the server')),
          h('div', { class: 'card-body' }, dataTable(task, proc))),
        h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'History'), h('span', { class: 'small muted' }, `${(task.history || []).length} entries`)),
          h('div', { class: 'card-body' }, timeline(task, proc)))),
      tail);
    const audit = await auditCard();
    if (alive) mount(tail, audit);
  }

  async function load() {
    clearTimeout(timer);
    try {
      task = await api('GET', paths.task(id));
      if (!proc || proc.name !== task.process) proc = await api('GET', paths.process(task.process)).catch(() => null);
      if (!alive) return;
      const key = `${task.updated}|${task.status}|${(task.history || []).length}`;
      if (key !== shown) {
        shown = key;
        await draw();
      }
    } catch (e) {
      if (alive) mount(view, errorBox(e, e.status === 404 ? 'No such task' : 'The task cannot be read'));
      return;
    }
    if (alive && !FINAL.includes(task.status)) timer = setTimeout(load, 2000);
  }
  load();
  return () => { alive = false; clearTimeout(timer); };
}
