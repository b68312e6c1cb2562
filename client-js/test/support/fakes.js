// Fakes for every browser global the library uses, driven by hand from tests.
// One `world()` is one browser profile: a virtual clock, a hub (WebSocket,
// EventSource and fetch fakes) and a BroadcastChannel bus plus Web Locks
// shared by the tabs opened in it.

/** Runs every pending microtask (and whatever they chain). */
export const flush = () => new Promise((r) => setImmediate(r))

export function fakeClock() {
  let now = 0
  let seq = 0
  const timers = new Map()
  const clock = {
    /** Every delay ever asked for, in order. */
    delays: [],
    get now() {
      return now
    },
    setTimeout(fn, ms = 0) {
      const id = ++seq
      timers.set(id, { at: now + ms, fn, id, ms })
      clock.delays.push(ms)
      return id
    },
    clearTimeout(id) {
      timers.delete(id)
    },
    /** Delays of the timers still pending, earliest first. */
    pending() {
      return [...timers.values()].sort((a, b) => a.at - b.at || a.id - b.id).map((t) => t.at - now)
    },
    /** Advances virtual time by `ms`, firing due timers in order. */
    async tick(ms) {
      const end = now + ms
      for (let fired = 0; ; fired++) {
        if (fired > 10000) throw new Error('runaway timers: over 10000 fired in one tick')
        await flush()
        const next = [...timers.values()]
          .filter((t) => t.at <= end)
          .sort((a, b) => a.at - b.at || a.id - b.id)[0]
        if (!next) break
        now = next.at
        timers.delete(next.id)
        next.fn()
      }
      now = end
      await flush()
    },
  }
  return clock
}

export function fakeWebSocket() {
  const sockets = []
  class FakeWebSocket {
    constructor(url) {
      this.url = url
      this.readyState = 0
      this.sent = []
      this.closedByClient = false
      sockets.push(this)
    }
    get query() {
      return Object.fromEntries(new URL(this.url).searchParams)
    }
    send(s) {
      this.sent.push(JSON.parse(s))
    }
    close() {
      this.closedByClient = true
      this.readyState = 3
    }
    // The hub's side.
    recv(type, data) {
      this.onmessage && this.onmessage({ data: JSON.stringify({ type, data }) })
    }
    hello(unread = 0, extra = {}) {
      this.readyState = 1
      this.onopen && this.onopen({})
      this.recv('hello', { user_id: 'u-1', connection_id: 'c-' + sockets.indexOf(this), unread, ...extra })
    }
    /** The hub (or the network) ends the connection with `code`. */
    drop(code = 1006) {
      this.readyState = 3
      this.onclose && this.onclose({ code })
    }
  }
  FakeWebSocket.sockets = sockets
  return FakeWebSocket
}

export function fakeEventSource() {
  const sources = []
  class FakeEventSource {
    constructor(url) {
      this.url = url
      this.readyState = 0
      this.listeners = {}
      this.closed = false
      sources.push(this)
    }
    get query() {
      return Object.fromEntries(new URL(this.url).searchParams)
    }
    addEventListener(type, fn) {
      ;(this.listeners[type] ||= []).push(fn)
    }
    close() {
      this.closed = true
      this.readyState = 2
    }
    // The hub's side.
    open() {
      this.readyState = 1
      this.onopen && this.onopen({ type: 'open' })
    }
    emit(type, data, id = '') {
      for (const fn of this.listeners[type] || []) fn({ type, data: JSON.stringify(data), lastEventId: id })
      if (type == 'error' && this.onerror) this.onerror({ type, data: JSON.stringify(data) })
    }
    /** A connection failure (as an HTTP 401 or a network error looks). */
    fail() {
      this.readyState = 2
      for (const fn of this.listeners.error || []) fn({ type: 'error' })
      this.onerror && this.onerror({ type: 'error' })
    }
  }
  FakeEventSource.sources = sources
  return FakeEventSource
}

/**
 * `handler(call)` answers `[status, body]`, or throws for a network error.
 * Calls are recorded as `{ method, path, query, auth }`.
 */
export function fakeFetch(handler) {
  const calls = []
  const fetch = async (url, init = {}) => {
    const u = new URL(url)
    const call = {
      method: init.method || 'GET',
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      auth: init.headers && init.headers.Authorization,
    }
    if (init.body !== undefined) {
      call.type = init.headers && init.headers['Content-Type']
      call.body = JSON.parse(init.body)
    }
    calls.push(call)
    const [status, body] = handler(call)
    return { status, ok: status >= 200 && status < 300, json: async () => body }
  }
  fetch.calls = calls
  return fetch
}

/** The hub's REST side with a fixed unread count and token check. */
export const hubFetch = ({ unread = 0, valid = () => true, items = [] } = {}) =>
  fakeFetch((c) => {
    if (!valid(c.auth)) return [401, { error: { code: 'unauthorized', message: 'token expired' } }]
    if (c.path == '/v1/me/unread-count') return [200, { unread }]
    if (c.path == '/v1/me/notifications') return [200, { items, next_cursor: null }]
    if (c.path.endsWith('/read') || c.path.endsWith('/read-all')) return [200, { unread: 0 }]
    return [404, { error: { code: 'not_found', message: 'no' } }]
  })

/** Messages arrive on a microtask, or after `latency` ms of `clock` when given. */
export function fakeBroadcast(clock, latency = 0) {
  const chans = new Set()
  const later = latency ? (fn) => clock.setTimeout(fn, latency) : queueMicrotask
  const forTab = (tab) =>
    class FakeBroadcastChannel {
      constructor(name) {
        this.name = name
        this.tab = tab
        chans.add(this)
      }
      postMessage(m) {
        if (!chans.has(this)) throw new Error('InvalidStateError: channel closed')
        const data = structuredClone(m)
        for (const c of chans)
          if (c !== this && c.name == this.name)
            later(() => chans.has(c) && c.onmessage && c.onmessage({ data }))
      }
      close() {
        chans.delete(this)
      }
    }
  return {
    forTab,
    crashTab(tab) {
      for (const c of chans) if (c.tab == tab) chans.delete(c)
    },
  }
}

/** Web Locks (exclusive mode only), with the browser's release on tab death. */
export function fakeLocks() {
  const held = new Map()
  const queues = new Map()
  const q = (name) => queues.get(name) || queues.set(name, []).get(name)
  const grant = (name) => {
    if (held.has(name) || !q(name).length) return
    const req = q(name).shift()
    held.set(name, req)
    queueMicrotask(async () => {
      let out
      let err
      try {
        out = await req.cb({ name, mode: 'exclusive' })
      } catch (e) {
        err = e
      }
      if (held.get(name) !== req) return // its tab died: already released
      held.delete(name)
      err ? req.reject(err) : req.resolve(out)
      grant(name)
    })
  }
  return {
    holder: (name) => held.get(name)?.tab,
    forTab: (tab) => ({
      request(name, opts, cb) {
        return new Promise((resolve, reject) => {
          const req = { tab, cb, resolve, reject }
          if (opts.signal)
            opts.signal.addEventListener('abort', () => {
              const i = q(name).indexOf(req)
              if (i >= 0) {
                q(name).splice(i, 1)
                reject(new Error('AbortError'))
              }
            })
          q(name).push(req)
          grant(name)
        })
      },
    }),
    crashTab(tab) {
      for (const [name, list] of queues) queues.set(name, list.filter((r) => r.tab != tab))
      for (const [name, req] of held)
        if (req.tab == tab) {
          held.delete(name)
          grant(name)
        }
    },
  }
}

/**
 * One browser profile. `tab(options)` gives the `env` for one tab's
 * `connect()`, plus `crash()`: the tab dies without running any code (its
 * timers stop, its channel and locks go, its sockets drop).
 */
export function world({ fetch = hubFetch(), latency = 0 } = {}) {
  const clock = fakeClock()
  const WebSocket = fakeWebSocket()
  const EventSource = fakeEventSource()
  const bus = fakeBroadcast(clock, latency)
  const locks = fakeLocks()
  let n = 0
  const tab = ({ withLocks = true, withChannel = true, random = () => 0.5, ws = true } = {}) => {
    const id = ++n
    let dead = false
    const mine = new Set()
    const TabWS = class extends WebSocket {
      constructor(url) {
        super(url)
        this.tab = id
      }
    }
    const env = {
      WebSocket: ws ? TabWS : undefined,
      EventSource,
      fetch,
      BroadcastChannel: withChannel ? bus.forTab(id) : undefined,
      locks: withLocks ? locks.forTab(id) : undefined,
      random,
      setTimeout(fn, ms) {
        if (dead) return 0
        const t = clock.setTimeout(fn, ms)
        mine.add(t)
        return t
      },
      clearTimeout: clock.clearTimeout,
    }
    return {
      id,
      env,
      crash() {
        dead = true
        for (const t of mine) clock.clearTimeout(t)
        bus.crashTab(id)
        locks.crashTab(id)
        for (const s of WebSocket.sockets) if (s.tab == id) s.closedByClient = true
      },
    }
  }
  return { clock, WebSocket, EventSource, fetch, locks, tab, sockets: WebSocket.sockets, sources: EventSource.sources }
}

/** Records the events of a client: `log.notification`, `log.unread`, ... */
export function record(client) {
  const log = { notification: [], unread: [], read: [], state: [], error: [] }
  for (const type in log) client.on(type, (v) => log[type].push(v))
  return log
}

export const note = (id, extra = {}) => ({
  id,
  user_id: 'u-1',
  title: 'New appointment',
  message: 'Booked ' + id,
  type: 'info',
  is_read: false,
  read_at: null,
  created_at: '2026-11-27T10:00:00Z',
  updated_at: '2026-11-27T10:00:00Z',
  ...extra,
})
