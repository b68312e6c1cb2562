import { TidingsElement, h, THEME } from './base.js'
import { relTime, absTime, targetOf, TYPES, categoryLabel } from './i18n.js'

const CSS = `${THEME}
:host { display: block; font-size: 15px; line-height: 1.45; }
.tabs { display: flex; gap: 4px; border-bottom: 1px solid var(--_border); margin-bottom: 16px; }
[role=tab] { border: 0; background: transparent; font: inherit; font-weight: 600; color: var(--_muted); padding: 10px 14px;
  border-bottom: 3px solid transparent; margin-bottom: -1px; cursor: pointer; }
[role=tab][aria-selected=true] { color: var(--_accent); border-bottom-color: var(--_accent); }
.filters { display: flex; flex-wrap: wrap; align-items: end; gap: 12px; margin-bottom: 12px; }
label { display: inline-flex; flex-direction: column; gap: 4px; font-size: 13px; font-weight: 600; color: var(--_fg); }
select, input[type=time], input[type=text] { font: inherit; font-weight: 400; padding: 6px 8px; border: 1px solid var(--tidings-input-border, #6b7280);
  border-radius: 6px; background: var(--_bg); color: var(--_fg); min-height: 34px; box-sizing: border-box; }
button.act { font: inherit; font-weight: 600; padding: 7px 14px; border-radius: 6px; border: 1px solid var(--_accent);
  background: var(--_bg); color: var(--_accent); cursor: pointer; min-height: 34px; }
button.primary { background: var(--_accent); color: var(--tidings-on-accent, #fff); }
button.act:disabled { border-color: var(--_border); color: var(--_muted); background: var(--_bg); cursor: default; }
.push { margin-inline-start: auto; }
.status { color: var(--_muted); font-size: 13px; min-height: 1.2em; margin: 4px 0 8px; }
.list { list-style: none; margin: 0; padding: 0; border: 1px solid var(--_border); border-radius: var(--_radius); overflow: hidden; background: var(--_bg); }
.list:empty { display: none; }
.row { display: flex; gap: 12px; align-items: flex-start; padding: 12px 16px; padding-inline-start: 13px; border-inline-start: 3px solid var(--_type, var(--_info));
  border-bottom: 1px solid var(--_border); }
.row:last-child { border-bottom: 0; }
.row.unread { background: var(--_unread-bg); }
.row .main { flex: 1; min-width: 0; }
.row h3 { margin: 0; font-size: 15px; font-weight: 600; overflow-wrap: anywhere; }
.row.unread h3 { font-weight: 700; }
.row h3 a { color: inherit; }
.row p { margin: 2px 0; overflow-wrap: anywhere; }
.meta { color: var(--_muted); font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 10px; }
.kind { color: var(--_type); font-weight: 600; }
.more { margin-top: 12px; }
fieldset { border: 1px solid var(--_border); border-radius: var(--_radius); padding: 12px 16px 16px; margin: 0 0 16px; }
legend { font-weight: 700; padding: 0 6px; }
.hint { color: var(--_muted); font-size: 13px; margin: 0 0 10px; }
.muted { list-style: none; margin: 0 0 12px; padding: 0; display: flex; flex-direction: column; gap: 6px; }
.check { flex-direction: row; align-items: center; gap: 8px; font-weight: 400; font-size: 15px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; margin-top: 10px; }
.err { color: var(--tidings-error-text, #b91c1c); }
[aria-invalid=true] { border-color: var(--tidings-error-text, #b91c1c); }
`

/**
 * `<tidings-center>`: the staff notification center. Two tabs:
 *
 * - History: every notification, newest first, paged with the hub's cursor
 *   (`page-size`, default 20). The status filter (all / unread) is the hub's;
 *   type and category are filtered here over the pages loaded, and more pages
 *   are fetched until a page's worth matches or the history ends. Live
 *   notifications appear on top; `read` events (any tab) update the rows.
 * - Preferences: muted categories and quiet hours with a time zone
 *   (`GET/PUT /v1/me/preferences`).
 *
 * Same attributes as `<tidings-bell>` (`url`, `token` / `getToken`,
 * `transport`, `share`, `related-url`, `lang`, `dir`) plus `view`
 * (`history` | `preferences`) and `page-size`.
 */
export class TidingsCenter extends TidingsElement {
  constructor() {
    super()
    this._rows = []
    this._ids = new Set()
    // Every category the hub knows for this user (GET /v1/me/categories), not only
    // those of the pages loaded so far.
    this._known = new Set()
    this._cursor = null
    this._done = false
    this._busy = false
    this._filter = { status: 'all', type: '', category: '' }
    this._prefs = null
    this._built = false
    this._started = false
  }

  get pageSize() {
    return Math.min(200, Math.max(1, Number(this.getAttribute('page-size')) || 20))
  }

  static get properties() {
    return [...super.properties, 'view']
  }

  /** The tab shown: `history` or `preferences` (also the `view` attribute). */
  get view() {
    return this.getAttribute('view') == 'preferences' ? 'preferences' : 'history'
  }
  set view(v) {
    this.setAttribute('view', v)
    this.render()
    if (this.view == 'preferences' && this._started) this._loadPrefs()
  }

  _build() {
    const $ = (this.$ = {})
    this.shadowRoot.innerHTML = `<style>${CSS}</style>`
    const tab = (id) =>
      h('button', {
        role: 'tab',
        id: 'tab-' + id,
        type: 'button',
        'aria-controls': 'panel-' + id,
        onclick: () => this._show(id, true),
        onkeydown: (e) => this._tabKey(e),
      })
    $.tabH = tab('history')
    $.tabP = tab('preferences')
    $.tabs = h('div', { class: 'tabs', role: 'tablist' }, $.tabH, $.tabP)

    const select = (name, onchange) => h('select', { name, onchange })
    $.status = select('status', () => this._setFilter({ status: $.status.value }))
    $.type = select('type', () => this._setFilter({ type: $.type.value }))
    $.category = select('category', () => this._setFilter({ category: $.category.value }))
    $.lStatus = h('span')
    $.lType = h('span')
    $.lCategory = h('span')
    $.markAll = h('button', { type: 'button', class: 'act push', onclick: () => this.client && this.client.markAllRead().catch(() => {}) })
    $.count = h('p', { class: 'status', role: 'status' })
    $.list = h('ul', { class: 'list' })
    $.more = h('button', { type: 'button', class: 'act more', onclick: () => this._loadMore() })
    $.history = h(
      'section',
      { role: 'tabpanel', id: 'panel-history', 'aria-labelledby': 'tab-history' },
      h('div', { class: 'filters' }, h('label', null, $.lStatus, $.status), h('label', null, $.lType, $.type), h('label', null, $.lCategory, $.category), $.markAll),
      $.count,
      $.list,
      $.more,
    )

    $.mutedLegend = h('legend')
    $.mutedHint = h('p', { class: 'hint', id: 'muted-hint' })
    $.muted = h('ul', { class: 'muted', 'aria-describedby': 'muted-hint' })
    $.newCat = h('input', {
      type: 'text',
      name: 'category',
      autocomplete: 'off',
      list: 'known-categories',
      // Enter adds the category (instead of submitting the form).
      onkeydown: (e) => e.key == 'Enter' && (e.preventDefault(), this._addMuted()),
    })
    $.known = h('datalist', { id: 'known-categories' })
    $.lNewCat = h('span')
    $.add = h('button', { type: 'button', class: 'act', onclick: () => this._addMuted() })
    $.quietLegend = h('legend')
    $.quietOn = h('input', { type: 'checkbox', name: 'quiet', onchange: () => this._quietToggle() })
    $.lQuietOn = h('span')
    // Every edit goes into the draft at once, so a re-render (a live notification) keeps it.
    const edit = (k) => (e) => (this._current()[k] = e.target.value)
    $.start = h('input', { type: 'time', name: 'start', required: true, onchange: edit('start') })
    $.end = h('input', { type: 'time', name: 'end', required: true, onchange: edit('end') })
    $.tz = h('select', { name: 'tz', onchange: edit('tz') })
    $.lStart = h('span')
    $.lEnd = h('span')
    $.lTz = h('span')
    $.save = h('button', { type: 'submit', class: 'act primary' })
    $.saved = h('p', { class: 'status', role: 'status' })
    $.form = h(
      'form',
      { onsubmit: (e) => (e.preventDefault(), this._save()) },
      h('fieldset', null, $.mutedLegend, $.mutedHint, $.muted, h('div', { class: 'grid' }, h('label', null, $.lNewCat, $.newCat), $.add), $.known),
      h(
        'fieldset',
        null,
        $.quietLegend,
        h('label', { class: 'check' }, $.quietOn, $.lQuietOn),
        h('div', { class: 'grid' }, h('label', null, $.lStart, $.start), h('label', null, $.lEnd, $.end), h('label', null, $.lTz, $.tz)),
      ),
      $.save,
      $.saved,
    )
    $.prefs = h('section', { role: 'tabpanel', id: 'panel-preferences', 'aria-labelledby': 'tab-preferences' }, $.form)
    $.root = h('div', { class: 'root' }, $.tabs, $.history, $.prefs)
    this.shadowRoot.append($.root)
    this._built = true
  }

  render() {
    if (!this._built) this._build()
    const s = this.strings
    const $ = this.$
    $.root.setAttribute('dir', this.dir_)
    $.root.setAttribute('lang', this.lang_)
    $.tabH.textContent = s.history
    $.tabP.textContent = s.preferences
    const v = this.view
    for (const [t, p, id] of [
      [$.tabH, $.history, 'history'],
      [$.tabP, $.prefs, 'preferences'],
    ]) {
      t.setAttribute('aria-selected', String(v == id))
      t.tabIndex = v == id ? 0 : -1
      p.hidden = v != id
    }
    $.lStatus.textContent = s.show
    $.lType.textContent = s.type
    $.lCategory.textContent = s.category
    const opts = (sel, list, value) =>
      sel.replaceChildren(...list.map(([v, label]) => h('option', { value: v, selected: v == value, text: label })))
    opts($.status, [['all', s.all], ['unread', s.unreadOnly]], this._filter.status)
    opts($.type, [['', s.allTypes], ...TYPES.map((t) => [t, s.types[t]])], this._filter.type)
    this._renderCategories()
    $.markAll.textContent = s.markAll
    $.more.textContent = s.more
    $.mutedLegend.textContent = s.muted
    $.mutedHint.textContent = s.mutedHint
    $.lNewCat.textContent = s.addCategory
    $.add.textContent = s.add
    $.quietLegend.textContent = s.quiet
    $.lQuietOn.textContent = s.quietOn
    $.lStart.textContent = s.from
    $.lEnd.textContent = s.to
    $.lTz.textContent = s.tz
    $.save.textContent = s.save
    this._renderRows()
    this._renderPrefs()
  }

  _categories() {
    const set = new Set([...this._known, ...this._rows.map((n) => n.category).filter(Boolean)])
    if (this._prefs) for (const c of this._prefs.muted_categories) set.add(c)
    if (this._filter.category) set.add(this._filter.category)
    return [...set].sort()
  }

  /** The category filter's options and the preferences' suggestions: codes as values, labels as text. */
  _renderCategories() {
    const s = this.strings
    const $ = this.$
    const cats = this._categories()
    $.category.replaceChildren(
      ...[['', s.allCategories], ...cats.map((c) => [c, categoryLabel(c, s)])].map(([v, text]) =>
        h('option', { value: v, selected: v == this._filter.category, text }),
      ),
    )
    $.known.replaceChildren(...cats.map((c) => h('option', { value: c, label: categoryLabel(c, s) })))
  }

  /** A category seen for the first time (a live notification): offered from now on. */
  _learn(category) {
    if (!category || this._known.has(category)) return
    this._known.add(category)
    if (this._built) this._renderCategories()
  }

  _match(n) {
    const f = this._filter
    return (!f.type || n.type == f.type) && (!f.category || n.category == f.category)
  }

  /** One row of the history. */
  _row(n, now = Date.now()) {
    const s = this.strings
    const lang = this.lang_
    const type = s.types[n.type] ? n.type : 'info'
    const url = targetOf(n, this.getAttribute('related-url'))
    const title = url ? h('a', { href: url, text: n.title, onclick: (e) => this._follow(e, n, url) }) : n.title
    return h(
      'li',
      { class: 'row' + (n.is_read ? '' : ' unread'), 'data-id': n.id, 'data-type': type },
      h(
        'div',
        { class: 'main' },
        h('h3', null, title),
        h('p', { text: n.message }),
        h(
          'p',
          { class: 'meta' },
          h('span', { class: 'kind', text: s.types[type] }),
          n.category ? h('span', { class: 'cat', 'data-category': n.category, text: categoryLabel(n.category, s) }) : null,
          h('time', { datetime: n.created_at, title: absTime(n.created_at, lang), text: relTime(n.created_at, lang, now) }),
          h('span', { text: n.is_read ? s.read : s.unread }),
        ),
      ),
      n.is_read
        ? null
        : h('button', {
            type: 'button',
            class: 'act',
            'aria-label': s.markRead + ': ' + n.title,
            text: s.markRead,
            onclick: () => this.client && this.client.markRead(n.id).catch(() => {}),
          }),
    )
  }

  /** Redraws the whole list (a load, a filter); focus stays on the same row when it is still there. */
  _renderRows() {
    const $ = this.$
    const now = Date.now()
    const focused = this._focusedRow()
    $.list.replaceChildren(...this._rows.filter((n) => this._match(n)).map((n) => this._row(n, now)))
    this._refocus(focused)
    this._renderCount()
  }

  /** The row holding the focus, and whether its title link or its button had it. */
  _focusedRow() {
    const el = this.shadowRoot.activeElement
    const li = el && el.closest && el.closest('li.row')
    return li ? { id: li.dataset.id, button: el.tagName == 'BUTTON' } : null
  }

  _refocus(f) {
    if (!f) return
    const li = [...this.$.list.children].find((x) => x.dataset.id == f.id)
    const el = li && ((f.button && li.querySelector('button')) || li.querySelector('a') || li.querySelector('button'))
    if (el) el.focus()
  }

  _renderCount() {
    const s = this.strings
    const $ = this.$
    const shown = $.list.children.length
    $.count.textContent = this._error || (this._busy && !shown ? s.loading : !shown && this._done ? s.none : s.shown(shown))
    $.more.hidden = this._done
    $.more.disabled = this._busy
    if (this._done && shown) $.count.textContent += ' · ' + s.end
  }

  /** Moves the relative times on, in place (a redraw would take the focus away). */
  _tick() {
    const lang = this.lang_
    const now = Date.now()
    for (const t of this.$.list.querySelectorAll('time')) t.textContent = relTime(t.getAttribute('datetime'), lang, now)
  }

  async _follow(e, n, url) {
    e.preventDefault()
    if (!n.is_read && this.client)
      await Promise.race([this.client.markRead(n.id).catch(() => {}), new Promise((r) => setTimeout(r, 1500))])
    location.assign(url)
  }

  _show(view, focus) {
    this.view = view
    if (focus) (view == 'history' ? this.$.tabH : this.$.tabP).focus()
  }

  _tabKey(e) {
    const rtl = this.dir_ == 'rtl'
    const next = { ArrowRight: rtl ? -1 : 1, ArrowLeft: rtl ? 1 : -1, Home: 'h', End: 'e' }[e.key]
    if (next == null) return
    e.preventDefault()
    const order = ['history', 'preferences']
    const i = order.indexOf(this.view)
    const to = next == 'h' ? 0 : next == 'e' ? 1 : (i + next + 2) % 2
    this._show(order[to], true)
  }

  _setFilter(f) {
    const statusChanged = f.status && f.status != this._filter.status
    Object.assign(this._filter, f)
    if (statusChanged) return this._reset()
    this.render()
    this._fill()
  }

  _reset() {
    this._rows = []
    this._ids = new Set()
    this._cursor = null
    this._done = false
    this._gen = (this._gen || 0) + 1
    this.render()
    this._loadMore()
  }

  /** Loads pages until `page-size` more rows match the filters, or the history ends (at most 10 pages a click). */
  async _loadMore() {
    const c = this.client
    if (!c || this._busy || this._done) return
    this._busy = true
    this._error = ''
    this._renderRows()
    const gen = this._gen
    let matched = 0
    try {
      for (let pages = 0; pages < 10 && matched < this.pageSize && !this._done; pages++) {
        const page = await c.list({ status: this._filter.status, limit: this.pageSize, cursor: this._cursor || undefined })
        if (gen != this._gen) return
        for (const n of page.items)
          if (!this._ids.has(n.id)) {
            this._ids.add(n.id)
            this._rows.push(n)
            if (this._match(n)) matched++
          }
        this._cursor = page.next_cursor
        this._done = !page.next_cursor
      }
    } catch (e) {
      this._error = this.strings.loadFailed(e.message)
    } finally {
      if (gen == this._gen) this._busy = false
    }
    this.render()
  }

  /** After a filter change: fetch more when fewer than a page of rows match. */
  _fill() {
    if (this._rows.filter((n) => this._match(n)).length < this.pageSize) this._loadMore()
  }

  async _loadPrefs() {
    if (this._prefs || !this.client || this._prefsLoading) return
    this._prefsLoading = true
    try {
      this._prefs = await this.client.preferences()
      this._draft = null
      this.$.saved.textContent = ''
    } catch (e) {
      this.$.saved.textContent = this.strings.loadFailed(e.message)
    } finally {
      this._prefsLoading = false
    }
    this.render()
  }

  /** The form's state: what is on screen, initially the stored preferences. */
  _current() {
    if (!this._draft) {
      const p = this._prefs || { muted_categories: [], quiet_hours: null }
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
      this._draft = {
        muted: [...p.muted_categories],
        quiet: !!p.quiet_hours,
        start: (p.quiet_hours && p.quiet_hours.start) || '22:00',
        end: (p.quiet_hours && p.quiet_hours.end) || '07:00',
        tz: (p.quiet_hours && p.quiet_hours.tz) || zone,
      }
    }
    return this._draft
  }

  _renderPrefs() {
    const $ = this.$
    const s = this.strings
    const d = this._current()
    const known = new Set([...this._categories(), ...d.muted])
    const cats = [...known].sort()
    $.muted.replaceChildren(
      ...(cats.length
        ? cats.map((c) =>
            h(
              'li',
              null,
              h(
                'label',
                { class: 'check' },
                h('input', {
                  type: 'checkbox',
                  name: 'muted',
                  value: c,
                  checked: d.muted.includes(c),
                  onchange: (e) => {
                    d.muted = e.target.checked ? [...d.muted, c] : d.muted.filter((x) => x != c)
                  },
                }),
                categoryLabel(c, s),
              ),
            ),
          )
        : [h('li', { class: 'hint', text: s.noMuted })]),
    )
    $.quietOn.checked = d.quiet
    $.start.value = d.start
    $.end.value = d.end
    const zones = (Intl.supportedValuesOf && Intl.supportedValuesOf('timeZone')) || ['UTC']
    const all = zones.includes(d.tz) ? zones : [d.tz, ...zones]
    if ($.tz.options.length != all.length) $.tz.replaceChildren(...all.map((z) => h('option', { value: z, text: z })))
    $.tz.value = d.tz
    this._quietToggle(true)
  }

  _quietToggle(quiet) {
    const $ = this.$
    const d = this._current()
    if (!quiet) d.quiet = $.quietOn.checked
    for (const el of [$.start, $.end, $.tz]) el.disabled = !d.quiet
  }

  _addMuted() {
    const d = this._current()
    const c = this.$.newCat.value.trim()
    if (c && !d.muted.includes(c)) d.muted = [...d.muted, c]
    this.$.newCat.value = ''
    this._renderPrefs()
  }

  async _save() {
    const $ = this.$
    const s = this.strings
    const d = this._current()
    d.start = $.start.value
    d.end = $.end.value
    d.tz = $.tz.value
    for (const el of [$.start, $.end, $.tz]) el.removeAttribute('aria-invalid')
    const body = { muted_categories: d.muted, quiet_hours: d.quiet ? { start: d.start, end: d.end, tz: d.tz } : null }
    $.save.disabled = true
    try {
      this._prefs = await this.client.setPreferences(body)
      this._draft = null
      $.saved.textContent = s.saved
      $.saved.classList.remove('err')
      this.render()
      this.dispatchEvent(new CustomEvent('tidings-preferences', { bubbles: true, composed: true, detail: this._prefs }))
    } catch (e) {
      $.saved.textContent = s.failed(e.message)
      $.saved.classList.add('err')
      const bad = { 'quiet_hours.start': $.start, 'quiet_hours.end': $.end, 'quiet_hours.tz': $.tz }[e.field]
      if (bad) {
        bad.setAttribute('aria-invalid', 'true')
        bad.focus()
      }
    } finally {
      $.save.disabled = false
    }
  }

  connectedCallback() {
    super.connectedCallback()
    // Relative times move on.
    this._timer = setInterval(() => this._built && this._tick(), 60000)
  }

  disconnectedCallback() {
    super.disconnectedCallback()
    clearInterval(this._timer)
  }

  onState(s) {
    if (s == 'open' && !this._started) {
      this._started = true
      this._loadMore()
      this._loadCategories()
      if (this.view == 'preferences') this._loadPrefs()
    }
  }

  async _loadCategories() {
    try {
      for (const c of await this.client.categories()) this._known.add(c)
    } catch {
      // The filter then offers the categories of the rows loaded, as before.
    }
    if (this._built) this.render()
  }

  /**
   * A live notification: one row on top, nothing else redrawn, so a burst costs a
   * row each and the focus stays where the user put it.
   */
  onNotification(n) {
    if (this._ids.has(n.id) || !this._started) return
    if (this._filter.status == 'unread' && n.is_read) return
    this._ids.add(n.id)
    this._rows.unshift(n)
    this._learn(n.category)
    if (!this._built) return
    if (this._match(n)) this.$.list.prepend(this._row(n))
    this._renderCount()
  }

  /** Reads (from any tab): only the rows that changed are redrawn. */
  onRead({ ids, all }) {
    const at = new Date().toISOString()
    const changed = new Map()
    this._rows = this._rows.map((n) => {
      if (n.is_read || !(all || ids.includes(n.id))) return n
      const m = { ...n, is_read: true, read_at: at }
      changed.set(n.id, m)
      return m
    })
    if (!this._built || !changed.size) return
    const focused = this._focusedRow()
    for (const li of [...this.$.list.children]) {
      const m = changed.get(li.dataset.id)
      if (m) li.replaceWith(this._row(m))
    }
    this._refocus(focused)
  }
}

if (!customElements.get('tidings-center')) customElements.define('tidings-center', TidingsCenter)
