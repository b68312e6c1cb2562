// Analytics from GET /v1/messages/stats?days=N: totals, success rate, daily
// trend, by channel, by status, cost. Charts are inline SVG (charts.js).
import { api, qs } from '../api.js'
import { h, field, showError } from '../dom.js'
import { money } from '../format.js'
import { dailyChart, barChart, ringChart } from '../charts.js'
import { go } from '../app.js'

/** The contract's success rate may be a share (0..1) or a percentage. */
export const share = (rate) => (rate == null ? null : Number(rate) > 1 ? Number(rate) / 100 : Number(rate))

export async function render(main, _p, query) {
  const days = [7, 30, 90].includes(Number(query.days)) ? Number(query.days) : 7
  const status = h('div')
  const form = h(
    'form',
    { class: 'row compact', novalidate: true, 'aria-label': 'Period' },
    field({ label: 'Period', name: 'days', type: 'select', value: days, options: [[7, 'Last 7 days'], [30, 'Last 30 days'], [90, 'Last 90 days']] }),
    h('button', { type: 'submit', class: 'secondary', text: 'Show' }),
  )
  form.addEventListener('submit', (e) => (e.preventDefault(), go('#/dashboard' + qs({ days: form.days.value }))))
  main.append(h('h1', { text: 'Dashboard' }), h('div', { class: 'card' }, form), status)
  let st
  try {
    st = await api('GET', '/v1/messages/stats' + qs({ days }))
  } catch (err) {
    return showError(status, err)
  }
  const rate = share(st.success_rate)
  const cost = st.cost || {}
  const byStatus = st.by_status || {}
  const delivered = (byStatus.delivered || 0) + (byStatus.read || 0)
  const failed = (byStatus.failed || 0) + (byStatus.bounced || 0)
  const tile = (name, value, key) => h('div', { class: 'tile', dataset: { tile: key } }, h('div', { class: 'muted', text: name }), h('div', { class: 'value', text: value }))
  main.append(
    h(
      'section',
      { 'aria-label': 'Totals' },
      h('div', { class: 'tiles' },
        tile('Messages', String(st.total ?? 0), 'total'),
        tile('Delivered or read', String(delivered), 'delivered'),
        tile('Failed or bounced', String(failed), 'failed'),
        tile('Success rate', rate == null ? '—' : `${(rate * 100).toFixed(1)}%`, 'success'),
        tile('Cost', money(cost.total ?? 0, cost.currency), 'cost'),
      ),
    ),
    h(
      'div',
      { class: 'grid' },
      chartCard('Daily trend', 'daily', dailyChart(st.daily || [], `Messages per day, last ${days} days`, chartWidth(main)),
        h('ul', { class: 'legend' }, ['total', 'delivered', 'failed'].map((k) => h('li', {}, h('span', { class: 'swatch s-' + k }), k)))),
      chartCard('By channel', 'channel', barChart(st.by_channel || {}, 'Messages by channel')),
      chartCard('By status', 'status', barChart(byStatus, 'Messages by status', String, '#475569')),
      chartCard('Success rate', 'success', ringChart(rate, 'Delivered or read, of the messages that finished')),
      chartCard(`Cost (${cost.currency || 'no currency'})`, 'cost', barChart(cost.by_channel || {}, 'Cost by channel', (v) => money(v, cost.currency), '#a16207')),
    ),
  )
}

/** The daily chart's drawing width: the card's content box (main less the card's padding). */
const chartWidth = (main) => main.clientWidth - parseFloat(getComputedStyle(main).paddingLeft) * 2 - 34

function chartCard(title, key, svg, extra) {
  const id = 'chart-' + key
  return h('figure', { class: 'card', dataset: { chart: key }, 'aria-labelledby': id }, h('figcaption', { id, text: title }), svg, extra)
}
