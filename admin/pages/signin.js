// Sign in with an API key or an admin user token. The credential is checked
// against an admin endpoint before it is kept (sessionStorage: this tab only).
import { api, credential } from '../api.js'
import { h, field, showError, notice } from '../dom.js'
import { go } from '../app.js'

export async function render(main) {
  const reason = sessionStorage.getItem('tidings.admin.reason')
  sessionStorage.removeItem('tidings.admin.reason')
  const status = h('div', { class: 'status' })
  const form = h(
    'form',
    { class: 'card signin', novalidate: true, 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h', text: 'Sign in' }),
    h('p', { class: 'muted', text: 'Use a tenant API key or an admin user token (JWT). It is kept in this browser tab only and removed when you sign out or close the tab.' }),
    status,
    field({ label: 'API key or admin token', name: 'credential', type: 'password', required: true, attrs: { autocomplete: 'off', spellcheck: 'false' } }),
    h('button', { type: 'submit', text: 'Sign in' }),
  )
  if (reason) notice(status, reason)
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const value = form.credential.value.trim()
    if (!value) return showError(status, { code: 'required', message: 'Enter an API key or an admin token.', field: 'credential' }, form)
    const button = form.querySelector('button')
    button.disabled = true
    try {
      await api('GET', '/v1/templates?limit=1', undefined, { auth: value })
      credential.set(value)
      go(location.hash && !location.hash.startsWith('#/signin') ? location.hash : '#/messages')
    } catch (err) {
      if (err.status == 401) err.message = 'The hub does not accept this credential: ' + err.message
      if (err.status == 403) err.message = 'This credential may not use the admin API (an admin or front-desk role is needed): ' + err.message
      showError(status, { ...err, message: err.message, field: 'credential' }, form)
    } finally {
      button.disabled = false
    }
  })
  main.append(form)
  form.credential.focus()
}
