import { emitter } from './emitter.js'
import { createAuth } from './auth.js'
import { createApi } from './api.js'
import { createInbox } from './inbox.js'
import { createConnection } from './connection.js'
import { elect, solo } from './shared.js'
import { qs } from './util.js'

export { backoff } from './backoff.js'

/**
 * Connects to a Tidings hub. See README.md for the options, events and the
 * tab-sharing behaviour.
 *
 * Layout: `connection.js` (transport choice, reconnect, token refresh) drives
 * `ws.js` / `sse.js`; every frame goes through `inbox.js` (dedupe, resume
 * point, unread count); `shared.js` elects the one tab that holds the
 * connection and relays its frames to the others; `api.js` does REST.
 */
export function connect(opts = {}) {
  if (!opts.token && !opts.getToken) throw new TypeError('Tidings: token or getToken is required')
  const g = globalThis
  const o = opts.env || {}
  const st = o.setTimeout || g.setTimeout
  const ct = o.clearTimeout || g.clearTimeout
  const f = o.fetch || g.fetch
  // Browser functions are called without a receiver (`env.fetch(...)` would
  // throw "Illegal invocation"): wrap them.
  const env = {
    WebSocket: g.WebSocket,
    EventSource: g.EventSource,
    BroadcastChannel: g.BroadcastChannel,
    locks: g.navigator && g.navigator.locks,
    random: Math.random,
    ...o,
    setTimeout: (fn, ms) => st(fn, ms),
    clearTimeout: (id) => ct(id),
    fetch: (u, i) => f(u, i),
  }
  const em = emitter()
  const box = createInbox(em.emit, opts.since, opts.dedupe)
  const auth = createAuth(opts)
  const base = String(opts.url ?? (g.location ? g.location.origin : '')).replace(/\/+$/, '')
  const api = createApi(env, base, auth)
  let state = 'connecting'
  let transport = null
  let conn = null
  let leader = false
  let share = null
  const post = (m) => share && share.post(m)

  const setState = (s, tr) => {
    transport = tr
    if (leader) post({ t: 'st', s, tr })
    if (s != state) em.emit('state', (state = s))
  }
  // A count from a REST answer may be older than one already pushed: while a
  // connection is open the pushed `unread_count` wins, unless it has a version.
  const restUnread = (b) => b && (b.version != null || state != 'open') && box.set(b.unread, b.version)
  const probe = () =>
    api('GET', '/v1/me/unread-count', false).then(
      (b) => (restUnread(b), 'ok'),
      (e) => (e.status == 401 || e.code == 'unauthorized' ? 'auth' : 'down'),
    )

  const name = 'tidings:' + (typeof opts.share == 'string' ? opts.share : base)
  share = (opts.share === false ? solo : elect)(env, name, opts.heartbeat || 1000, {
    lead() {
      leader = true
      conn = createConnection(env, {
        base,
        mode: opts.transport || 'auto',
        ping: opts.pingInterval ?? 25000,
        hello: opts.helloTimeout ?? 10000,
        backoff: opts.backoff,
        fallbackAfter: opts.fallbackAfter || 2,
        auth,
        probe,
        lastId: () => box.lastId,
        frame(type, d) {
          box.ingest(type, d)
          post({ t: 'f', type, d })
        },
        state: setState,
        denied: () => em.emit('error', { code: 'unauthorized', message: 'no valid token' }),
      })
    },
    follow() {
      leader = false
      if (conn) conn.close()
      conn = null
    },
    msg(m) {
      if (leader) {
        if (m.t == 'hi')
          post({ t: 'sync', s: state, tr: transport, u: box.unread, v: box.version, id: box.lastId })
      } else if (m.t == 'f') box.ingest(m.type, m.d)
      else if (m.t == 'st') setState(m.s, m.tr)
      else if (m.t == 'sync') {
        if (m.id) box.lastId = m.id
        box.set(m.u, m.v, true)
        setState(m.s, m.tr)
      }
    },
  })

  return {
    get unread() {
      return box.unread
    },
    get state() {
      return state
    },
    get transport() {
      return transport
    },
    get isLeader() {
      return leader
    },
    get lastId() {
      return box.lastId
    },
    on: em.on,
    off: em.off,
    async markRead(ids) {
      ids = [].concat(ids)
      if (!ids.length || (conn && conn.send({ type: 'mark_read', ids }))) return
      const rs = await Promise.all(
        ids.map((id) => api('POST', '/v1/me/notifications/' + encodeURIComponent(id) + '/read')),
      )
      // The answers may come in any order: the lowest count is the latest.
      let best
      for (const r of rs) if (r && !(best && best.unread <= r.unread)) best = r
      restUnread(best)
    },
    async markAllRead() {
      if (!(conn && conn.send({ type: 'mark_all_read' })))
        restUnread(await api('POST', '/v1/me/notifications/read-all'))
    },
    list({ cursor, status, limit } = {}) {
      return api('GET', '/v1/me/notifications' + qs({ status, limit, cursor }))
    },
    preferences() {
      return api('GET', '/v1/me/preferences')
    },
    setPreferences(prefs) {
      return api('PUT', '/v1/me/preferences', true, prefs)
    },
    async categories() {
      return (await api('GET', '/v1/me/categories')).categories
    },
    close() {
      if (state == 'closed') return
      if (conn) conn.close()
      conn = null
      leader = false
      share.close()
      setState('closed', null)
    },
  }
}
