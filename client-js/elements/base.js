import { connect } from '../src/index.js'
import { strings, dirOf } from './i18n.js'

/**
 * What `<tidings-bell>` and `<tidings-center>` share: a client built from the
 * attributes (`url`, `token`, `transport`, `share`) or the `getToken` /
 * `options` properties, the language and direction, and the theme variables.
 *
 * The client starts on the first microtask after the element is in the
 * document and has a token source, so a page may set `getToken` right after
 * creating the element. Changing `url`, `token`, `transport` or `share` (or
 * setting `getToken`) reconnects; removing the element closes the client.
 * A page that already has a client passes it as the `client` property: the
 * element then uses it and never closes it.
 */
export class TidingsElement extends HTMLElement {
  static get observedAttributes() {
    return ['url', 'token', 'transport', 'share', 'lang', 'dir']
  }

  /** Properties a page may set before the element is defined. */
  static get properties() {
    return ['getToken', 'client', 'options', 'strings']
  }

  constructor() {
    super()
    this._getToken = null
    this._client = null
    this._own = false
    this._offs = []
    this._strings = null
    this.attachShadow({ mode: 'open' })
  }

  /** `({ expired }) => token`: see the library's `getToken`. */
  get getToken() {
    return this._getToken
  }
  set getToken(fn) {
    this._getToken = fn
    this._restart()
  }

  /** The library client in use (`null` before it starts). */
  get client() {
    return this._client
  }
  set client(c) {
    this._stop()
    this._client = c
    this._own = false
    if (c && this.isConnected) this._attach(c)
  }

  /** Extra `connect()` options (backoff, share, pingInterval, ...), set before the element starts. */
  get options() {
    return this._options || {}
  }
  set options(o) {
    this._options = o
    this._restart()
  }

  /** Strings over the built-in ones (for another language, or other wording). */
  get strings() {
    return strings(this.lang_, this._strings)
  }
  set strings(s) {
    this._strings = s
    this.render()
  }

  /** The language: the element's `lang`, the nearest ancestor's, the page's, else the browser's. */
  get lang_() {
    const el = this.closest('[lang]')
    return (el && el.getAttribute('lang')) || document.documentElement.lang || navigator.language || 'en'
  }

  /** `dir` of the element or an ancestor when set, else from the language. */
  get dir_() {
    const el = this.closest('[dir]')
    const d = el && el.getAttribute('dir')
    return d == 'rtl' || d == 'ltr' ? d : dirOf(this.lang_)
  }

  connectedCallback() {
    // A property set before the element was defined (script order) sits on the
    // instance and hides the class's setter: take it and set it again.
    for (const k of this.constructor.properties)
      if (Object.prototype.hasOwnProperty.call(this, k)) {
        const v = this[k]
        delete this[k]
        this[k] = v
      }
    this.render()
    queueMicrotask(() => this._start())
  }

  disconnectedCallback() {
    this._stop()
  }

  attributeChangedCallback(name, old, value) {
    if (old === value) return
    if (name == 'lang' || name == 'dir') this.render()
    else this._restart()
  }

  _start() {
    if (!this.isConnected || this._client) return
    const token = this.getAttribute('token') || undefined
    if (!token && !this._getToken) return
    const share = this.getAttribute('share')
    const opts = {
      url: this.getAttribute('url') || undefined,
      token,
      getToken: this._getToken || undefined,
      transport: this.getAttribute('transport') || 'auto',
      ...(share != null ? { share: share == 'false' ? false : share } : {}),
      ...this._options,
    }
    this._own = true
    this._attach((this._client = connect(opts)))
  }

  _attach(c) {
    this._offs = [
      c.on('state', (s) => this._state(s)),
      c.on('unread', (n) => this.onUnread(n)),
      c.on('notification', (n) => this.onNotification(n)),
      c.on('read', (r) => this.onRead(r)),
    ]
    this._state(c.state)
    if (c.unread != null) this.onUnread(c.unread)
  }

  _state(s) {
    const was = this.dataset.state
    this.dataset.state = s
    this.dataset.transport = (this._client && this._client.transport) || ''
    this.onState(s, was)
  }

  _stop() {
    for (const off of this._offs) off()
    this._offs = []
    if (this._client && this._own) this._client.close()
    if (this._own) this._client = null
  }

  _restart() {
    if (!this._own && this._client) return
    this._stop()
    if (this.isConnected) queueMicrotask(() => this._start())
  }

  // Hooks for the elements.
  render() {}
  onState() {}
  onUnread() {}
  onNotification() {}
  onRead() {}
}

/** Builds an element tree: h('div', { class: 'x', onclick }, child, 'text'). Text is never parsed as HTML. */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag)
  for (const k in props || {}) {
    const v = props[k]
    if (v == null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k == 'text') el.textContent = v
    else el.setAttribute(k, v === true ? '' : v)
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid)
  return el
}

/**
 * The theme: every colour, size and font is a custom property with a default,
 * set on the page (`tidings-bell { --tidings-accent: #0f766e }`) or any ancestor.
 */
export const THEME = `
:host {
  --_accent: var(--tidings-accent, #1d4ed8);
  --_bg: var(--tidings-bg, #ffffff);
  --_fg: var(--tidings-fg, #111827);
  --_muted: var(--tidings-muted, #4b5563);
  --_border: var(--tidings-border, #e5e7eb);
  --_hover: var(--tidings-hover, #f3f4f6);
  --_unread-bg: var(--tidings-unread-bg, #eff6ff);
  --_radius: var(--tidings-radius, 10px);
  --_shadow: var(--tidings-shadow, 0 10px 30px rgb(0 0 0 / 0.15), 0 2px 6px rgb(0 0 0 / 0.08));
  --_info: var(--tidings-info, #1d4ed8);
  --_success: var(--tidings-success, #15803d);
  --_warning: var(--tidings-warning, #b45309);
  --_error: var(--tidings-error, #b91c1c);
  font-family: var(--tidings-font, system-ui, -apple-system, 'Segoe UI', 'Noto Sans', 'Noto Sans Arabic', sans-serif);
  color: var(--_fg);
}
[hidden] { display: none !important; }
.sr { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
[data-type=info] { --_type: var(--_info); }
[data-type=success] { --_type: var(--_success); }
[data-type=warning] { --_type: var(--_warning); }
[data-type=error] { --_type: var(--_error); }
:focus-visible { outline: 2px solid var(--tidings-focus, var(--_accent)); outline-offset: 2px; }
`
