// The JSON API client. The token lives in sessionStorage (gone when the tab
// closes); the operator's name in localStorage. Nothing is sent with
// cookies, so the API's bearer check is the only authority.

const TOKEN = 'conveyor.token';
const ACTOR = 'conveyor.actor';

export class APIError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
  }

  // missing reports whether the endpoint itself does not exist (as opposed
  // to a task or process that does not).
  get missing() {
    return this.status === 404 && /no such endpoint/.test(this.message);
  }
}

const listeners = new Set();

export const session = {
  get token() { return sessionStorage.getItem(TOKEN) || ''; },
  set token(v) { v ? sessionStorage.setItem(TOKEN, v) : sessionStorage.removeItem(TOKEN); },
  get actor() { return localStorage.getItem(ACTOR) || ''; },
  set actor(v) { v ? localStorage.setItem(ACTOR, v) : localStorage.removeItem(ACTOR); },
  // authRequired is learnt from the server: true once it answered 401.
  authRequired: false,
  onUnauthorized(fn) { listeners.add(fn); },
};

// latin1 turns a name into the UTF-8 bytes a header value can carry.
function headerValue(v) {
  return String.fromCharCode(...new TextEncoder().encode(v));
}

// api calls the JSON API and returns the decoded answer, or throws APIError.
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (session.actor) headers['X-Conveyor-Actor'] = headerValue(session.actor);
  const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, 'network', `The server cannot be reached (${e.message}).`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new APIError(res.status, e.code || `http_${res.status}`, e.message || `HTTP ${res.status}`, e.fields);
    if (res.status === 401) {
      session.authRequired = true;
      listeners.forEach((fn) => fn(err));
    }
    throw err;
  }
  return data;
}

// who is how the server will record the operator: principal:name.
export function who() {
  const p = session.authRequired || session.token ? 'token' : 'anonymous';
  return session.actor ? `${p}:${session.actor}` : p;
}

const enc = encodeURIComponent;
export const paths = {
  processes: () => '/api/v1/processes',
  process: (p) => `/api/v1/processes/${enc(p)}`,
  submit: (p) => `/api/v1/processes/${enc(p)}/tasks`,
  tasks: (q) => `/api/v1/tasks${q}`,
  task: (id) => `/api/v1/tasks/${enc(id)}`,
  action: (id, a) => `/api/v1/tasks/${enc(id)}/${a}`,
  bulk: () => '/api/v1/bulk',
  job: (id) => `/api/v1/bulk/${enc(id)}`,
  jobResults: (id, q) => `/api/v1/bulk/${enc(id)}/results${q}`,
  jobCancel: (id) => `/api/v1/bulk/${enc(id)}/cancel`,
  audit: (q) => `/api/v1/audit${q}`,
};
