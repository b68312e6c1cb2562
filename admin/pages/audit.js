// The audit log (GET /v1/audit): who did what to which object, newest first,
// filtered by action (exact or a prefix like "template.") and actor.
import { api, qs } from '../api.js'
import { h, field, table, showError } from '../dom.js'
import { time, dayStart } from '../format.js'
import { go } from '../app.js'

export async function render(main, _p, query) {
  const status = h('div')
  const form = h('form', { class: 'card', role: 'search', 'aria-label': 'Filter the audit log', novalidate: true },
    h('div', { class: 'row' },
      field({ label: 'Action', name: 'action', value: query.action, placeholder: 'template. or message.cancel' }),
      field({ label: 'Actor', name: 'actor', value: query.actor, placeholder: 'api_key:… or user:…' }),
      field({ label: 'From (UTC day)', name: 'from', type: 'date', value: query.from }),
      field({ label: 'To (UTC day, inclusive)', name: 'to', type: 'date', value: query.to }),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Apply filters' }), h('button', { type: 'button', class: 'secondary', text: 'Reset', onclick: () => go('#/audit') })),
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    go('#/audit' + qs({ action: form.action.value.trim(), actor: form.actor.value.trim(), from: form.from.value, to: form.to.value }))
  })
  main.append(h('h1', { text: 'Audit log' }), form, status)
  let page
  try {
    page = await api('GET', '/v1/audit' + qs({ action: query.action, actor: query.actor, from: dayStart(query.from), to: dayStart(query.to, true), limit: 50, cursor: query.cursor }))
  } catch (err) {
    return showError(status, err)
  }
  const here = { action: query.action, actor: query.actor, from: query.from, to: query.to }
  main.append(
    h('section', { class: 'card', 'aria-label': 'Entries' },
      table(
        'Audit entries, newest first',
        [
          ['When', (e) => time(e.at)],
          ['Action', (e) => h('code', { class: 'action', text: e.action })],
          ['Target', (e) => targetLink(e.target)],
          ['Actor', (e) => e.actor],
          ['Detail', (e) => detail(e.detail)],
        ],
        page.items,
        'No entry.',
      ),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        query.cursor ? h('a', { class: 'button secondary', href: '#/audit' + qs(here), text: 'Newest' }) : null,
        page.next_cursor ? h('a', { class: 'button secondary', href: '#/audit' + qs({ ...here, cursor: page.next_cursor }), text: 'Older entries' }) : null,
      ),
    ),
  )
}

/** `template:<id>` → the template page, `message:<id>` → the message, `patient:<id>` → the patient. */
function targetLink(target) {
  const [kind, ...rest] = String(target || '').split(':')
  const id = rest.join(':')
  const route = { template: '#/templates/', message: '#/messages/', patient: '#/patients/' }[kind]
  return route && id ? h('a', { href: route + encodeURIComponent(id), text: target }) : String(target || '—')
}

function detail(d) {
  if (d == null || d === '') return ''
  const o = typeof d == 'string' ? safeJson(d) : d
  if (o && typeof o == 'object') return Object.entries(o).map(([k, v]) => `${k}: ${typeof v == 'object' ? JSON.stringify(v) : v}`).join(', ')
  return String(d)
}

function safeJson(s) {
  try {
    return JSON.parse(s)
  } catch {
    return s
  }
}
