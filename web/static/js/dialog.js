// Modal dialogs for operator actions. Every action asks for a reason; the
// dialog shows who it will be recorded as.

import { who } from './api.js';
import { h, field } from './dom.js';

// openAction shows a dialog and resolves when it is submitted successfully
// or dismissed. opts: {id, title, text, body: [elements], submit, danger,
// reason (default true), run(reason) -> Promise}. run's error is shown in
// the dialog, which stays open.
export function openAction(opts) {
  const reason = h('textarea', { name: 'reason', rows: 3, maxlength: 1000, required: true, placeholder: 'Why? e.g. customer confirmed the new card by phone' });
  const err = h('div', { class: 'alert error', hidden: true, role: 'alert' });
  const ok = h('button', { class: ['btn', opts.danger ? 'btn-danger' : 'btn-primary'], type: 'submit', 'data-role': 'confirm' }, opts.submit);
  const cancel = h('button', { class: 'btn', type: 'button' }, 'Cancel');
  const wantReason = opts.reason !== false;
  const dlg = h('dialog', { class: ['modal', opts.wide && 'wide'], id: opts.id || null },
    h('form', { method: 'dialog' },
      h('div', { class: 'modal-head' }, h('h2', {}, opts.title), opts.text ? h('p', {}, opts.text) : null),
      h('div', { class: 'modal-body' },
        err,
        opts.body || null,
        wantReason ? field('Reason', reason, { required: true, hint: 'Recorded in the task\'s history and the audit log.' }) : null),
      h('div', { class: 'modal-foot' }, h('span', { class: 'who-note' }, `Recorded as ${who()}`), cancel, ok)));
  return new Promise((resolve) => {
    const close = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    cancel.addEventListener('click', () => close(null));
    dlg.addEventListener('cancel', (ev) => { ev.preventDefault(); close(null); });
    dlg.querySelector('form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      ok.disabled = true;
      try {
        const out = await opts.run(wantReason ? reason.value.trim() : '');
        close(out === undefined ? true : out);
      } catch (e) {
        err.textContent = e.message;
        if (e.fields && e.fields.length) err.textContent += `: ${e.fields.map((f) => `${f.field} ${f.message}`).join('; ')}`;
        err.hidden = false;
        ok.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector('.modal-body textarea, .modal-body select, .modal-body input');
    if (first) first.focus();
  });
}
