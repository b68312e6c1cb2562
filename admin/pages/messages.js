// Messages: filters (status, channel, template, date range, search), cursor
// paging, and the CSV export of the same filters. The filters live in the URL
// (#/messages?status=failed&...), so a filtered list can be bookmarked.
import { api, all, qs, download, canWrite } from '../api.js'
import { h, field, table, showError, notice, announce } from '../dom.js'
import { time, pill, dayStart, CHANNELS, STATUSES, templateName, textDir } from '../format.js'
import { go } from '../app.js'

const FILTERS = ['status', 'channel', 'template', 'from', 'to', 'q']

/** The API's query for the filters in the URL (dates → RFC 3339, `to` inclusive). */
export const apiFilters = (query) => ({
  status: query.status,
  channel: query.channel,
  template: query.template,
  from: dayStart(query.from),
  to: dayStart(query.to, true),
  q: query.q,
})

export async function render(main, _params, query) {
  const status = h('div')
  // Without the template list the page still works (no template choices), but says why.
  let templates = []
  try {
    templates = await all('/v1/templates')
  } catch (err) {
    showError(status, err)
  }
  const names = [...new Set(templates.map((t) => t.name))].sort()
  if (query.template && !names.includes(query.template)) names.push(query.template)
  const form = h(
    'form',
    { class: 'card', role: 'search', 'aria-label': 'Filter messages', novalidate: true },
    h(
      'div',
      { class: 'row' },
      field({ label: 'Status', name: 'status', type: 'select', value: query.status, options: [['', 'Any status'], ...STATUSES.map((s) => [s, s])] }),
      field({ label: 'Channel', name: 'channel', type: 'select', value: query.channel, options: [['', 'Any channel'], ...CHANNELS.map((c) => [c, c])] }),
      field({ label: 'Template', name: 'template', type: 'select', value: query.template, options: [['', 'Any template'], ...names.map((n) => [n, n])] }),
      field({ label: 'From (UTC day)', name: 'from', type: 'date', value: query.from }),
      field({ label: 'To (UTC day, inclusive)', name: 'to', type: 'date', value: query.to }),
      field({ label: 'Search', name: 'q', type: 'search', value: query.q, placeholder: 'address, text, patient id' }),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Apply filters' }), h('button', { type: 'button', class: 'secondary', text: 'Reset', onclick: () => go('#/messages') })),
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    const q = {}
    for (const f of FILTERS) q[f] = form[f].value.trim()
    go('#/messages' + qs(q))
  })

  const exportButton = h('button', {
    type: 'button',
    class: 'secondary',
    id: 'export',
    text: 'Export CSV',
    onclick: async () => {
      exportButton.disabled = true
      try {
        const name = 'messages-' + new Date().toISOString().slice(0, 10) + '.csv'
        const size = await download('/v1/messages/export.csv' + qs(apiFilters(query)), name)
        announce(`Exported ${name} (${size} bytes).`)
      } catch (err) {
        showError(status, err)
      } finally {
        exportButton.disabled = false
      }
    },
  })

  main.append(
    h('h1', { text: 'Messages' }),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/messages/new', text: 'New message' }), exportButton),
    form,
    status,
  )

  const trail = query.trail ? query.trail.split('~').map(decodeURIComponent) : []
  const results = h('section', { class: 'card', 'aria-labelledby': 'results-h' }, h('h2', { id: 'results-h', text: 'Results' }))
  main.append(results)
  let page
  try {
    page = await api('GET', '/v1/messages' + qs({ ...apiFilters(query), limit: query.limit || 25, cursor: query.cursor }))
  } catch (err) {
    return showError(status, err)
  }
  // The visible end of the id is part of the accessible name ("Message …"); the full id is the title.
  const link = (m) => h('a', { href: '#/messages/' + encodeURIComponent(m.id), title: m.id }, h('span', { class: 'sr-only', text: 'Message ' }), '…' + m.id.slice(-10))
  results.append(
    table(
      'Messages, newest first',
      [
        ['Message', link],
        ['Created', (m) => time(m.created_at)],
        ['Status', (m) => pill(m.status)],
        ['Channel', (m) => m.channel],
        ['To', (m) => m.to || (m.patient_id ? 'patient ' + m.patient_id : '—')],
        ['Template', (m) => templateName(m.template) || '—'],
        ['Text', (m) => h('span', { ...textDir(m.body), text: short(m.body) })],
      ],
      page.items,
      'No message matches these filters.',
    ),
  )
  const here = Object.fromEntries(FILTERS.filter((f) => query[f]).map((f) => [f, query[f]]))
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' })
  if (query.cursor || trail.length)
    pager.append(
      h('a', {
        class: 'button secondary',
        href: '#/messages' + qs({ ...here, cursor: trail.at(-1) || '', trail: trail.slice(0, -1).map(encodeURIComponent).join('~') }),
        text: 'Previous page',
      }),
    )
  if (page.next_cursor)
    pager.append(
      h('a', {
        class: 'button secondary',
        href: '#/messages' + qs({ ...here, cursor: page.next_cursor, trail: [...trail, query.cursor || ''].map(encodeURIComponent).join('~') }),
        text: 'Next page',
      }),
    )
  pager.append(h('span', { class: 'muted', text: `${page.items.length} shown` }))
  results.append(pager)
  if (canWrite()) main.append(cancelGroupForm())
}

/**
 * Cancels every message of a group that has not been sent yet (e.g. all reminders
 * of one appointment: `appt:<id>:reminders`), with POST /v1/messages/cancel.
 */
function cancelGroupForm() {
  const box = h('div')
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'cancel-group-h', novalidate: true },
    h('h2', { id: 'cancel-group-h', text: 'Cancel a group' }),
    field({
      label: 'Group key',
      name: 'group_key',
      required: true,
      hint: 'Every queued message sent with this group_key is cancelled; sent ones are not affected.',
    }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger', text: 'Cancel queued messages' })),
    box,
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const group_key = form.group_key.value.trim()
    const button = form.querySelector('button')
    button.disabled = true
    try {
      const r = await api('POST', '/v1/messages/cancel', { group_key })
      const text = `Cancelled ${r.cancelled} queued message${r.cancelled == 1 ? '' : 's'} of group ${group_key}.`
      notice(box, text)
      announce(text)
    } catch (err) {
      showError(box, err, form)
    } finally {
      button.disabled = false
    }
  })
  return form
}

const short = (s) => (s && s.length > 80 ? s.slice(0, 79) + '…' : s || '')
