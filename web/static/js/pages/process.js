// A process: its graph with live counts, "Add task", and a task followed
// across the graph after it is sent.

import { api, paths } from '../api.js';
import { h, mount, errorBox, pill, shortID, toast } from '../dom.js';
import { render as drawGraph, nowCount } from '../graph.js';
import { openAddTask } from '../form.js';

const enc = encodeURIComponent;

function summary(proc) {
  let flight = 0, esc = 0;
  for (const n of proc.nodes) {
    const c = nowCount(n);
    if (n.kind !== 'final') flight += (c.now.active || 0) + (c.now.waiting || 0);
    esc += c.now.escalated || 0;
  }
  return { flight, esc };
}

export function render(main, { params, query, poll, go }) {
  const [name] = params;
  let followID = query.get('follow') || '';
  let alive = true;
  let timer;
  let graph;
  let zoom = 1;
  let proc;
  let bannerKey = '';

  const head = h('div', { class: 'page-head' });
  const banner = h('div');
  const status = h('div');
  const scroll = h('div', { class: 'graph-scroll', id: 'graph' });
  const zoomLabel = h('span', { class: 'small muted', id: 'zoom' }, '100%');
  const setZoom = (z) => {
    if (!graph) return;
    zoom = Math.min(1.6, Math.max(0.3, z));
    const svg = scroll.querySelector('svg');
    svg.setAttribute('width', Math.round(graph.width * zoom));
    svg.setAttribute('height', Math.round(graph.height * zoom));
    zoomLabel.textContent = `${Math.round(zoom * 100)}%`;
  };
  const fit = () => graph && setZoom(Math.min(1, (scroll.clientWidth - 24) / graph.width));
  const card = h('div', { class: 'card graph-card' },
    h('div', { class: 'card-head' },
      h('div', { class: 'legend' },
        h('span', {}, h('i', { class: 'active' }), 'active'),
        h('span', {}, h('i', { class: 'waiting' }), 'waiting'),
        h('span', {}, h('i', { class: 'escalated' }), 'escalated'),
        h('span', {}, h('i', { class: 'final' }), 'final: total arrived')),
      h('div', { class: 'graph-tools' },
        h('span', { class: 'small muted', id: 'updated' }),
        h('div', { class: 'btn-group' },
          h('button', { class: 'btn btn-sm', type: 'button', title: 'Zoom out', onclick: () => setZoom(zoom - 0.1) }, '−'),
          h('button', { class: 'btn btn-sm', type: 'button', title: 'Fit to width', onclick: fit }, zoomLabel),
          h('button', { class: 'btn btn-sm', type: 'button', title: 'Zoom in', onclick: () => setZoom(zoom + 0.1) }, '+')))),
    scroll);
  mount(main, head, status, banner, card);

  const openNode = (node) => go(`#/processes/${enc(name)}/nodes/${enc(node)}`);

  // The header is drawn once; each poll updates its counts in place, so a
  // click never lands on a button that is being replaced.
  const flightEl = h('span', { id: 'in-flight' });
  const escEl = h('a', { class: 'pill escalated', id: 'escalated-total', hidden: true });
  function updateHead() {
    const sm = summary(proc);
    const esc = proc.nodes.filter((n) => n.kind === 'escalation');
    flightEl.textContent = `${sm.flight} in flight`;
    escEl.hidden = !sm.esc;
    escEl.textContent = `${sm.esc} escalated`;
    const where = esc.find((n) => nowCount(n).now.escalated) || esc[0];
    if (where) escEl.href = `#/processes/${enc(name)}/nodes/${enc(where.name)}`;
  }
  function drawHead() {
    mount(head,
      h('div', {},
        h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Processes'), h('span', { class: 'sep' }, '/'), proc.name),
        h('h1', {}, proc.title || proc.name),
        h('div', { class: 'sub' },
          h('span', { class: 'mono' }, `${proc.name}@${proc.version}`),
          h('span', {}, `${proc.nodes.length} nodes`),
          flightEl, escEl)),
      h('div', { class: 'actions' },
        h('a', { class: 'btn', href: `#/bulk?process=${enc(name)}` }, 'Bulk action…'),
        h('button', {
          class: 'btn btn-primary', type: 'button', id: 'add-task-btn',
          onclick: () => openAddTask(proc, (task) => {
            toast(`Task ${task.ref || shortID(task.id)} sent.`);
            go(`#/processes/${enc(name)}?follow=${enc(task.id)}`, true);
          }),
        }, '+ Add task')));
  }

  async function drawFollow() {
    if (!followID) {
      bannerKey = '';
      mount(banner);
      if (graph) graph.follow(null);
      return;
    }
    try {
      const t = await api('GET', paths.task(followID));
      if (!alive) return;
      if (graph) graph.follow(t.node);
      const key = `${t.id}|${t.status}|${t.node}|${t.error ? t.error.code : ''}`;
      if (key === bannerKey) return;
      bannerKey = key;
      const final = ['succeeded', 'failed', 'canceled'].includes(t.status);
      mount(banner, h('div', {
        class: ['alert', 'follow', t.status === 'escalated' || t.status === 'failed' ? 'error' : final ? 'ok' : 'info'],
        id: 'follow', 'data-status': t.status, 'data-node': t.node, 'data-task': t.id,
      },
      h('div', { class: 'grow' },
        h('b', {}, `Following task ${t.ref || shortID(t.id)}: `), pill(t.status), ' in ', h('code', {}, t.node),
        t.error ? h('span', {}, ' — ', h('code', {}, t.error.code), ` ${t.error.description}`) : null),
      h('a', { class: 'btn btn-sm', href: `#/tasks/${enc(t.id)}` }, 'Open task'),
      h('button', {
        class: 'btn btn-sm btn-ghost', type: 'button',
        onclick: () => { followID = ''; go(`#/processes/${enc(name)}`, true); },
      }, 'Stop following')));
    } catch (e) {
      if (alive) mount(banner, errorBox(e, 'The followed task cannot be read'));
    }
  }

  async function load() {
    try {
      proc = await api('GET', paths.process(name));
      if (!alive) return;
      mount(status);
      if (!graph) {
        graph = drawGraph(proc, openNode);
        mount(scroll, graph.svg);
        fit();
        drawHead();
      } else {
        graph.update(proc);
      }
      updateHead();
      await drawFollow();
      const up = document.getElementById('updated');
      if (up) up.textContent = `live · updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    } catch (e) {
      if (!alive) return;
      mount(status, errorBox(e, e.status === 404 ? `No process ${name}` : 'The process cannot be read'));
    }
    if (alive) timer = setTimeout(tick, poll);
  }
  function tick() {
    if (document.hidden) {
      timer = setTimeout(tick, poll);
      return;
    }
    load();
  }
  load();
  return () => { alive = false; clearTimeout(timer); };
}
