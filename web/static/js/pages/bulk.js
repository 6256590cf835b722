// Bulk actions: choose tasks by filter, see how many match (a dry run),
// then retry, move or cancel them as a durable server-side job with a rate
// limit; follow its progress and its result per task.

import { api, paths } from '../api.js';
import { h, mount, errorBox, pill, shortID, fmtTime, fmtDur, since, emptyRow, query, select, field, toast } from '../dom.js';
import { openAction } from '../dialog.js';

const enc = encodeURIComponent;
const ACTIONS = [['retry', 'Retry', 'Run the failed node again'], ['move', 'Move', 'Send to another node'], ['cancel', 'Cancel', 'End where they stand']];
const RUNNING = ['pending', 'running'];

function missingNote() {
  return h('div', { class: 'alert info', id: 'bulk-missing' }, h('h3', {}, 'Bulk jobs are not available on this server'),
    'This version does not serve POST /api/v1/bulk. Act on tasks one by one from a node\'s task list.');
}

// filterChips shows a job's filter. older_than may come back as a
// duration string ("10m") or in nanoseconds.
function filterChips(f) {
  return h('div', { class: 'chips' }, Object.entries(f || {}).filter(([, v]) => v).map(([k, v]) => {
    if (k === 'older_than' && typeof v === 'number') v = fmtDur(v / 1e6);
    if (k === 'entered_before') v = fmtTime(v);
    return h('span', { class: 'tag' }, `${k}=${v}`);
  }));
}

function progress(job) {
  const total = job.total || 0;
  const pct = (n) => (total ? `${(100 * n) / total}%` : '0%');
  const ok = h('div', { class: 'ok' });
  const bad = h('div', { class: 'bad' });
  ok.style.width = pct(job.succeeded || 0);
  bad.style.width = pct(job.failed || 0);
  return h('div', { class: 'progress', title: `${job.done || 0} of ${total} done` }, ok, bad);
}

function jobsTable(jobs) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'jobs' },
    h('thead', {}, h('tr', {}, ['Job', 'Action', 'Filter', 'Status', 'Progress', 'Done', 'OK', 'Failed', 'By', 'Created'].map((c) => h('th', {}, c)))),
    h('tbody', {}, jobs.length ? jobs.map((j) => h('tr', { class: 'clickable', 'data-job': j.id, onclick: () => { location.hash = `#/bulk/${enc(j.id)}`; } },
      h('td', {}, h('a', { class: 'mono', href: `#/bulk/${enc(j.id)}` }, shortID(j.id))),
      h('td', {}, h('b', {}, j.action), j.to ? h('span', { class: 'muted' }, ` → ${j.to}`) : null),
      h('td', {}, filterChips(j.filter)),
      h('td', {}, pill(j.status)),
      h('td', {}, progress(j)),
      h('td', { class: 'num' }, `${j.done || 0}/${j.total || 0}`),
      h('td', { class: 'num' }, j.succeeded || 0),
      h('td', { class: 'num' }, j.failed || 0),
      h('td', {}, j.actor || ''),
      h('td', { class: 'nowrap' }, fmtTime(j.created)))) : emptyRow(10, 'No bulk jobs yet.'))));
}

function sampleTable(tasks) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'bulk-sample' },
    h('thead', {}, h('tr', {}, ['Ref', 'Task', 'Node', 'Status', 'Error', 'In node for'].map((c) => h('th', {}, c)))),
    h('tbody', {}, tasks.map((t) => h('tr', {},
      h('td', {}, h('a', { href: `#/tasks/${enc(t.id)}` }, t.ref || '—')),
      h('td', { class: 'mono' }, shortID(t.id)),
      h('td', { class: 'mono' }, t.node),
      h('td', {}, pill(t.status)),
      h('td', {}, t.error ? h('span', { class: 'tag red' }, t.error.code) : ''),
      h('td', { class: 'nowrap' }, fmtDur(since(t.entered))))))));
}

function newJob(main, q, go) {
  let alive = true;
  let timer;
  let procs = [];
  let previewed = '';
  let shownJobs = '';
  const radios = h('div', { class: 'radio-row', role: 'radiogroup' }, ACTIONS.map(([v, label, hint], i) => h('label', { title: hint },
    h('input', { type: 'radio', name: 'action', value: v, checked: (q.get('action') || 'retry') === v || (!q.get('action') && i === 0) }), label)));
  const proc = select([], undefined, { name: 'process', id: 'bulk-process', required: true });
  const node = select([['', 'any node']], undefined, { name: 'node', id: 'bulk-node' });
  const status = select([['', 'any unfinished'], 'escalated', 'waiting', 'active'], q.has('status') ? q.get('status') : 'escalated', { name: 'status', id: 'bulk-status' });
  const code = h('input', { type: 'text', name: 'error_code', id: 'bulk-error-code', value: q.get('error_code') || '', placeholder: 'e.g. limit', autocomplete: 'off' });
  const age = h('input', { type: 'text', name: 'older_than', id: 'bulk-older-than', value: q.get('older_than') || '', placeholder: 'e.g. 10m', autocomplete: 'off' });
  const to = select([], undefined, { name: 'to', id: 'bulk-to' });
  const toField = field('Move to node', to, { required: true, wide: true });
  const rate = h('input', { type: 'number', name: 'rate', id: 'bulk-rate', min: 1, max: 1000, value: '10', required: true });
  const reason = h('textarea', { name: 'reason', id: 'bulk-reason', rows: 2, maxlength: 1000, required: true, placeholder: 'Why? e.g. LiqPay outage 14:00–15:00 is over' });
  const previewBtn = h('button', { class: 'btn', type: 'button', id: 'bulk-preview' }, 'Preview (dry run)');
  const startBtn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'bulk-start', disabled: true }, 'Start job');
  const result = h('div', { id: 'bulk-result' });
  const jobsBox = h('div');
  const note = h('div');

  const form = h('form', { class: 'card', id: 'bulk-form' },
    h('div', { class: 'card-head' }, h('h2', {}, 'New bulk action')),
    h('div', { class: 'card-body stack' },
      h('div', { class: 'field' }, h('span', { class: 'label' }, 'Action'), radios),
      h('div', { class: 'form-grid' },
        field('Process', proc, { required: true }),
        field('Node', node),
        field('Status', status),
        field('Error code', code),
        field('Waiting longer than', age, { hint: 'a duration: 90s, 10m, 2h' }),
        field('Rate (tasks per second)', rate, { required: true }),
        toField,
        field('Reason', reason, { required: true, wide: true, hint: 'Recorded on every task the job touches and in the audit log.' })),
      h('div', { class: 'row' }, h('span', { class: 'spacer' }), previewBtn, startBtn),
      result));

  const action = () => form.querySelector('input[name=action]:checked').value;
  const filter = () => {
    const f = { process: proc.value, node: node.value, status: status.value, error_code: code.value.trim(), older_than: age.value.trim() };
    for (const k of Object.keys(f)) if (!f[k]) delete f[k];
    return f;
  };
  const body = (dry) => {
    const b = { action: action(), filter: filter(), reason: reason.value.trim(), rate: Number(rate.value) || 10, dry_run: dry };
    if (b.action === 'move') b.to = to.value;
    return b;
  };
  const keyOf = () => JSON.stringify({ ...body(false), reason: '', rate: 0 });

  function fillNodes() {
    const p = procs.find((x) => x.name === proc.value);
    const nodes = p ? p.nodes : [];
    const keep = node.value || q.get('node') || '';
    const label = (n) => (n.title && n.title !== n.name ? `${n.title} (${n.name})` : n.name);
    mount(node, h('option', { value: '' }, 'any node'), nodes.map((n) => h('option', { value: n.name }, label(n))));
    node.value = nodes.some((n) => n.name === keep) ? keep : '';
    const keepTo = to.value || q.get('to') || '';
    mount(to, nodes.map((n) => h('option', { value: n.name }, label(n))));
    if (nodes.some((n) => n.name === keepTo)) to.value = keepTo;
  }
  function sync() {
    toField.hidden = action() !== 'move';
    to.required = action() === 'move';
    const label = ACTIONS.find((a) => a[0] === action())[1];
    const fresh = previewed && previewed === keyOf();
    startBtn.disabled = !fresh;
    if (fresh) startBtn.textContent = `${label} ${result.dataset.count} task${result.dataset.count === '1' ? '' : 's'}`;
    else {
      startBtn.textContent = 'Start job';
      if (previewed) {
        previewed = '';
        mount(result, h('div', { class: 'alert info small' }, 'The filter changed: preview again before starting.'));
        delete result.dataset.count;
      }
    }
  }
  form.addEventListener('input', sync);
  form.addEventListener('change', (ev) => {
    if (ev.target === proc) fillNodes();
    sync();
  });

  previewBtn.addEventListener('click', async () => {
    if (!proc.value) return proc.reportValidity();
    previewBtn.disabled = true;
    try {
      const out = await api('POST', paths.bulk(), body(true));
      if (!alive) return;
      previewed = keyOf();
      result.dataset.count = String(out.count);
      const sample = out.sample || [];
      mount(result, h('div', { class: 'alert stack', id: 'bulk-preview-result' },
        h('div', { class: 'row' },
          h('div', { class: 'big-count', id: 'bulk-count', 'data-count': out.count }, out.count),
          h('div', {}, h('b', {}, `task${out.count === 1 ? '' : 's'} match now`),
            h('div', { class: 'small muted' }, out.count ? `The job will ${action()} them at most ${body(true).rate} per second. Tasks that change meanwhile are reported per task.` : 'Nothing to do with this filter.'))),
        sample.length ? h('div', { class: 'small muted' }, `Sample (${sample.length}):`) : null,
        sample.length ? sampleTable(sample) : null));
      sync();
      if (!out.count) startBtn.disabled = true;
    } catch (e) {
      mount(result, e.missing ? missingNote() : errorBox(e, 'The dry run failed'));
    } finally {
      previewBtn.disabled = false;
    }
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (previewed !== keyOf()) return;
    startBtn.disabled = true;
    try {
      const job = await api('POST', paths.bulk(), body(false));
      toast(`Bulk ${job.action} started: ${job.total} tasks.`);
      go(`#/bulk/${enc(job.id)}`);
    } catch (e) {
      mount(result, errorBox(e, 'The job was not started'));
      startBtn.disabled = false;
    }
  });

  mount(main,
    h('div', { class: 'page-head' }, h('div', {},
      h('h1', {}, 'Bulk actions'),
      h('div', { class: 'sub' }, 'Act on many tasks at once: choose them by filter, check the count with a dry run, then start a job. Jobs run on the server, survive restarts and report a result per task.'))),
    note, form,
    h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Jobs')), jobsBox));

  async function loadProcs() {
    try {
      procs = (await api('GET', paths.processes())).processes;
      if (!alive) return;
      mount(proc, h('option', { value: '' }, 'Choose…'), procs.map((p) => h('option', { value: p.name }, p.title ? `${p.title} (${p.name})` : p.name)));
      const want = q.get('process') || (procs.length === 1 ? procs[0].name : '');
      proc.value = procs.some((p) => p.name === want) ? want : '';
      fillNodes();
      sync();
    } catch (e) {
      if (alive) mount(note, errorBox(e, 'The processes cannot be read'));
    }
  }
  async function loadJobs() {
    try {
      const out = await api('GET', paths.bulk());
      if (!alive) return;
      const key = JSON.stringify(out.jobs || []);
      if (key !== shownJobs) {
        shownJobs = key;
        mount(jobsBox, jobsTable(out.jobs || []));
      }
      timer = setTimeout(loadJobs, (out.jobs || []).some((j) => RUNNING.includes(j.status)) ? 1000 : 3000);
    } catch (e) {
      if (!alive) return;
      if (e.missing) {
        mount(note, missingNote());
        mount(jobsBox, h('div', { class: 'empty' }, 'No bulk jobs.'));
      } else {
        mount(jobsBox, errorBox(e, 'The jobs cannot be listed'));
        timer = setTimeout(loadJobs, 5000);
      }
    }
  }
  loadProcs();
  loadJobs();
  return () => { alive = false; clearTimeout(timer); };
}

function jobPage(main, id) {
  let alive = true;
  let timer;
  let page = 0;
  const cursors = [''];
  const head = h('div', { class: 'stack' });
  const results = h('div');
  const prev = h('button', { class: 'btn btn-sm', type: 'button' }, '← Previous');
  const next = h('button', { class: 'btn btn-sm', type: 'button' }, 'Next →');
  const info = h('span');
  mount(main, h('div', { class: 'stack' }, head,
    h('div', { class: 'card', id: 'job-results' }, h('div', { class: 'card-head' }, h('h2', {}, 'Result per task')), results,
      h('div', { class: 'pager' }, info, h('div', { class: 'btn-group' }, prev, next)))));

  // The cancel button survives redraws, so a click is never lost to one.
  let current;
  const cancelBtn = h('button', {
    class: 'btn btn-danger', type: 'button', id: 'job-cancel', disabled: true,
    onclick: () => openAction({
      id: 'dlg-job-cancel', title: 'Cancel the job', reason: false, danger: true, submit: 'Cancel job',
      text: 'Tasks not reached yet are left as they are; those already done stay done.',
      run: async () => { await api('POST', paths.jobCancel(current.id)); toast('Job canceled.'); load(); },
    }),
  }, 'Cancel job');

  function drawJob(job) {
    current = job;
    cancelBtn.disabled = !RUNNING.includes(job.status);
    mount(head,
      h('div', { class: 'page-head' },
        h('div', {},
          h('div', { class: 'crumbs' }, h('a', { href: '#/bulk' }, 'Bulk actions'), h('span', { class: 'sep' }, '/'), shortID(job.id)),
          h('h1', {}, `Bulk ${job.action}${job.to ? ` → ${job.to}` : ''}`),
          h('div', { class: 'sub' }, h('span', { id: 'job-status', 'data-status': job.status }, pill(job.status)), h('span', { class: 'mono' }, job.id))),
        h('div', { class: 'actions' }, cancelBtn)),
      job.error ? h('div', { class: 'alert error', id: 'job-error' }, h('h3', {}, 'The job stopped'), job.error) : null,
      h('div', { class: 'card' }, h('div', { class: 'card-body stack' },
        h('div', { class: 'row' },
          h('div', { class: 'big-count', id: 'job-done', 'data-done': job.done || 0, 'data-total': job.total || 0 }, `${job.done || 0} / ${job.total || 0}`),
          h('div', { class: 'spacer' }, progress(job)),
          h('div', {}, pill('ok', `${job.succeeded || 0} succeeded`), ' ', pill('failed', `${job.failed || 0} failed`))),
        h('div', { class: 'meta' },
          h('div', {}, h('span', {}, 'Filter'), h('b', {}, filterChips(job.filter))),
          h('div', {}, h('span', {}, 'Rate'), h('b', {}, `${job.rate} per second`)),
          h('div', {}, h('span', {}, 'Started by'), h('b', {}, job.actor || '')),
          h('div', {}, h('span', {}, 'Created'), h('b', {}, fmtTime(job.created))),
          job.started ? h('div', {}, h('span', {}, 'Started'), h('b', {}, fmtTime(job.started))) : null,
          h('div', {}, h('span', {}, job.finished ? 'Finished' : 'Updated'), h('b', {}, fmtTime(job.finished || job.updated))),
          h('div', {}, h('span', {}, 'Reason'), h('b', {}, job.reason || ''))))));
  }

  async function loadResults() {
    prev.disabled = next.disabled = true;
    try {
      const out = await api('GET', paths.jobResults(id, query({ limit: 50, cursor: cursors[page] })));
      if (!alive) return;
      const rs = out.results || [];
      mount(results, h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'results' },
        h('thead', {}, h('tr', {}, ['Task', 'Result', 'Error', 'At'].map((c) => h('th', {}, c)))),
        h('tbody', {}, rs.length ? rs.map((r) => h('tr', { 'data-task': r.task_id, 'data-ok': String(!!r.ok) },
          h('td', {}, h('a', { class: 'mono', href: `#/tasks/${enc(r.task_id)}` }, r.task_id)),
          h('td', {}, r.ok ? pill('ok', 'done') : pill('failed', 'failed')),
          h('td', { class: 'wrap' }, r.error || ''),
          h('td', { class: 'nowrap' }, fmtTime(r.at)))) : emptyRow(4, 'No task handled yet.')))));
      if (out.next_cursor) cursors[page + 1] = out.next_cursor;
      next.disabled = !out.next_cursor;
      prev.disabled = page === 0;
      info.textContent = rs.length ? `Page ${page + 1}` : '';
    } catch (e) {
      if (alive) mount(results, errorBox(e, 'The results cannot be read'));
    }
  }

  async function load() {
    clearTimeout(timer);
    try {
      const job = await api('GET', paths.job(id));
      if (!alive) return;
      drawJob(job);
      await loadResults();
      if (alive && RUNNING.includes(job.status)) timer = setTimeout(load, 1000);
    } catch (e) {
      if (alive) mount(head, e.missing ? missingNote() : errorBox(e, e.status === 404 ? 'No such job' : 'The job cannot be read'));
    }
  }
  prev.addEventListener('click', () => { if (page > 0) { page--; loadResults(); } });
  next.addEventListener('click', () => { if (cursors[page + 1]) { page++; loadResults(); } });
  load();
  return () => { alive = false; clearTimeout(timer); };
}

export function render(main, { params, query: q, go }) {
  return params[0] ? jobPage(main, params[0]) : newJob(main, q, go);
}
