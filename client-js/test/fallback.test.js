import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, note, fakeFetch, hubFetch } from './support/fakes.js'

const start = (w, opts = {}, tab = {}) =>
  connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab(tab).env, ...opts })

test('auto: two WebSocket failures before hello while the hub answers REST → SSE', async () => {
  const w = world({ fetch: hubFetch({ unread: 4 }) })
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  w.sockets[0].drop(1006)
  await w.clock.tick(0)
  assert.deepEqual(w.clock.pending(), [500]) // first failure: plain backoff
  await w.clock.tick(500)
  w.sockets[1].readyState = 1
  w.sockets[1].drop(1006) // upgrade accepted, then cut before hello (a proxy)
  await w.clock.tick(0)
  assert.equal(w.sockets.length, 2)
  assert.equal(w.sources.length, 1)
  assert.equal(w.sources[0].url, 'http://hub.test/v1/sse?token=t1')
  assert.equal(c.unread, 4, 'the probe already told the count')
  w.sources[0].open()
  assert.equal(c.state, 'open')
  assert.equal(c.transport, 'sse')
  w.sources[0].emit('notification', note('n1'), 'n1')
  assert.deepEqual(
    log.notification.map((n) => n.id),
    ['n1'],
  )
  // It stays on SSE: a drop reconnects over SSE with last_event_id.
  w.sources[0].fail()
  await w.clock.tick(500)
  assert.equal(w.sockets.length, 2)
  assert.deepEqual(w.sources[1].query, { token: 't1', last_event_id: 'n1' })
  c.close()
})

test('auto: the fallback resumes from the last id seen over WebSocket', async () => {
  const w = world({ fetch: hubFetch() })
  const c = start(w, { fallbackAfter: 1 })
  await w.clock.tick(0)
  w.sockets[0].hello(0)
  w.sockets[0].recv('notification', note('n3'))
  w.sockets[0].drop(1006)
  await w.clock.tick(500)
  w.sockets[1].drop(1006) // now blocked
  await w.clock.tick(0)
  assert.deepEqual(w.sources[0].query, { token: 't1', last_event_id: 'n3' })
  c.close()
})

test("transport: 'ws' never falls back", async () => {
  const w = world({ fetch: hubFetch() })
  // Sockets that never get a hello are dropped by hand here (helloTimeout has its own test).
  const c = start(w, { transport: 'ws', helloTimeout: 0 })
  for (let i = 0; i < 5; i++) {
    await w.clock.tick(0)
    w.sockets.at(-1).drop(1006)
    await w.clock.tick(60000)
  }
  assert.equal(w.sockets.length, 6)
  assert.equal(w.sources.length, 0)
  c.close()
})

test('auto: a hub that does not answer at all is down, not blocking WebSockets: no fallback', async () => {
  const fetch = fakeFetch(() => {
    throw new TypeError('Failed to fetch')
  })
  const w = world({ fetch })
  const c = start(w, { helloTimeout: 0 })
  for (let i = 0; i < 4; i++) {
    await w.clock.tick(0)
    w.sockets.at(-1).drop(1006)
    await w.clock.tick(60000)
  }
  assert.equal(w.sources.length, 0)
  assert.equal(w.sockets.length, 5)
  c.close()
})

test('auto: a failure after hello does not count toward the fallback', async () => {
  const w = world({ fetch: hubFetch() })
  const c = start(w, { helloTimeout: 0 })
  for (let i = 0; i < 4; i++) {
    await w.clock.tick(0)
    w.sockets.at(-1).hello(0)
    w.sockets.at(-1).drop(1006)
    await w.clock.tick(60000)
  }
  assert.equal(w.sources.length, 0)
  assert.equal(w.fetch.calls.length, 0)
  c.close()
})

test('a WebSocket constructor that throws (CSP) counts as blocked', async () => {
  const w = world({ fetch: hubFetch() })
  const tab = w.tab()
  tab.env.WebSocket = class {
    constructor() {
      throw new Error('SecurityError')
    }
  }
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: tab.env })
  await w.clock.tick(600)
  assert.equal(w.sources.length, 1)
  c.close()
})

test("no WebSocket in the browser, or transport: 'sse': SSE straight away", async () => {
  const w = world()
  const a = start(w, {}, { ws: false })
  const b = start(w, { transport: 'sse' })
  await w.clock.tick(0)
  assert.equal(w.sockets.length, 0)
  assert.deepEqual(
    w.sources.map((s) => s.url),
    ['http://hub.test/v1/sse?token=t1', 'http://hub.test/v1/sse?token=t1'],
  )
  a.close()
  b.close()
})
