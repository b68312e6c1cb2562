// A patient's outbound preferences: addresses, language, preferred channel,
// channels and kinds of message allowed (GET/PUT /v1/patients/{id}/preferences).
import { api, canWrite } from '../api.js'
import { h, field, fill, showError, notice, announce } from '../dom.js'
import { CHANNELS, LANGUAGES, label } from '../format.js'
import { go } from '../app.js'

const KINDS = ['appointment_reminder', 'appointment_confirmation', 'results', 'billing', 'marketing']
const DEFAULTS = {
  phone: '',
  email: '',
  language: 'en',
  preferred_channel: 'sms',
  channels: { sms: true, whatsapp: true, email: true },
  kinds: { appointment_reminder: true, appointment_confirmation: true, results: true, billing: true, marketing: false },
}

export async function render(main, { id }) {
  const status = h('div')
  const pick = h('form', { class: 'card row', role: 'search', 'aria-label': 'Find a patient', novalidate: true },
    field({ label: 'Patient id', name: 'patient', value: id }),
    h('button', { type: 'submit', text: 'Open' }),
  )
  pick.addEventListener('submit', (e) => {
    e.preventDefault()
    const p = pick.patient.value.trim()
    if (p) go('#/patients/' + encodeURIComponent(p))
  })
  main.append(h('h1', { text: id ? 'Patient ' + id : 'Patient preferences' }), pick, status)
  if (!id) return
  const path = `/v1/patients/${encodeURIComponent(id)}/preferences`
  let prefs
  let stored = true
  try {
    prefs = await api('GET', path)
    // The hub answers the defaults with `stored: false` for a patient it has nothing for.
    if (prefs.stored === false) stored = false
  } catch (err) {
    if (err.status != 404) return showError(status, err)
    stored = false
    prefs = structuredClone(DEFAULTS)
  }
  const flash = sessionStorage.getItem('tidings.admin.flash')
  if (flash) {
    sessionStorage.removeItem('tidings.admin.flash')
    notice(status, flash)
    announce(flash)
  } else if (!stored) notice(status, 'No preferences stored for this patient yet: the defaults are shown; saving stores them.')
  const kindKeys = Object.keys(prefs.kinds || {}).length ? Object.keys(prefs.kinds) : KINDS
  const checks = (legend, name, keys, values) =>
    h('fieldset', { class: 'checks', 'data-field': name }, h('legend', { text: legend }),
      keys.map((k) => {
        const cid = `${name}-${k}`
        return h('label', { for: cid }, h('input', { type: 'checkbox', id: cid, name: `${name}.${k}`, checked: values ? values[k] !== false : true }), label(k))
      }),
    )
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-label': 'Preferences of patient ' + id },
    h('div', { class: 'row' },
      field({ label: 'Phone (E.164)', name: 'phone', type: 'tel', value: prefs.phone, placeholder: '+9665…' }),
      field({ label: 'Email', name: 'email', type: 'email', value: prefs.email }),
    ),
    h('div', { class: 'row' },
      field({ label: 'Language', name: 'language', type: 'select', value: prefs.language, options: LANGUAGES }),
      field({ label: 'Preferred channel', name: 'preferred_channel', type: 'select', value: prefs.preferred_channel, options: [['', 'None (SMS, then WhatsApp, then email)'], ...CHANNELS.map((c) => [c, c])] }),
    ),
    checks('Channels allowed', 'channels', CHANNELS, prefs.channels),
    checks('Messages allowed', 'kinds', kindKeys, prefs.kinds),
    h('div', { class: 'actions' }, canWrite() ? h('button', { type: 'submit', text: 'Save preferences' }) : null,
      h('a', { class: 'button secondary', href: '#/messages/new?patient=' + encodeURIComponent(id), text: 'Send a message' }),
      h('a', { class: 'button secondary', href: '#/messages?q=' + encodeURIComponent(id), text: 'Their messages' })),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    if (!canWrite()) return
    const v = (n) => form[n].value.trim() || null
    const body = {
      phone: v('phone'),
      email: v('email'),
      language: form.language.value,
      preferred_channel: form.preferred_channel.value || null,
      channels: Object.fromEntries(CHANNELS.map((c) => [c, form.elements['channels.' + c].checked])),
      kinds: Object.fromEntries(kindKeys.map((k) => [k, form.elements['kinds.' + k].checked])),
    }
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      await api('PUT', path, body)
      sessionStorage.setItem('tidings.admin.flash', 'Preferences saved.')
      go(location.hash)
    } catch (err) {
      fill(status)
      showError(status, err, form)
    } finally {
      button.disabled = false
    }
  })
  main.append(form)
}
