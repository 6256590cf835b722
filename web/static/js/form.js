// The "Add task" form, generated from a process's input schema: required
// fields first and marked, enums as choices, sensitive fields as password
// inputs. Nothing typed here is kept or shown again: the dialog is built
// anew each time and removed when it closes.

import { api, paths, who } from './api.js';
import { h, field, select, setFieldError } from './dom.js';

// raw marks a value that goes into the JSON body as written (integers, so
// that large ones stay exact).
class Raw {
  constructor(text) { this.text = text; }
}

function encode(v) {
  if (v instanceof Raw) return v.text;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${encode(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function typeHint(f) {
  if (f.sensitive) return f.sensitive === 'pan' ? 'card number · sensitive' : 'sensitive';
  if (f.enum && f.enum.length) return 'choice';
  return f.type;
}

function control(f) {
  const name = `in-${f.name}`;
  const common = { name, 'data-field': f.name, required: !!f.required };
  if (f.sensitive) {
    return h('input', {
      ...common, type: 'password', autocomplete: 'off', spellcheck: 'false',
      inputmode: f.sensitive === 'pan' ? 'numeric' : null, 'data-lpignore': 'true',
    });
  }
  if (f.enum && f.enum.length) {
    const opts = [['', f.required ? 'Choose…' : '—']].concat(f.enum.map((v) => [v, v]));
    return select(opts, '', common);
  }
  switch (f.type) {
    case 'boolean':
      return select([['', '—'], ['true', 'true'], ['false', 'false']], '', common);
    case 'object':
    case 'array':
      return h('textarea', { ...common, rows: 3, spellcheck: 'false', placeholder: f.type === 'object' ? '{ }' : '[ ]' });
    case 'decimal':
      return h('input', { ...common, type: 'text', inputmode: 'decimal', autocomplete: 'off', placeholder: 'e.g. 7.34' });
    case 'integer':
      return h('input', { ...common, type: 'text', inputmode: 'numeric', autocomplete: 'off' });
    default:
      if (f.max_length >= 500) return h('textarea', { ...common, rows: 2, maxlength: f.max_length });
      return h('input', { ...common, type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: f.max_length || null });
  }
}

function hint(f) {
  const parts = [];
  if (f.description) parts.push(f.description);
  if (f.pattern && !f.sensitive) parts.push(`format ${f.pattern}`);
  if (f.max_length) parts.push(`at most ${f.max_length} characters`);
  return parts.join(' · ');
}

// value reads one control; undefined means "not given".
function value(f, el) {
  const v = el.value.trim();
  if (v === '') return undefined;
  switch (f.type) {
    case 'integer':
      return /^-?\d+$/.test(v) ? new Raw(v) : v; // the server names the mistake
    case 'boolean':
      return v === 'true';
    case 'object':
    case 'array':
      try {
        return JSON.parse(v);
      } catch {
        throw Object.assign(new Error('is not valid JSON'), { field: f.name });
      }
    default:
      return f.sensitive ? el.value : v; // never trim a secret
  }
}

// openAddTask shows the form for proc; onCreated(task) runs after a
// successful submit.
export function openAddTask(proc, onCreated) {
  const fields = proc.input.fields || [];
  const required = fields.filter((f) => f.required);
  const optional = fields.filter((f) => !f.required);
  const controls = new Map();
  const make = (f) => {
    const el = control(f);
    controls.set(f.name, el);
    return field(f.name, el, { required: f.required, type: typeHint(f), hint: hint(f), wide: el.tagName === 'TEXTAREA' });
  };
  const ref = h('input', { type: 'text', name: 'ref', id: 'in-ref', autocomplete: 'off', spellcheck: 'false', maxlength: 255 });
  const err = h('div', { class: 'alert error', hidden: true, role: 'alert' });
  const send = h('button', { class: 'btn btn-primary', type: 'submit', id: 'send-task' }, 'Send task');
  const cancel = h('button', { class: 'btn', type: 'button', value: 'cancel' }, 'Cancel');
  const dlg = h('dialog', { class: 'modal wide', id: 'add-task', 'aria-labelledby': 'add-task-title' },
    h('form', { method: 'dialog', novalidate: false },
      h('div', { class: 'modal-head' },
        h('h2', { id: 'add-task-title' }, `Add task to ${proc.title || proc.name}`),
        h('p', {}, 'Fields come from the process\'s input schema. Sensitive fields are sent once and never shown again.')),
      h('div', { class: 'modal-body' },
        err,
        h('div', { class: 'form-grid' },
          field('ref', ref, { hint: 'Your idempotency key: sending the same ref again returns the first task.', type: 'optional', wide: true }),
          required.map(make)),
        optional.length ? h('details', { class: 'more' },
          h('summary', {}, `Optional fields (${optional.length})`),
          h('div', { class: 'form-grid' }, optional.map(make))) : null),
      h('div', { class: 'modal-foot' },
        h('span', { class: 'who-note' }, `Submitted as ${who()}`), cancel, send)));
  const close = () => {
    for (const el of controls.values()) el.value = '';
    dlg.close();
    dlg.remove();
  };
  cancel.addEventListener('click', close);
  dlg.addEventListener('cancel', (ev) => { ev.preventDefault(); close(); });
  dlg.querySelector('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    for (const el of controls.values()) setFieldError(el, '');
    const data = {};
    try {
      for (const f of fields) {
        const v = value(f, controls.get(f.name));
        if (v !== undefined) data[f.name] = v;
      }
    } catch (e) {
      setFieldError(controls.get(e.field), e.message);
      return;
    }
    const body = { data };
    if (ref.value.trim()) body.ref = ref.value.trim();
    send.disabled = true;
    send.textContent = 'Sending…';
    try {
      const task = await api('POST', paths.submit(proc.name), encode(body));
      close();
      onCreated(task);
    } catch (e) {
      send.disabled = false;
      send.textContent = 'Send task';
      if (e.fields && e.fields.length) {
        const other = [];
        for (const fe of e.fields) {
          const el = controls.get(fe.field);
          if (el) {
            setFieldError(el, fe.message);
            if (el.closest('details')) el.closest('details').open = true;
          } else other.push(`${fe.field}: ${fe.message}`);
        }
        err.textContent = other.length ? `The task was refused: ${other.join('; ')}` : 'The task was refused: see the marked fields.';
      } else {
        err.textContent = e.message;
      }
      err.hidden = false;
    }
  });
  document.body.append(dlg);
  dlg.showModal();
  (ref).focus();
}
