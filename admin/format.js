// Formatting shared by the pages: times, Arabic detection, status pills.
import { h } from './dom.js'

const ARABIC = /[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]/

/** True when the text is mostly Arabic script (it is then shown right-to-left). */
export function isArabic(s) {
  if (!s) return false
  const letters = String(s).match(/\p{L}/gu) || []
  const ar = letters.filter((c) => ARABIC.test(c)).length
  return ar > 0 && ar >= letters.length / 2
}

/** Attributes for a text that may be Arabic. */
export const textDir = (s) => (isArabic(s) ? { dir: 'rtl', lang: 'ar' } : { dir: 'auto' })

export function when(iso) {
  if (!iso) return '—'
  const d = new Date(iso)
  if (isNaN(d)) return String(iso)
  return d.toLocaleString('en-GB', { timeZone: 'UTC', year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }) + ' UTC'
}

export const time = (iso) => h('time', { datetime: iso || '', text: when(iso) })

export const pill = (status) => h('span', { class: 'pill ' + status, text: status })

/** `2026-11-27` (a date input) → RFC 3339 at 00:00 UTC; `end` → the next day's 00:00. */
export function dayStart(date, end = false) {
  if (!date) return undefined
  const d = new Date(date + 'T00:00:00Z')
  if (end) d.setUTCDate(d.getUTCDate() + 1)
  return d.toISOString().replace('.000Z', 'Z')
}

export const CHANNELS = ['sms', 'whatsapp', 'email']
export const STATUSES = ['queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'bounced', 'cancelled', 'suppressed']
export const KINDS = ['appointment_reminder', 'appointment_confirmation', 'appointment_update', 'results', 'billing', 'marketing']
export const LANGUAGES = [['en', 'English'], ['ar', 'Arabic']]

export const label = (s) => String(s).replace(/_/g, ' ')

/** The template a message names: `{id, name, version}` or a plain name. */
export const templateName = (t) => (t == null ? null : typeof t == 'string' ? t : t.name)

/** Money in the stats' unit: a number (or numeric string) in major units. */
export function money(amount, currency) {
  const n = Number(amount)
  if (!isFinite(n)) return String(amount ?? '—')
  return currency ? `${n.toFixed(2)} ${currency}` : n.toFixed(2)
}
