// Draws a process as an SVG graph: a layered layout, top to bottom, whose
// layers are the nodes' BFS distance from the start node. Within a layer
// nodes are ordered by the mean position of their parents (a few
// barycenter sweeps), which keeps most edges short and uncrossed. Edges
// going down are curves from the bottom of one box to the top of the next;
// edges going back up or sideways loop around the right-hand side.

import { s } from './dom.js';

const W = 196; // node box
const H = 66;
const GX = 60; // gap between boxes in a layer
const GY = 74; // gap between layers
const PAD = 28;

// layout returns each node's layer and position.
export function layout(proc) {
  const byName = new Map(proc.nodes.map((n, i) => [n.name, { node: n, index: i, rank: -1, x: 0, y: 0, order: 0 }]));
  const start = byName.get(proc.start) || byName.values().next().value;
  if (!start) return { items: [], width: PAD * 2, height: PAD * 2, byName };
  start.rank = 0;
  const queue = [start];
  while (queue.length) {
    const cur = queue.shift();
    for (const e of cur.node.edges) {
      const nxt = byName.get(e.to);
      if (nxt && nxt.rank < 0) {
        nxt.rank = cur.rank + 1;
        queue.push(nxt);
      }
    }
  }
  let maxRank = Math.max(...[...byName.values()].map((it) => it.rank));
  for (const it of byName.values()) {
    if (it.rank < 0) it.rank = maxRank + 1; // unreachable: a last row
  }
  maxRank = Math.max(...[...byName.values()].map((it) => it.rank));
  const layers = Array.from({ length: maxRank + 1 }, () => []);
  for (const it of byName.values()) layers[it.rank].push(it);
  layers.forEach((l) => l.forEach((it, i) => { it.order = i; }));

  const parents = new Map([...byName.keys()].map((k) => [k, []]));
  for (const it of byName.values()) {
    for (const e of it.node.edges) {
      const to = byName.get(e.to);
      if (to && to.rank > it.rank) parents.get(e.to).push(it);
    }
  }
  // Barycenter sweeps: order each layer by the mean centre of its parents,
  // every layer centred on the widest one.
  const widest = Math.max(...layers.map((l) => l.length));
  const centre = (it) => ((widest - layers[it.rank].length) / 2 + it.order) * (W + GX);
  for (let sweep = 0; sweep < 4; sweep++) {
    for (const l of layers) {
      const keyed = l.map((it) => {
        const ps = parents.get(it.node.name);
        const b = ps.length ? ps.reduce((a, p) => a + centre(p), 0) / ps.length : centre(it);
        return [b, it.order, it];
      });
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      keyed.forEach(([, , it], i) => { it.order = i; });
      l.sort((a, b) => a.order - b.order);
    }
  }
  const width = widest * W + (widest - 1) * GX + PAD * 2;
  layers.forEach((l, r) => {
    const lw = l.length * W + (l.length - 1) * GX;
    const x0 = PAD + (widest * W + (widest - 1) * GX - lw) / 2;
    l.forEach((it, i) => {
      it.x = x0 + i * (W + GX);
      it.y = PAD + 18 + r * (H + GY);
    });
  });
  const height = PAD * 2 + 18 + layers.length * H + (layers.length - 1) * GY;
  return { items: [...byName.values()], width, height, byName };
}

// edgePath routes one edge. Down: bottom to top. Sideways within a layer:
// side to side when the boxes are neighbours, else an arc above them. Up
// (a loop back): from the top of the source to the bottom of the target,
// drawn apart in its own colour.
function edgePath(a, b, lane) {
  if (b.rank > a.rank) {
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y - 2;
    const dy = Math.max(30, (y2 - y1) / 2);
    return { d: `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2) / 2, back: false };
  }
  if (b.rank === a.rank) {
    const right = b.x > a.x;
    if (Math.abs(b.order - a.order) === 1) {
      const x1 = right ? a.x + W : a.x, x2 = right ? b.x - 2 : b.x + W + 2, y = a.y + H / 2 + 6 + lane * 4;
      return { d: `M${x1},${y} L${x2},${y}`, lx: (x1 + x2) / 2, ly: y - 10, back: true };
    }
    const x1 = a.x + W / 2 + (right ? 20 : -20), x2 = b.x + W / 2 + (right ? -20 : 20), y1 = a.y, y2 = b.y - 2;
    const up = 34 + lane * 8;
    return { d: `M${x1},${y1} C${x1},${y1 - up} ${x2},${y2 - up} ${x2},${y2}`, lx: (x1 + x2) / 2, ly: y1 - up * 0.75, back: true };
  }
  const toward = b.x > a.x ? 1 : b.x < a.x ? -1 : 1;
  const x1 = a.x + W / 2 + toward * (W / 4 + lane * 6), y1 = a.y;
  const x2 = b.x + W / 2 + toward * -(W / 4) + lane * 6, y2 = b.y + H + 2;
  const dy = Math.max(30, (y1 - y2) / 2);
  return { d: `M${x1},${y1} C${x1},${y1 - dy} ${x2},${y2 + dy} ${x2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2) / 2, back: true };
}

const KIND = {
  api: 'API CALL', callback: 'CALLBACK', condition: 'CONDITION', escalation: 'ESCALATION',
  final: 'FINAL', set: 'SET', delay: 'DELAY',
};

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// nowCount sums the tasks standing in a node now, and names the status
// that should colour its badge.
export function nowCount(node) {
  const now = node.counts.now || {};
  const n = (now.active || 0) + (now.waiting || 0) + (now.escalated || 0);
  let tone = '';
  if (now.escalated) tone = 'escalated';
  else if (now.waiting) tone = 'waiting';
  else if (now.active) tone = 'active';
  return { n, tone, now };
}

// render draws proc and returns {svg, update(proc), follow(task)}.
// onNode(name) is called when a node is clicked.
export function render(proc, onNode) {
  const L = layout(proc);
  const svg = s('svg', {
    xmlns: 'http://www.w3.org/2000/svg', viewBox: `0 0 ${L.width} ${L.height}`,
    width: L.width, height: L.height, role: 'img', 'aria-label': `Graph of process ${proc.name}`,
  });
  svg.append(s('defs', {},
    s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,1 L9,5 L0,9 z', fill: '#98a2b3' })),
    s('marker', { id: 'arrow-red', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,1 L9,5 L0,9 z', fill: '#f97066' })),
    s('marker', { id: 'arrow-back', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,1 L9,5 L0,9 z', fill: '#b692f6' }))));

  const edges = s('g', { class: 'edges' });
  const labels = s('g', { class: 'labels' });
  let lane = 0;
  for (const it of L.items) {
    // Several edges to the same target (error, timeout) are drawn once,
    // labelled with every outcome.
    const grouped = new Map();
    for (const e of it.node.edges) {
      if (!L.byName.has(e.to)) continue;
      if (!grouped.has(e.to)) grouped.set(e.to, []);
      grouped.get(e.to).push(e.outcome);
    }
    for (const [to, outcomes] of grouped) {
      const b = L.byName.get(to);
      const p = edgePath(it, b, b.rank > it.rank ? 0 : lane++ % 4);
      const esc = b.node.kind === 'escalation';
      edges.append(s('path', {
        class: ['edge', esc && 'to-escalation', p.back && 'back'], d: p.d,
        'marker-end': `url(#${esc ? 'arrow-red' : p.back ? 'arrow-back' : 'arrow'})`,
      }));
      const text = outcomes.filter((o) => o !== 'next').join(', ');
      if (text) {
        const t = clip(text, 22);
        const w = t.length * 5.8 + 8;
        labels.append(s('g', { class: 'edge-label' },
          s('rect', { x: p.lx - w / 2, y: p.ly - 8, width: w, height: 15, rx: 3 }),
          s('text', { x: p.lx, y: p.ly + 3.5 }, t)));
      }
    }
  }
  svg.append(edges, labels);

  const startIt = L.byName.get(proc.start);
  if (startIt) {
    svg.append(s('g', { class: 'start-mark' },
      s('rect', { x: startIt.x + 10, y: startIt.y - 17, width: 44, height: 15, rx: 4 }),
      s('text', { x: startIt.x + 32, y: startIt.y - 6.5, 'text-anchor': 'middle' }, 'START')));
  }

  const handles = new Map();
  const nodes = s('g', { class: 'nodes' });
  for (const it of L.items) {
    const n = it.node;
    const final = n.kind === 'final';
    const g = s('g', {
      class: ['node', `kind-${n.kind}`, n.kind === 'escalation' && 'escalation', final && 'final', n.name === proc.start && 'start'],
      transform: `translate(${it.x},${it.y})`, 'data-node': n.name, tabindex: 0, role: 'button',
      'aria-label': `${n.title || n.name}: open the node's tasks`,
    });
    const title = n.title || n.name;
    g.append(
      s('title', {}, `${title} (${n.name}, ${n.kind})${n.description ? `\n${n.description}` : ''}\nClick to list its tasks.`),
      s('rect', { class: 'box', width: W, height: H, rx: 8 }),
      s('rect', { class: 'stripe', x: 0, y: 8, width: 3.5, height: H - 16, rx: 1.5 }),
      s('text', { class: 'kind', x: 14, y: 18 }, KIND[n.kind] || n.kind.toUpperCase()),
      s('text', { class: 'title', x: 14, y: 37 }, clip(title, 21)),
      s('text', { class: 'name', x: 14, y: 54 }, clip(title === n.name ? '' : n.name, 24)));
    const badge = s('g', { class: 'badge' });
    const brect = s('rect', { y: 6, height: 20, rx: 10 });
    const btext = s('text', { y: 20.5 });
    badge.append(brect, btext);
    const extra = s('text', { class: 'extra', x: W - 10, y: 56, 'text-anchor': 'end' });
    g.append(badge, extra);
    g.addEventListener('click', () => onNode(n.name));
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); onNode(n.name); }
    });
    nodes.append(g);
    handles.set(n.name, { it, g, badge, brect, btext, extra });
  }
  svg.append(nodes);
  const ring = s('rect', { class: 'follow-ring', width: W + 12, height: H + 12, rx: 12, visibility: 'hidden' });
  svg.append(ring);

  function update(p) {
    for (const n of p.nodes) {
      const hd = handles.get(n.name);
      if (!hd) continue;
      let label, cls;
      if (n.kind === 'final') {
        // Final nodes count every arrival. Their result colours them when
        // the API says it (nodes[].result); otherwise they stay neutral.
        label = String(n.counts.total || 0);
        cls = ['badge', 'total', n.result === 'success' && 'ok'];
        hd.g.classList.toggle('final-ok', n.result === 'success');
        hd.g.classList.toggle('final-err', n.result === 'error');
        hd.extra.textContent = 'total';
      } else {
        const c = nowCount(n);
        label = String(c.n);
        cls = ['badge', c.tone, c.tone === 'escalated' && 'hot'];
        const parts = [];
        if (c.now.waiting && c.tone !== 'waiting') parts.push(`${c.now.waiting} waiting`);
        if (c.now.active && c.tone !== 'active') parts.push(`${c.now.active} active`);
        hd.extra.textContent = parts.join(' · ');
      }
      const w = Math.max(26, label.length * 8 + 14);
      hd.brect.setAttribute('x', W - 8 - w);
      hd.brect.setAttribute('width', w);
      hd.btext.setAttribute('x', W - 8 - w / 2);
      hd.btext.textContent = label;
      hd.badge.setAttribute('class', cls.filter(Boolean).join(' '));
      hd.badge.setAttribute('data-count', label);
    }
  }

  function follow(node) {
    const hd = node && handles.get(node);
    if (!hd) {
      ring.setAttribute('visibility', 'hidden');
      return;
    }
    ring.setAttribute('x', hd.it.x - 6);
    ring.setAttribute('y', hd.it.y - 6);
    ring.setAttribute('visibility', 'visible');
    ring.setAttribute('data-node', node);
  }

  update(proc);
  return { svg, update, follow, width: L.width, height: L.height };
}
