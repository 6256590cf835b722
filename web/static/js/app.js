// The dashboard's shell: sign-in, the operator's name, and a router over
// the URL fragment. Each page module exports render(main, ctx) and returns
// a function that stops whatever it started (polling, timers).

import { api, paths, session } from './api.js';
import { h, mount, errorBox } from './dom.js';
import * as processes from './pages/processes.js';
import * as processPage from './pages/process.js';
import * as nodePage from './pages/node.js';
import * as taskPage from './pages/task.js';
import * as bulkPage from './pages/bulk.js';
import * as auditPage from './pages/audit.js';

const main = document.getElementById('main');
const poll = Number(document.body.dataset.pollMs) || 1500;

const routes = [
  [/^\/?$/, processes, 'processes'],
  [/^\/processes\/([^/]+)$/, processPage, 'processes'],
  [/^\/processes\/([^/]+)\/nodes\/([^/]+)$/, nodePage, 'processes'],
  [/^\/tasks\/([^/]+)$/, taskPage, ''],
  [/^\/bulk$/, bulkPage, 'bulk'],
  [/^\/bulk\/([^/]+)$/, bulkPage, 'bulk'],
  [/^\/audit$/, auditPage, 'audit'],
];

let stop = () => {};
let signedIn = false;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return { path, query: new URLSearchParams(qs || '') };
}

function route() {
  stop();
  stop = () => {};
  if (!signedIn) return;
  const { path, query } = parseHash();
  for (const [re, page, nav] of routes) {
    const m = path.match(re);
    if (!m) continue;
    document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('current', a.dataset.nav === nav));
    const params = m.slice(1).map(decodeURIComponent);
    main.scrollTop = 0;
    window.scrollTo(0, 0);
    try {
      stop = page.render(main, { params, query, poll, go }) || (() => {});
    } catch (e) {
      mount(main, errorBox(e));
    }
    return;
  }
  mount(main, h('div', { class: 'card' }, h('div', { class: 'empty' }, 'No such page. ', h('a', { href: '#/' }, 'Back to the processes'))));
}

// go navigates to a fragment; replace keeps it out of the history.
export function go(hash, replace = false) {
  if (replace) {
    history.replaceState(null, '', hash);
    route();
  } else {
    location.hash = hash;
  }
}

function showWho() {
  const who = document.getElementById('who');
  who.hidden = false;
  const input = document.getElementById('actor-name');
  input.value = session.actor;
  input.addEventListener('change', () => { session.actor = input.value.trim(); });
  const out = document.getElementById('sign-out');
  out.hidden = !session.authRequired;
  out.onclick = () => {
    session.token = '';
    signIn();
  };
}

// signIn shows the token form; it resolves once the token works.
function signIn(message) {
  signedIn = false;
  document.body.classList.add('signed-out');
  stop();
  stop = () => {};
  document.getElementById('who').hidden = true;
  const token = h('input', { type: 'password', id: 'token', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'paste the API token' });
  const name = h('input', { type: 'text', id: 'operator', autocomplete: 'off', maxlength: 64, placeholder: 'e.g. alice', value: session.actor });
  const err = h('div', { class: 'alert error', hidden: !message, role: 'alert' }, message || '');
  const btn = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Sign in to Conveyor')),
    h('div', { class: 'card-body' },
      h('p', { class: 'muted' }, 'This server needs its API token. It is kept in this tab only and sent as a bearer token with each request.'),
      err,
      h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token', h('span', { class: 'req' }, '*')), token),
      h('div', { class: 'field' }, h('label', { for: 'operator' }, 'Your name'), name,
        h('div', { class: 'hint' }, 'Recorded with every action you take, with your reason.')),
      h('div', { class: 'row' }, h('span', { class: 'spacer' }), btn)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    btn.disabled = true;
    session.token = token.value.trim();
    session.actor = name.value.trim();
    token.value = '';
    try {
      await api('GET', paths.processes());
      enter();
    } catch (e) {
      session.token = '';
      err.hidden = false;
      err.textContent = e.status === 401 ? 'That token is not accepted.' : e.message;
      btn.disabled = false;
      token.focus();
    }
  });
  mount(main, form);
  token.focus();
}

function enter() {
  signedIn = true;
  document.body.classList.remove('signed-out');
  showWho();
  route();
}

session.onUnauthorized(() => {
  if (signedIn) signIn('The server no longer accepts the token. Sign in again.');
});

async function boot() {
  window.addEventListener('hashchange', route);
  try {
    await api('GET', paths.processes());
    enter();
  } catch (e) {
    if (e.status === 401) signIn();
    else mount(main, errorBox(e, 'The API cannot be reached'));
  }
}

boot();
