// Create or edit a template. Editing makes a new version (the hub keeps the
// old ones for the messages rendered from them). Arabic fields are RTL.
import { api, newKey, canWrite } from '../api.js'
import { h, field, showError, showErrors, adminOnly } from '../dom.js'
import { CHANNELS, KINDS, label } from '../format.js'
import { getTemplate } from './templates.js'
import { go } from '../app.js'

/** `{patient_name}` placeholders of the given texts, in order of appearance. */
export function placeholders(...texts) {
  const seen = []
  for (const t of texts) for (const m of String(t || '').matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) if (!seen.includes(m[1])) seen.push(m[1])
  return seen
}

const NAME = /^[a-z0-9_.-]{1,100}$/
const VARIABLE = /^[a-z_][a-z0-9_]*$/

/**
 * Every error the hub would answer for `body`, all at once (the hub stops at the
 * first): [{field, message}], the fields named as the hub names them.
 */
export function checkTemplate(body, editing) {
  const errors = []
  const add = (field, message) => errors.push({ field, message })
  if (!editing && !NAME.test(body.name)) add('name', 'must be 1 to 100 of a-z, 0-9, _ - . (e.g. appointment_reminder_24h)')
  for (const f of ['body_en', 'body_ar']) if (!body[f].trim()) add(f, 'must not be empty')
  for (const f of ['subject_en', 'subject_ar']) {
    const v = body[f]
    if (body.channel == 'email' && !v) add(f, 'is required for email templates')
    else if (body.channel == 'email' && /[\r\n]/.test(v)) add(f, 'must be one line')
    else if (body.channel != 'email' && v) add(f, 'only email templates have a subject')
  }
  const vars = body.variables
  if (vars.length > 50) add('variables', 'at most 50 variables')
  vars.forEach((v, i) => {
    if (!VARIABLE.test(v)) add('variables', `${v} is not a variable name: a-z, 0-9, _ (not starting with a digit)`)
    else if (vars.indexOf(v) != i) add('variables', `${v} is declared twice`)
  })
  const undeclared = placeholders(body.subject_en, body.body_en, body.subject_ar, body.body_ar).filter((p) => !vars.includes(p))
  if (undeclared.length) add('variables', `not declared but used in the text: ${undeclared.join(', ')}`)
  return errors
}

export async function render(main, { id }) {
  const status = h('div')
  const editing = !!id
  if (!canWrite()) return main.append(h('h1', { text: editing ? 'Edit template' : 'New template' }), adminOnly('changing templates'))
  let t = { channel: 'sms', kind: 'appointment_reminder', is_active: true, variables: [] }
  if (editing) {
    try {
      t = await getTemplate(id)
    } catch (err) {
      main.append(h('h1', { text: 'Edit template' }), status)
      return showError(status, err)
    }
  }
  const ar = { dir: 'rtl', lang: 'ar' }
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    field({ label: 'Name', name: 'name', value: t.name, required: true, hint: 'Unique in the clinic group, e.g. appointment_reminder_24h' }),
    h('div', { class: 'row' },
      field({ label: 'Channel', name: 'channel', type: 'select', value: t.channel, options: CHANNELS.map((c) => [c, c]) }),
      field({ label: 'Kind', name: 'kind', type: 'select', value: t.kind, options: KINDS.map((k) => [k, label(k)]) }),
    ),
    h('div', { class: 'grid' },
      h('div', {},
        field({ label: 'Subject (English, email)', name: 'subject_en', value: t.subject_en, attrs: { lang: 'en' } }),
        field({ label: 'Body (English)', name: 'body_en', type: 'textarea', value: t.body_en, required: true, attrs: { lang: 'en' }, hint: 'Placeholders: {patient_name}' }),
      ),
      h('div', {},
        field({ label: 'Subject (Arabic, email)', name: 'subject_ar', value: t.subject_ar, attrs: ar }),
        field({ label: 'Body (Arabic)', name: 'body_ar', type: 'textarea', value: t.body_ar, required: true, attrs: ar }),
      ),
    ),
    field({ label: 'Variables', name: 'variables', value: (t.variables || []).join(', '), hint: 'Comma-separated; empty = the placeholders found in the texts' }),
    field({ label: 'Active', name: 'is_active', type: 'checkbox', value: t.is_active }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', text: editing ? `Save as version ${(t.version || 1) + 1}` : 'Create template' }),
      h('a', { class: 'button secondary', href: editing ? '#/templates/' + encodeURIComponent(id) : '#/templates', text: 'Cancel' }),
    ),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = (n) => form[n].value.trim()
    const opt = (n) => v(n) || undefined
    const variables = v('variables') ? v('variables').split(',').map((x) => x.trim()).filter(Boolean) : placeholders(v('subject_en'), v('body_en'), v('subject_ar'), v('body_ar'))
    const body = {
      name: v('name'),
      channel: v('channel'),
      kind: v('kind'),
      body_en: form.body_en.value,
      body_ar: form.body_ar.value,
      subject_en: opt('subject_en'),
      subject_ar: opt('subject_ar'),
      variables,
      is_active: form.is_active.checked,
    }
    const errors = checkTemplate(body, editing)
    if (errors.length) return showErrors(status, errors, form)
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const r = editing
        ? await api('PUT', '/v1/templates/' + encodeURIComponent(id), body)
        : await api('POST', '/v1/templates', body, { headers: { 'Idempotency-Key': newKey() } })
      sessionStorage.setItem('tidings.admin.flash', editing ? `Saved: version ${r.version}.` : 'Template created.')
      go('#/templates/' + encodeURIComponent(r.id || id))
    } catch (err) {
      showError(status, err, form)
    } finally {
      button.disabled = false
    }
  })
  main.append(
    h('p', {}, h('a', { href: '#/templates', text: '← All templates' })),
    h('h1', { text: editing ? `Edit template ${t.name} (version ${t.version})` : 'New template' }),
    status,
    form,
  )
}
