// Charts drawn as inline SVG (no library, nothing fetched): each is an
// `svg role=img` with a text summary as its label, so the numbers are also
// read out by screen readers.
import { h } from './dom.js'

const s = (tag, attrs, ...kids) => h('svg:' + tag, attrs, ...kids)

/**
 * Daily trend: for each day, three bars (total, delivered, failed).
 * `days` = [{date, total, delivered, failed}].
 */
export function dailyChart(days, title, width = 640) {
  // Drawn at the width it is shown at (`width`, the card's), so its 12-px text stays
  // 12 px on a phone instead of being scaled down with a 640-wide drawing.
  const W = Math.max(260, Math.min(640, Math.round(width))), H = 220, L = 36, B = 28, T = 10
  const max = Math.max(1, ...days.map((d) => d.total))
  const step = (W - L - 8) / Math.max(1, days.length)
  const bw = Math.max(2, Math.min(14, (step - 4) / 3))
  const y = (v) => T + (H - T - B) * (1 - v / max)
  const ticks = [0, Math.ceil(max / 2), max]
  const summary = days.map((d) => `${d.date}: ${d.total} total, ${d.delivered} delivered, ${d.failed} failed`).join('; ')
  return s(
    'svg',
    { class: 'chart daily', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}. ${summary || 'No data.'}` },
    ticks.map((t) => [
      s('line', { x1: L, x2: W, y1: y(t), y2: y(t), stroke: '#e5e7eb' }),
      s('text', { x: L - 6, y: y(t) + 4, 'text-anchor': 'end', text: String(t) }),
    ]),
    days.map((d, i) => {
      const x = L + i * step + (step - bw * 3) / 2
      return s(
        'g',
        { 'data-date': d.date, 'data-total': d.total },
        [['total', '#0f5f8a'], ['delivered', '#15803d'], ['failed', '#b91c1c']].map(([k, c], j) =>
          s('rect', { class: 'bar ' + k, x: x + j * bw, y: y(d[k]), width: bw - 1, height: Math.max(0, H - B - y(d[k])), fill: c }, s('title', { text: `${d.date} ${k}: ${d[k]}` })),
        ),
        // A date label is ~40 px wide: as many as fit, evenly spaced.
        i % Math.max(1, Math.ceil(days.length / Math.max(1, Math.floor((W - L) / 44)))) == 0
          ? s('text', { x: x + bw * 1.5, y: H - 10, 'text-anchor': 'middle', text: d.date.slice(5) })
          : null,
      )
    }),
  )
}

/** Horizontal bars for `{label: value}`; `fmt` formats a value. */
export function barChart(values, title, fmt = String, colour = '#0f5f8a') {
  const entries = Object.entries(values)
  // Room for the longest label and value (12-px text: about 7.5 px a character), so
  // neither is clipped ("12.50 SAR" did not fit a fixed 60).
  const chars = (list) => Math.max(1, ...list.map((x) => String(x).length))
  const W = 360, row = 26
  const L = Math.min(140, Math.ceil(chars(entries.map(([k]) => k)) * 7.5) + 10)
  const R = Math.min(120, Math.ceil(chars(entries.map(([, v]) => fmt(v))) * 7.5) + 12)
  const H = Math.max(1, entries.length) * row + 6
  const max = Math.max(1e-9, ...entries.map(([, v]) => Number(v)))
  const summary = entries.map(([k, v]) => `${k}: ${fmt(v)}`).join(', ')
  return s(
    'svg',
    { class: 'chart bars', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}. ${summary || 'No data.'}` },
    entries.map(([k, v], i) => {
      const w = ((W - L - R) * Number(v)) / max
      return s(
        'g',
        { 'data-key': k, 'data-value': v },
        s('text', { x: L - 6, y: i * row + 18, 'text-anchor': 'end', text: k }),
        s('rect', { x: L, y: i * row + 5, width: Math.max(Number(v) > 0 ? 2 : 0, w), height: row - 10, rx: 3, fill: colour }),
        s('text', { x: L + w + 6, y: i * row + 18, text: fmt(v) }),
      )
    }),
  )
}

/** A ring showing a share (0..1) with the percentage in the middle. */
export function ringChart(share, title) {
  const r = 52, c = 2 * Math.PI * r
  const pct = share == null || !isFinite(share) ? null : Math.max(0, Math.min(1, share))
  const text = pct == null ? '—' : `${(pct * 100).toFixed(1)}%`
  return s(
    'svg',
    { class: 'chart ring', viewBox: '0 0 140 140', role: 'img', 'aria-label': `${title}: ${text}` },
    s('circle', { cx: 70, cy: 70, r, fill: 'none', stroke: '#e5e7eb', 'stroke-width': 14 }),
    pct == null ? null : s('circle', { cx: 70, cy: 70, r, fill: 'none', stroke: '#15803d', 'stroke-width': 14, 'stroke-dasharray': `${c * pct} ${c}`, transform: 'rotate(-90 70 70)' }),
    s('text', { x: 70, y: 76, 'text-anchor': 'middle', class: 'ring-value', 'font-size': 20, 'font-weight': 700, text }),
  )
}
