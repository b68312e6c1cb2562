// Send one message: to a patient (their preferences choose the channel) or to
// an address, from a template or a plain body, now or at a time.
import { api, all, newKey } from '../api.js'
import { h, field, showError } from '../dom.js'
import { CHANNELS, KINDS, LANGUAGES, label } from '../format.js'
import { parseVariables } from '../csv.js'
import { go } from '../app.js'

export async function render(main, _p, query) {
  const status = h('div')
  // Without the template list the page still works (no template choices), but says why.
  let templates = []
  try {
    templates = await all('/v1/templates')
  } catch (err) {
    showError(status, err)
  }
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'send-h' },
    h('div', { class: 'row' },
      field({ label: 'Patient id', name: 'patient_id', value: query.patient, hint: 'Or an address below' }),
      field({ label: 'Address (phone in E.164 or email)', name: 'to' }),
    ),
    h('div', { class: 'row' },
      field({ label: 'Channel', name: 'channel', type: 'select', options: [['', "Patient's preferred"], ...CHANNELS.map((c) => [c, c])] }),
      field({ label: 'Kind (plain text)', name: 'kind', type: 'select', value: 'appointment_reminder', options: KINDS.map((k) => [k, label(k)]) }),
      field({ label: 'Language', name: 'language', type: 'select', options: [['', "Patient's language"], ...LANGUAGES] }),
    ),
    field({ label: 'Template', name: 'template', type: 'select', value: query.template, options: [['', 'No template (plain text below)'], ...templates.filter((t) => t.is_active !== false).map((t) => [t.name, `${t.name} (${t.channel})`])] }),
    field({ label: 'Variables', name: 'variables', type: 'textarea', hint: 'One per line: name=value', attrs: { dir: 'auto' } }),
    field({ label: 'Subject (email without template)', name: 'subject', attrs: { dir: 'auto' } }),
    field({ label: 'Body (without template)', name: 'body', type: 'textarea', attrs: { dir: 'auto' } }),
    h('div', { class: 'row' },
      field({ label: 'Send at (UTC, empty = now)', name: 'send_at', type: 'datetime-local' }),
      field({ label: 'Group key', name: 'group_key', hint: 'To cancel a group later' }),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Send message' })),
  )
  // A template carries its own kind (the hub refuses another one): Kind, Subject and
  // Body are for plain text only, and shown only then.
  const byName = new Map(templates.map((t) => [t.name, t]))
  const kindNote = h('p', { class: 'hint template-kind', 'aria-live': 'polite' })
  form.template.closest('.field').append(kindNote)
  const plainOnly = ['kind', 'subject', 'body'].map((n) => form[n].closest('.field'))
  const syncTemplate = () => {
    const t = byName.get(form.template.value)
    for (const f of plainOnly) f.hidden = !!t
    kindNote.textContent = t ? `Kind: ${label(t.kind)} (from the template)` : ''
  }
  form.template.addEventListener('change', syncTemplate)
  syncTemplate()
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = (n) => form[n].value.trim() || undefined
    let body
    try {
      body = {
        patient_id: v('patient_id'),
        to: v('to'),
        channel: v('channel'),
        kind: v('template') ? undefined : v('kind'),
        language: v('language'),
        template: v('template'),
        variables: v('variables') ? parseVariables(form.variables.value) : undefined,
        subject: v('template') ? undefined : v('subject'),
        body: v('template') ? undefined : v('body'),
        send_at: v('send_at') ? new Date(v('send_at') + 'Z').toISOString().replace('.000Z', 'Z') : undefined,
        group_key: v('group_key'),
      }
    } catch (err) {
      return showError(status, { code: 'invalid', message: err.message, field: 'variables' }, form)
    }
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const r = await api('POST', '/v1/messages', body, { headers: { 'Idempotency-Key': newKey() } })
      if (r.status == 'suppressed') sessionStorage.setItem('tidings.admin.flash', 'Suppressed: ' + (r.reason || "the patient's preferences forbid it"))
      go('#/messages/' + encodeURIComponent(r.id))
    } catch (err) {
      showError(status, err, form)
    } finally {
      button.disabled = false
    }
  })
  main.append(h('p', {}, h('a', { href: '#/messages', text: '← All messages' })), h('h1', { id: 'send-h', text: 'New message' }), status, form)
}
