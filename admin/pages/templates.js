// Templates: the list (name, channel, kind, version, active) and a link to create one.
import { api, all } from '../api.js'
import { h, table, showError, notice, announce } from '../dom.js'
import { time, pill, label } from '../format.js'

export async function render(main) {
  const status = h('div')
  main.append(h('h1', { text: 'Templates' }), h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/templates/new', text: 'New template' })), status)
  const flash = sessionStorage.getItem('tidings.admin.flash')
  if (flash) {
    sessionStorage.removeItem('tidings.admin.flash')
    notice(status, flash)
    announce(flash)
  }
  let items
  try {
    items = await all('/v1/templates')
  } catch (err) {
    return showError(status, err)
  }
  main.append(
    h(
      'section',
      { class: 'card', 'aria-label': 'All templates' },
      table(
        'Templates',
        [
          ['Name', (t) => h('a', { href: '#/templates/' + encodeURIComponent(t.id), text: t.name })],
          ['Channel', (t) => t.channel],
          ['Kind', (t) => label(t.kind)],
          ['Version', (t) => String(t.version ?? '—')],
          ['State', (t) => pill(t.is_active ? 'active' : 'inactive')],
          ['Updated', (t) => time(t.updated_at || t.created_at)],
        ],
        items,
        'No template yet.',
      ),
    ),
  )
}

/** GET one template (shared by the detail and edit pages). */
export const getTemplate = (id) => api('GET', '/v1/templates/' + encodeURIComponent(id))
