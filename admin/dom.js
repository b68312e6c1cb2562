// DOM helpers: elements built with properties (never innerHTML with data), form
// fields with their labels, and the one way API errors are shown.

/** h('a', { href, class, text, onclick, dataset }, ...children) */
export function h(tag, attrs = {}, ...kids) {
  const svg = tag.startsWith('svg:')
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4)) : document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue
    if (k == 'text') el.textContent = v
    else if (k == 'dataset') Object.assign(el.dataset, v)
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k == 'value' || k == 'checked' || k == 'selected') el[k] = v
    else el.setAttribute(k, v === true ? '' : v)
  }
  append(el, kids)
  return el
}

function append(el, kids) {
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k))
}

let uid = 0
export const nextId = (p = 'f') => `${p}-${++uid}`

/**
 * A labelled form control. `type`: text, number, date, datetime-local, textarea,
 * select (`options`: [[value, label]]), checkbox. `name` is the API field it edits,
 * so an error naming that field marks it.
 */
export function field({ label, name, type = 'text', value, options, hint, required, dir, lang, placeholder, attrs = {} }) {
  const id = nextId(name || 'f')
  const hintId = hint ? id + '-hint' : null
  const common = { id, name, required, dir, lang, placeholder, 'aria-describedby': hintId, ...attrs }
  let control
  if (type == 'textarea') control = h('textarea', { ...common, value: value ?? '' })
  else if (type == 'select')
    control = h(
      'select',
      common,
      options.map(([v, l]) => h('option', { value: v, selected: String(v) == String(value ?? '') }, l)),
    )
  else if (type == 'checkbox') {
    control = h('input', { ...common, type, checked: !!value })
    return h('div', { class: 'field check' }, h('label', { for: id }, control, ' ', label))
  } else control = h('input', { ...common, type, value: value ?? '' })
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('span', { class: 'hint', id: hintId }, hint) : null,
  )
}

/** Removes every child and appends `kids`. */
export function fill(el, ...kids) {
  el.replaceChildren()
  append(el, kids)
  return el
}

/** Clears the marks of a previous error in `form`. */
export function clearErrors(form) {
  if (!form) return
  for (const el of form.querySelectorAll('[aria-invalid=true]')) {
    el.removeAttribute('aria-invalid')
    const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter((x) => !x.endsWith('-err'))
    ids.length ? el.setAttribute('aria-describedby', ids.join(' ')) : el.removeAttribute('aria-describedby')
  }
  for (const el of form.querySelectorAll('.field-error')) el.remove()
}

/**
 * Shows an API error (the contract's `{error: {code, message, field}}`) in `box`
 * as an alert; when `form` has a control for the named field, it is marked
 * invalid, described by the message, and focused.
 */
export function showError(box, err, form) {
  clearErrors(form)
  const code = err.code || 'error'
  const status = err.status ? `HTTP ${err.status} ` : ''
  fill(
    box,
    h(
      'div',
      { class: 'alert', role: 'alert' },
      h('strong', { text: 'Error: ' }),
      err.message || String(err),
      ' ',
      h('span', { class: 'muted' }, '(', status, h('code', { text: code }), err.field ? [', field ', h('code', { text: err.field })] : '', ')'),
    ),
  )
  const control = err.field && form && findControl(form, err.field)
  if (control) {
    const id = control.id + '-err'
    control.setAttribute('aria-invalid', 'true')
    control.setAttribute('aria-describedby', [control.getAttribute('aria-describedby'), id].filter(Boolean).join(' '))
    control.closest('.field, fieldset').append(h('span', { class: 'field-error', id, text: err.message }))
    control.focus()
  } else box.querySelector('.alert').setAttribute('tabindex', '-1')
}

/**
 * Shows several field errors at once (`errors`: [{field, message, label?}]): one alert
 * listing them all, and every named control of `form` marked invalid and described by
 * its messages; the first one is focused. `label` is how the list names the place
 * (e.g. "Line 3, column to"), by default the field.
 */
export function showErrors(box, errors, form, title = 'Please fix these fields:') {
  clearErrors(form)
  fill(
    box,
    h(
      'div',
      { class: 'alert', role: 'alert' },
      h('strong', { text: title }),
      h('ul', { class: 'errors' }, errors.map((e) => h('li', {}, e.label || e.field ? h('strong', { text: (e.label || e.field) + ': ' }) : null, e.message))),
    ),
  )
  let first = null
  const messages = new Map()
  for (const e of errors) {
    const control = e.field && form && findControl(form, e.field)
    if (!control) continue
    messages.set(control, [...(messages.get(control) || []), (e.label ? e.label + ': ' : '') + e.message])
  }
  for (const [control, list] of messages) {
    const id = control.id + '-err'
    control.setAttribute('aria-invalid', 'true')
    control.setAttribute('aria-describedby', [control.getAttribute('aria-describedby'), id].filter(Boolean).join(' '))
    control.closest('.field, fieldset').append(h('span', { class: 'field-error', id, text: list.join('; ') }))
    first ||= control
  }
  if (first) first.focus()
  else box.querySelector('.alert').setAttribute('tabindex', '-1')
}

/** The control for an API field path: exact name, else its first segment (`variables.patient_name` → `variables`). */
function findControl(form, path) {
  const esc = (s) => s.replace(/["\\]/g, '\\$&')
  return (
    form.querySelector(`[name="${esc(path)}"]`) ||
    form.querySelector(`[name="${esc(path.split(/[.[]/)[0])}"]`) ||
    form.querySelector(`[data-field="${esc(path.split(/[.[]/)[0])}"]`)
  )
}

export function notice(box, text) {
  fill(box, h('div', { class: 'notice', role: 'status', text }))
}

/** Says `text` to screen readers (the polite live region). */
export function announce(text) {
  const el = document.getElementById('announce')
  el.textContent = ''
  setTimeout(() => (el.textContent = text), 30)
}

/**
 * A table that becomes cards on narrow screens: `cols` = [[label, row => node]].
 */
export function table(caption, cols, rows, empty = 'Nothing here.') {
  if (!rows.length) return h('p', { class: 'muted empty', text: empty })
  return h(
    'div',
    // Focusable, so a table that has to scroll sideways can be scrolled with the keyboard.
    { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: '0' },
    h(
      'table',
      { class: 'data' },
      h('caption', { class: 'sr-only', text: caption }),
      h('thead', {}, h('tr', {}, cols.map(([l]) => h('th', { scope: 'col', text: l })))),
      h('tbody', {}, rows.map((r) => h('tr', {}, cols.map(([l, f]) => h('td', { 'data-label': l }, f(r)))))),
    ),
  )
}

/** What a front-desk token sees on a page only an admin may use (the hub would answer 403). */
export const adminOnly = (what) =>
  h('p', { class: 'notice', role: 'status', text: `Signed in as front desk: ${what} needs an API key or an admin token.` })
