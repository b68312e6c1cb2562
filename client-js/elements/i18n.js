/**
 * Strings, relative times and direction for the elements. Pure functions (no
 * DOM), so node's test runner checks them. English and Arabic ship; a page
 * adds or overrides strings through the elements' `strings` property.
 */

const en = {
  bell: 'Notifications',
  bellUnread: (n) => `Notifications, ${n} unread`,
  title: 'Notifications',
  markAll: 'Mark all as read',
  seeAll: 'See all notifications',
  empty: "You're all caught up",
  loading: 'Loading…',
  unread: 'Unread',
  newOne: (t) => `New notification: ${t}`,
  state: { connecting: 'Connecting…', reconnecting: 'Reconnecting…', unauthorized: 'Signed out', closed: '' },
  types: { info: 'Info', success: 'Success', warning: 'Warning', error: 'Error' },
  // The notification center.
  history: 'Notifications',
  preferences: 'Preferences',
  show: 'Show',
  all: 'All',
  unreadOnly: 'Unread',
  type: 'Type',
  allTypes: 'All types',
  category: 'Category',
  allCategories: 'All categories',
  markRead: 'Mark as read',
  read: 'Read',
  more: 'Load more',
  end: 'No more notifications',
  none: 'No notifications match these filters',
  shown: (n) => `${n} shown`,
  muted: 'Muted categories',
  mutedHint: 'Notifications in these categories stay in your history but are not pushed to you.',
  noMuted: 'No muted categories',
  addCategory: 'Category to mute',
  add: 'Mute',
  quiet: 'Quiet hours',
  quietOn: 'Pause live notifications during quiet hours',
  from: 'From',
  to: 'To',
  tz: 'Time zone',
  save: 'Save preferences',
  saved: 'Preferences saved',
  failed: (m) => `Could not save: ${m}`,
  loadFailed: (m) => `Could not load: ${m}`,
  // Category codes the shipped rules and common clinic systems use; any other code
  // reads as words (`lab_results` → "Lab results"), see categoryLabel.
  categories: {},
}

const ar = {
  bell: 'الإشعارات',
  bellUnread: (n) => `الإشعارات، ${n} غير مقروءة`,
  title: 'الإشعارات',
  markAll: 'تحديد الكل كمقروء',
  seeAll: 'عرض كل الإشعارات',
  empty: 'لا توجد إشعارات جديدة',
  loading: 'جارٍ التحميل…',
  unread: 'غير مقروء',
  newOne: (t) => `إشعار جديد: ${t}`,
  state: { connecting: 'جارٍ الاتصال…', reconnecting: 'جارٍ إعادة الاتصال…', unauthorized: 'تم تسجيل الخروج', closed: '' },
  types: { info: 'معلومة', success: 'نجاح', warning: 'تنبيه', error: 'خطأ' },
  history: 'الإشعارات',
  preferences: 'التفضيلات',
  show: 'عرض',
  all: 'الكل',
  unreadOnly: 'غير المقروءة',
  type: 'النوع',
  allTypes: 'كل الأنواع',
  category: 'الفئة',
  allCategories: 'كل الفئات',
  markRead: 'تحديد كمقروء',
  read: 'مقروء',
  more: 'تحميل المزيد',
  end: 'لا توجد إشعارات أخرى',
  none: 'لا توجد إشعارات مطابقة لهذه المرشحات',
  shown: (n) => `المعروض: ${n}`,
  muted: 'الفئات المكتومة',
  mutedHint: 'تبقى إشعارات هذه الفئات في السجل ولكن لا تصلك مباشرة.',
  noMuted: 'لا توجد فئات مكتومة',
  addCategory: 'فئة للكتم',
  add: 'كتم',
  quiet: 'ساعات الهدوء',
  quietOn: 'إيقاف الإشعارات المباشرة خلال ساعات الهدوء',
  from: 'من',
  to: 'إلى',
  tz: 'المنطقة الزمنية',
  save: 'حفظ التفضيلات',
  saved: 'تم حفظ التفضيلات',
  failed: (m) => `تعذّر الحفظ: ${m}`,
  loadFailed: (m) => `تعذّر التحميل: ${m}`,
  categories: {
    appointments: 'المواعيد',
    arrivals: 'الوصول',
    billing: 'الفواتير',
    payments: 'المدفوعات',
    results: 'النتائج',
    lab_results: 'نتائج المختبر',
    reminders: 'التذكيرات',
    messages: 'الرسائل',
  },
}

export const STRINGS = { en, ar }

/** The strings for `lang` (its primary subtag; English when unknown), with `extra` over them. */
export function strings(lang, extra) {
  const base = STRINGS[String(lang || 'en').toLowerCase().split('-')[0]] || en
  return extra ? { ...base, ...extra } : base
}

/**
 * A category code as people read it: the language's label when it has one
 * (`strings.categories`), else the code as words: `lab_results` → "Lab results",
 * `appointment.booked` → "Appointment booked".
 */
export function categoryLabel(code, s = en) {
  const known = s.categories && s.categories[code]
  if (known) return known
  const words = String(code).replace(/[._-]+/g, ' ').trim()
  return words.charAt(0).toUpperCase() + words.slice(1)
}

const RTL = ['ar', 'fa', 'he', 'ur', 'ps', 'yi', 'dv', 'ckb']

/** `rtl` for right-to-left languages (Arabic, Persian, Hebrew, Urdu, ...), else `ltr`. */
export const dirOf = (lang) => (RTL.includes(String(lang || '').toLowerCase().split('-')[0]) ? 'rtl' : 'ltr')

const UNITS = [
  ['year', 31536000],
  ['month', 2592000],
  ['week', 604800],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
]

/**
 * "5 minutes ago" / "قبل ٥ دقائق" for an RFC 3339 time, through
 * Intl.RelativeTimeFormat (numeric: auto, so "yesterday", "now"). Under 45 s
 * is "now"; a unit is used once the value reaches 1 of it.
 */
export function relTime(iso, lang, now = Date.now()) {
  const s = (Date.parse(iso) - now) / 1000
  const rtf = formatter(Intl.RelativeTimeFormat, lang, { numeric: 'auto' })
  if (!(Math.abs(s) >= 45)) return rtf.format(0, 'second')
  for (const [unit, size] of UNITS) if (Math.abs(s) >= size) return rtf.format(Math.round(s / size), unit)
  return rtf.format(Math.round(s / 60) || Math.sign(s), 'minute')
}

/** The full date and time, for tooltips and the history. */
export const absTime = (iso, lang) =>
  formatter(Intl.DateTimeFormat, lang, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso))

/**
 * One Intl formatter per kind and language, reused: building one takes ~0.1 ms,
 * and a list of 150 rows asked for 300 of them at every render.
 */
const formatters = new Map()
function formatter(Kind, lang, options) {
  const key = Kind.name + '|' + (lang || 'en')
  let f = formatters.get(key)
  if (!f) formatters.set(key, (f = new Kind(lang || 'en', options)))
  return f
}

/** The badge text: '' for none (or not known yet), '99+' above 99. */
export const badgeText = (n) => (!n || n < 0 ? '' : n > 99 ? '99+' : String(n))

/**
 * Where a click on `n` leads: its `link`, else `pattern` (`/{type}s/{id}`)
 * filled from `n.related` (URL-encoded), else null. Only followed through
 * {@link safeTarget}, whatever the data says.
 */
export function targetOf(n, pattern, base) {
  let url = n.link
  if (!url && pattern && n.related && n.related.type != null && n.related.id != null)
    url = pattern.replace(/\{(type|id)\}/g, (_, k) => encodeURIComponent(n.related[k]))
  return url ? safeTarget(url, base) : null
}

/**
 * `url` if it is an absolute http(s) URL or a path on this site, else null. A
 * relative-looking link never leaves the site: browsers read `/\evil.example` as
 * `//evil.example` (another site) and drop tabs and newlines before resolving
 * (`/\t/evil.example`), so backslashes and control characters are refused and a
 * path must resolve to the page's own origin (`base`: the page's URL).
 */
export function safeTarget(url, base = globalThis.location && globalThis.location.href) {
  if (typeof url != 'string' || /[\\\u0000-\u001f\u007f]/.test(url)) return null
  if (/^https?:\/\//i.test(url)) return url
  if (!/^\/(?!\/)/.test(url)) return null
  try {
    const origin = new URL(base || 'http://localhost/').origin
    return new URL(url, origin).origin == origin ? url : null
  } catch {
    return null
  }
}

/** The notification types the hub knows, in display order. */
export const TYPES = ['info', 'success', 'warning', 'error']
