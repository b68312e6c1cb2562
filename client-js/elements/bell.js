import { TidingsElement, h, THEME } from './base.js'
import { relTime, absTime, badgeText, targetOf } from './i18n.js'

const ICON =
  '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false"><path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-1.7 1.7A1 1 0 0 0 4 19.4h16a1 1 0 0 0 .7-1.7Z"/></svg>'

const CSS = `${THEME}
:host { position: relative; display: inline-block; line-height: 1.4; color: inherit; }
.bell { position: relative; display: inline-flex; align-items: center; justify-content: center; width: 40px; height: 40px;
  border: 0; border-radius: 50%; background: transparent; color: var(--tidings-icon, inherit); cursor: pointer; padding: 0; }
.bell:hover { background: var(--tidings-bell-hover, rgb(127 127 127 / 0.15)); }
/* The badge starts at the icon's upper end corner and grows outward: "99+" never covers the bell. */
.badge { position: absolute; top: 1px; inset-inline-start: 22px; min-width: 18px; height: 18px; padding: 0 5px; box-sizing: border-box; white-space: nowrap;
  border-radius: 9px; background: var(--tidings-badge-bg, #c81e1e); color: var(--tidings-badge-fg, #fff);
  font: 700 11px/18px var(--tidings-font, system-ui, sans-serif); text-align: center; box-shadow: 0 0 0 2px var(--tidings-badge-ring, #fff); }
.panel { position: absolute; top: calc(100% + 6px); inset-inline-end: 0; z-index: var(--tidings-z, 1000);
  width: min(var(--tidings-width, 380px), calc(100vw - 16px)); background: var(--_bg); color: var(--_fg);
  border: 1px solid var(--_border); border-radius: var(--_radius); box-shadow: var(--_shadow); overflow: hidden; font-size: 14px; }
.head { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 12px 16px; border-bottom: 1px solid var(--_border); }
.title { font-weight: 650; font-size: 15px; }
.state { color: var(--_muted); font-size: 12px; }
.empty { margin: 0; padding: 28px 16px; text-align: center; color: var(--_muted); }
.items { max-height: var(--tidings-max-height, min(60vh, 420px)); overflow-y: auto; }
.item { display: flex; gap: 10px; padding: 10px 16px; padding-inline-start: 13px; border-inline-start: 3px solid var(--_type, var(--_info));
  cursor: pointer; border-bottom: 1px solid var(--_border); outline-offset: -3px; }
.item:hover, .item:focus { background: var(--_hover); }
.item.unread { background: var(--_unread-bg); }
.item.unread:hover, .item.unread:focus { background: var(--_hover); }
.dot { flex: none; width: 8px; height: 8px; margin-top: 6px; border-radius: 50%; background: transparent; }
.unread .dot { background: var(--_accent); }
.body { min-width: 0; flex: 1; display: flex; flex-direction: column; gap: 2px; }
.t { font-weight: 600; overflow-wrap: anywhere; }
.unread .t { font-weight: 700; }
.m { color: var(--_fg); overflow-wrap: anywhere; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }
.meta { display: flex; align-items: center; gap: 6px; color: var(--_muted); font-size: 12px; }
.kind { color: var(--_type); font-weight: 600; }
.foot { display: flex; justify-content: space-between; gap: 8px; padding: 8px 10px; background: var(--tidings-foot-bg, transparent); }
.foot [role=menuitem] { border: 0; background: transparent; color: var(--_accent); font: inherit; font-weight: 600; padding: 6px 8px;
  border-radius: 6px; cursor: pointer; text-decoration: none; }
.foot [role=menuitem]:hover, .foot [role=menuitem]:focus { background: var(--_hover); }
.foot [aria-disabled=true] { color: var(--_muted); cursor: default; }
`

/**
 * `<tidings-bell>`: a bell button with the unread badge and a menu of the
 * latest notifications.
 *
 * Attributes: `url`, `token` (or the `getToken` property), `transport`,
 * `share`, `history-url` ("see all"), `related-url` (`/{type}s/{id}`: where a
 * notification without `link` leads), `limit` (items in the menu, default 8),
 * `lang`, `dir`.
 *
 * The badge shows the library's `unread`, which only the hub sets. Clicking a
 * notification marks it read, fires a cancelable `tidings-select` event
 * (`detail: { notification, url }`), then follows the URL unless the event
 * was cancelled. Keyboard: the menu-button pattern (Enter, Space or ArrowDown
 * open on the first item, ArrowUp on the last; arrows, Home, End move; Escape
 * closes and returns focus to the bell; Tab closes).
 */
export class TidingsBell extends TidingsElement {
  static get observedAttributes() {
    return [...super.observedAttributes, 'history-url', 'limit']
  }

  constructor() {
    super()
    this._items = new Map()
    this._unread = null
    // Unread notifications pushed live since the last count: a count that rises by
    // more was raised by notifications that were stored but not pushed (a muted
    // category, quiet hours). The count includes them, so the menu must too.
    this._pushed = 0
    this._loaded = false
    this._open = false
    this._built = false
    this._timer = 0
    this._outside = (e) => this._open && !e.composedPath().includes(this) && this.close(false)
    this._resize = () => this._open && this._place()
  }

  get limit() {
    return Math.max(1, Number(this.getAttribute('limit')) || 8)
  }

  /** The notifications in the menu, newest first. */
  get items() {
    return [...this._items.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).slice(0, this.limit)
  }

  connectedCallback() {
    super.connectedCallback()
    document.addEventListener('pointerdown', this._outside, true)
    addEventListener('resize', this._resize)
    this._timer = setInterval(() => this._open && this._renderItems(), 30000)
  }

  disconnectedCallback() {
    super.disconnectedCallback()
    document.removeEventListener('pointerdown', this._outside, true)
    removeEventListener('resize', this._resize)
    clearInterval(this._timer)
  }

  attributeChangedCallback(name, old, value) {
    if (name == 'history-url' || name == 'limit') return this.render()
    super.attributeChangedCallback(name, old, value)
  }

  _build() {
    const root = this.shadowRoot
    root.innerHTML = `<style>${CSS}</style>`
    this.$ = {}
    const $ = this.$
    $.button = h('button', {
      class: 'bell',
      part: 'button',
      type: 'button',
      'aria-haspopup': 'menu',
      'aria-expanded': 'false',
      'aria-controls': 'panel',
      onclick: () => (this._open ? this.close() : this.open()),
      onkeydown: (e) => {
        if (e.key == 'ArrowDown' || e.key == 'ArrowUp') {
          e.preventDefault()
          this.open(e.key == 'ArrowUp' ? -1 : 0)
        } else if (e.key == 'Escape') this.close()
      },
    })
    $.button.innerHTML = ICON
    $.badge = h('span', { class: 'badge', part: 'badge', 'aria-hidden': 'true', hidden: true })
    $.button.append($.badge)
    $.title = h('div', { class: 'title', id: 'title' })
    $.state = h('span', { class: 'state' })
    $.empty = h('p', { class: 'empty' })
    $.items = h('div', { class: 'items', role: 'none' })
    $.all = h('button', { type: 'button', role: 'menuitem', tabindex: '-1', class: 'all', onclick: () => this._markAll() })
    $.see = h('a', { role: 'menuitem', tabindex: '-1', class: 'see', part: 'see-all' })
    $.menu = h('div', { role: 'menu', 'aria-labelledby': 'title', onkeydown: (e) => this._key(e) }, $.items, h('div', { class: 'foot', role: 'none' }, $.all, $.see))
    $.panel = h('div', { class: 'panel', id: 'panel', part: 'panel', hidden: true }, h('div', { class: 'head' }, $.title, $.state), $.empty, $.menu)
    $.live = h('div', { class: 'sr', 'aria-live': 'polite' })
    $.root = h('div', { class: 'root' }, $.button, $.panel, $.live)
    root.append($.root)
    this._built = true
  }

  render() {
    if (!this._built) this._build()
    const s = this.strings
    const $ = this.$
    const lang = this.lang_
    $.root.setAttribute('dir', this.dir_)
    $.root.setAttribute('lang', lang)
    $.title.textContent = s.title
    $.all.textContent = s.markAll
    $.see.textContent = s.seeAll
    const history = this.getAttribute('history-url')
    $.see.hidden = !history
    if (history) $.see.setAttribute('href', history)
    this._renderBadge()
    this._renderState()
    this._renderItems()
  }

  _renderBadge() {
    const s = this.strings
    const text = badgeText(this._unread)
    this.$.badge.textContent = text
    this.$.badge.hidden = !text
    this.$.button.setAttribute('aria-label', this._unread ? s.bellUnread(this._unread) : s.bell)
    this.$.all.setAttribute('aria-disabled', String(!this._unread))
  }

  _renderState() {
    const st = this.dataset.state
    this.$.state.textContent = (st && st != 'open' && this.strings.state[st]) || ''
  }

  _renderItems() {
    const $ = this.$
    const s = this.strings
    const lang = this.lang_
    const focused = this.shadowRoot.activeElement
    const focusId = focused && focused.dataset && focused.dataset.id
    const items = this.items
    $.empty.textContent = this._loaded ? s.empty : s.loading
    $.empty.hidden = items.length > 0
    const now = Date.now()
    $.items.replaceChildren(
      ...items.map((n) => {
        const type = s.types[n.type] ? n.type : 'info'
        return h(
          'div',
          {
            class: 'item' + (n.is_read ? '' : ' unread'),
            role: 'menuitem',
            tabindex: '-1',
            part: 'item',
            'data-id': n.id,
            'data-type': type,
            onclick: () => this._select(n),
          },
          h('span', { class: 'dot', 'aria-hidden': 'true' }),
          h(
            'span',
            { class: 'body' },
            h('span', { class: 't', text: n.title }),
            h('span', { class: 'm', text: n.message }),
            h(
              'span',
              { class: 'meta' },
              h('span', { class: 'kind', text: s.types[type] }),
              h('span', { 'aria-hidden': 'true', text: '·' }),
              h('time', { datetime: n.created_at, title: absTime(n.created_at, lang), text: relTime(n.created_at, lang, now) }),
              n.is_read ? null : h('span', { class: 'sr', text: ', ' + s.unread }),
            ),
          ),
        )
      }),
    )
    if (focusId) {
      const again = $.items.querySelector(`[data-id="${CSS_escape(focusId)}"]`)
      if (again) again.focus()
    }
  }

  /** Opens the menu and focuses its first item (`at` = -1: the last). */
  open(at = 0) {
    if (!this._built) return
    this._open = true
    this.$.panel.hidden = false
    this.$.button.setAttribute('aria-expanded', 'true')
    this._renderItems()
    this._place()
    this._focusAt(at)
    // Opened before the first page arrived: focus the requested item once it is there,
    // unless the user has moved on meanwhile.
    if (!this._loaded) {
      const first = this.shadowRoot.activeElement
      this._load().then(() => this._open && this.shadowRoot.activeElement == first && this._focusAt(at))
    }
    this.dispatchEvent(new CustomEvent('tidings-open', { bubbles: true, composed: true }))
  }

  /** Closes the menu; focus returns to the bell unless `refocus` is false. */
  close(refocus = true) {
    if (!this._built || !this._open) return
    this._open = false
    this.$.panel.hidden = true
    this.$.button.setAttribute('aria-expanded', 'false')
    if (refocus) this.$.button.focus()
  }

  /**
   * Keeps the open menu inside the viewport: it hangs from the bell's end edge,
   * so a bell that is not at the very end of a narrow (360 px) screen would push
   * it past the other side. Measured after opening, shifted back by the overflow.
   */
  _place() {
    const p = this.$.panel
    p.style.transform = ''
    const vw = document.documentElement.clientWidth || innerWidth
    const r = p.getBoundingClientRect()
    const m = Math.min(8, Math.max(0, (vw - r.width) / 2))
    const dx = r.left < m ? m - r.left : r.right > vw - m ? vw - m - r.right : 0
    if (dx) p.style.transform = `translateX(${dx}px)`
  }

  _focusAt(at) {
    const list = this._menuItems()
    const el = list[at < 0 ? list.length - 1 : Math.min(at, list.length - 1)]
    if (el) el.focus()
  }

  _menuItems() {
    return [...this.$.menu.querySelectorAll('[role=menuitem]')].filter((el) => !el.hidden)
  }

  _key(e) {
    const list = this._menuItems()
    const i = list.indexOf(this.shadowRoot.activeElement)
    const go = (j) => {
      e.preventDefault()
      list[(j + list.length) % list.length].focus()
    }
    if (e.key == 'ArrowDown') go(i + 1)
    else if (e.key == 'ArrowUp') go(i - 1)
    else if (e.key == 'Home') go(0)
    else if (e.key == 'End') go(list.length - 1)
    else if (e.key == 'Escape') {
      e.preventDefault()
      this.close()
    } else if (e.key == 'Tab') this.close(false)
    else if ((e.key == 'Enter' || e.key == ' ') && i >= 0 && list[i].tagName != 'A') {
      e.preventDefault()
      list[i].click()
    }
  }

  /** Loads the latest page once per connection (live events keep it current after that). */
  _load(force) {
    const c = this.client
    if (!c || (this._loaded && !force)) return Promise.resolve()
    return this._loading || (this._loading = this._fetch(c).finally(() => (this._loading = null)))
  }

  async _fetch(c) {
    try {
      const page = await c.list({ status: 'all', limit: this.limit })
      const fresh = new Map(page.items.map((n) => [n.id, n]))
      const oldest = page.items.length ? page.items[page.items.length - 1].id : ''
      // Live ones newer than the page's oldest that the page lacks arrived meanwhile: keep them.
      for (const [id, n] of this._items) if (!fresh.has(id) && id > oldest) fresh.set(id, n)
      this._items = fresh
      this._loaded = true
    } catch {
      // Shown as still loading; the next open or reconnect tries again.
    }
    this._renderItems()
  }

  async _select(n) {
    const url = targetOf(n, this.getAttribute('related-url'))
    const go = this.dispatchEvent(
      new CustomEvent('tidings-select', { bubbles: true, composed: true, cancelable: true, detail: { notification: n, url } }),
    )
    if (!n.is_read && this.client) {
      // Over a WebSocket this is one frame, sent at once; over REST, wait a little so
      // navigating away does not cancel the request.
      await Promise.race([this.client.markRead(n.id).catch(() => {}), new Promise((r) => setTimeout(r, 1500))])
    }
    this.close()
    if (go && url) location.assign(url)
  }

  _markAll() {
    if (this._unread && this.client) this.client.markAllRead().catch(() => {})
  }

  onState(s, was) {
    this.dataset.transport = (this.client && this.client.transport) || ''
    if (!this._built) return
    this._renderState()
    if (s == 'open' && (!this._loaded || was == 'reconnecting')) this._load(true)
  }

  onUnread(n) {
    const was = this._unread
    this._unread = n
    const unpushed = was != null && n - was > this._pushed
    this._pushed = 0
    if (!this._built) return
    this._renderBadge()
    // The badge and the menu count the same notifications (the hub's unread ones, muted
    // or not): the menu reloads its page now if it is open, else when it next opens.
    if (unpushed && this._loaded) {
      this._loaded = false
      if (this._open) this._load(true)
    }
  }

  onNotification(n) {
    if (!n.is_read) this._pushed++
    this._items.set(n.id, n)
    if (!this._built) return
    this._renderItems()
    this.$.live.textContent = this.strings.newOne(n.title)
  }

  onRead({ ids, all }) {
    const at = new Date().toISOString()
    for (const n of this._items.values())
      if (all || ids.includes(n.id)) if (!n.is_read) this._items.set(n.id, { ...n, is_read: true, read_at: at })
    if (this._built) this._renderItems()
  }
}

const CSS_escape = (s) => (globalThis.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&'))

if (!customElements.get('tidings-bell')) customElements.define('tidings-bell', TidingsBell)
