// The admin console: sign-in gate, hash router (#/section/...), navigation.
// Each page module exports `render(main, params, query)`; it draws into `main`.
import { credential, access, setUnauthorizedHandler } from './api.js'
import { h, fill } from './dom.js'

const pages = {
  signin: () => import('./pages/signin.js'),
  messages: () => import('./pages/messages.js'),
  message: () => import('./pages/message.js'),
  send: () => import('./pages/send.js'),
  templates: () => import('./pages/templates.js'),
  template: () => import('./pages/template.js'),
  'template-form': () => import('./pages/template-form.js'),
  bulk: () => import('./pages/bulk.js'),
  dashboard: () => import('./pages/dashboard.js'),
  patients: () => import('./pages/patients.js'),
  audit: () => import('./pages/audit.js'),
}

/** `#/templates/abc/edit?x=1` → page, params, query, nav section. */
function route(hash) {
  const [path, search = ''] = hash.replace(/^#\/?/, '').split('?')
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent)
  const query = Object.fromEntries(new URLSearchParams(search))
  const [a, b, c] = parts
  if (a == 'messages' && b == 'new') return { page: 'send', section: 'messages', query }
  if (a == 'messages' && b) return { page: 'message', section: 'messages', params: { id: b }, query }
  if (a == 'templates' && b == 'new') return { page: 'template-form', section: 'templates', params: {}, query }
  if (a == 'templates' && b && c == 'edit') return { page: 'template-form', section: 'templates', params: { id: b }, query }
  if (a == 'templates' && b) return { page: 'template', section: 'templates', params: { id: b }, query }
  if (a == 'patients' && b) return { page: 'patients', section: 'patients', params: { id: b }, query }
  if (pages[a]) return { page: a, section: a, params: {}, query }
  return { page: 'messages', section: 'messages', params: {}, query }
}

const main = document.getElementById('main')
const nav = document.getElementById('nav')
const signout = document.getElementById('signout')
const roleNote = document.getElementById('role')
let seq = 0
let first = true

async function show() {
  const signedIn = !!credential.get()
  nav.hidden = signout.hidden = !signedIn
  // The signed-in role decides what is offered: a front-desk token reads, sends single
  // messages and retries; the hub answers 403 to anything else, so it is not shown.
  const role = signedIn ? access() : null
  document.body.dataset.access = role || ''
  for (const a of nav.querySelectorAll('[data-write]')) a.closest('li').hidden = role != 'full'
  roleNote.hidden = role != 'front_desk'
  const r = signedIn ? route(location.hash) : { page: 'signin', params: {}, query: {} }
  for (const a of nav.querySelectorAll('a')) a.dataset.section == r.section ? a.setAttribute('aria-current', 'page') : a.removeAttribute('aria-current')
  const mine = ++seq
  delete main.dataset.ready
  try {
    const mod = await pages[r.page]()
    if (mine != seq) return
    main.replaceChildren()
    main.dataset.page = r.page
    await mod.render(main, r.params || {}, r.query || {})
  } catch (e) {
    if (mine != seq) return
    fill(main, h('h1', { tabindex: '-1', text: 'Something went wrong' }), h('div', { class: 'alert', role: 'alert', text: String(e.message || e) }))
  }
  if (mine != seq) return
  const title = main.querySelector('h1')
  document.title = (title ? title.textContent + ' · ' : '') + 'Tidings admin'
  // Move focus to the new page's heading (not on first load: the browser starts at the top).
  if (!first && title) {
    title.setAttribute('tabindex', '-1')
    title.focus()
  }
  first = false
  main.dataset.ready = String(mine)
}

/** Navigates to `hash`; re-renders when it is the current one. */
export function go(hash) {
  if (location.hash == hash) show()
  else location.hash = hash
}

export function signOut(reason) {
  credential.clear()
  sessionStorage.setItem('tidings.admin.reason', reason || '')
  go('#/signin')
  show()
}

setUnauthorizedHandler((err) => signOut('The hub rejected the credential (' + err.message + '). Sign in again.'))
signout.addEventListener('click', () => signOut('Signed out.'))
addEventListener('hashchange', show)
show()
