// One message: what was sent to whom, its event timeline, and retry / cancel
// when the hub allows them (retry: failed or bounced; cancel: not yet sent).
import { api, canWrite } from '../api.js'
import { h, showError, notice, announce } from '../dom.js'
import { time, pill, textDir, templateName, label } from '../format.js'
import { go } from '../app.js'

export const canRetry = (m) => m.status == 'failed' || m.status == 'bounced'
export const canCancel = (m) => m.status == 'queued' && canWrite()

export async function render(main, { id }) {
  const status = h('div')
  main.append(h('p', {}, h('a', { href: '#/messages', text: '← All messages' })), h('h1', { text: 'Message' }), status)
  let m
  try {
    m = await api('GET', '/v1/messages/' + encodeURIComponent(id))
  } catch (err) {
    return showError(status, err)
  }
  const act = async (what, button) => {
    button.disabled = true
    try {
      await api('POST', `/v1/messages/${encodeURIComponent(id)}/${what}`)
      sessionStorage.setItem('tidings.admin.flash', what == 'retry' ? 'Queued again for sending.' : 'Cancelled.')
      go(location.hash)
    } catch (err) {
      button.disabled = false
      showError(status, err)
    }
  }
  const flash = sessionStorage.getItem('tidings.admin.flash')
  if (flash) {
    sessionStorage.removeItem('tidings.admin.flash')
    notice(status, flash)
    announce(flash)
  }
  const tpl = m.template && typeof m.template == 'object' ? `${m.template.name} (version ${m.template.version})` : templateName(m.template)
  const props = [
    ['Id', h('code', { text: m.id })],
    ['Status', pill(m.status)],
    ['Reason', m.reason ? (m.reason_detail ? `${m.reason}: ${m.reason_detail}` : m.reason) : null],
    ['Channel', m.channel],
    ['To', m.to],
    ['Patient', m.patient_id ? h('a', { href: '#/patients/' + encodeURIComponent(m.patient_id), text: m.patient_id }) : null],
    ['Kind', m.kind && label(m.kind)],
    ['Language', m.language],
    ['Template', tpl],
    ['Send at', m.send_at && time(m.send_at)],
    ['Group', m.group_key],
    ['Batch', m.batch_id],
    ['Provider', m.provider],
    ['Attempts', m.attempts],
    ['Variables', m.variables && Object.keys(m.variables).length ? Object.entries(m.variables).map(([k, v]) => `${k}=${v}`).join(', ') : null],
    ['Last error', m.last_error],
    ['Price', m.price ? `${m.price.amount ?? m.price} ${m.price.currency ?? ''}` : null],
    ['Created', time(m.created_at)],
    ['Updated', m.updated_at && time(m.updated_at)],
  ].filter(([, v]) => v != null && v !== '')
  const buttons = h('div', { class: 'actions' })
  if (canRetry(m)) {
    const b = h('button', { type: 'button', text: 'Retry', onclick: () => act('retry', b) })
    buttons.append(b)
  }
  if (canCancel(m)) {
    const b = h('button', { type: 'button', class: 'danger', text: 'Cancel message', onclick: () => act('cancel', b) })
    buttons.append(b)
  }
  if (!buttons.children.length) buttons.append(h('p', { class: 'muted', text: `No action: a ${m.status} message can be neither retried nor cancelled.` }))
  main.append(
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'm-details' },
      h('h2', { id: 'm-details', text: 'Details' }),
      h('dl', { class: 'props' }, props.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)])),
      buttons,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'm-content' },
      h('h2', { id: 'm-content', text: 'Content' }),
      m.subject ? h('p', {}, h('strong', { text: 'Subject: ' }), h('span', { ...textDir(m.subject), text: m.subject })) : null,
      h('pre', { class: 'body-text', ...textDir(m.body), text: m.body || '' }),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'm-events' },
      h('h2', { id: 'm-events', text: 'Timeline' }),
      (m.events || []).length
        ? h(
            'ol',
            { class: 'timeline' },
            m.events.map((e) =>
              h('li', { dataset: { event: e.event } }, h('strong', { text: e.event }), ' ', time(e.at), detail(e.detail)),
            ),
          )
        : h('p', { class: 'muted', text: 'No events.' }),
    ),
  )
}

function detail(d) {
  if (d == null || d === '' || (typeof d == 'object' && !Object.keys(d).length)) return null
  const text = typeof d == 'string' ? d : Object.entries(d).map(([k, v]) => `${k}: ${typeof v == 'object' ? JSON.stringify(v) : v}`).join(' · ')
  return h('span', { class: 'detail', text })
}
