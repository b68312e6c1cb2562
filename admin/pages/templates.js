// Templates: the list (name, channel, kind, version, active) and a link to create one.
import { api, all, canWrite } from '../api.js'
import { h, table, showError, notice, announce } from '../dom.js'
import { time, pill, label } from '../format.js'

export async function render(main) {
  const status = h('div')
  main.append(h('h1', { text: 'Templates' }), canWrite() ? h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/templates/new', text: 'New template' })) : null, status)
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
          ['Name', (t) => [h('a', { href: '#/templates/' + encodeURIComponent(t.id), text: t.name }), rulesMark(t)]],
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

/** The rules that send `t` (`used_by_rules`, from the hub), or []. */
export const rulesOf = (t) => t.used_by_rules || []

/** A "used by rules" mark for a template the clinic-event rules send (it cannot be deleted). */
export function rulesMark(t) {
  const rules = rulesOf(t)
  if (!rules.length) return null
  return h('span', { class: 'pill rules', title: 'Sent by the clinic-event rules: ' + rules.join(', '), text: 'used by rules' })
}

/** GET one template (shared by the detail and edit pages). */
export const getTemplate = (id) => api('GET', '/v1/templates/' + encodeURIComponent(id))
