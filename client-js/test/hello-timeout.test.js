import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, fakeFetch, hubFetch } from './support/fakes.js'

const start = (w, opts = {}) =>
  connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env, ...opts })

test('a WebSocket that opens but sends no hello within helloTimeout is closed and retried with backoff', async () => {
  // The hub is down behind a proxy that accepts the upgrade: REST does not answer either.
  const fetch = fakeFetch(() => {
    throw new TypeError('Failed to fetch')
  })
  const w = world({ fetch })
  const c = start(w, { helloTimeout: 5000, pingInterval: 0, backoff: { base: 1000, max: 30000 } })
  const log = record(c)
  await w.clock.tick(0)
  const s0 = w.sockets[0]
  s0.readyState = 1
  s0.onopen && s0.onopen({})
  await w.clock.tick(4999)
  assert.equal(s0.closedByClient, false, 'still waiting for hello just before the timeout')
  assert.equal(c.state, 'connecting')
  await w.clock.tick(1)
  assert.equal(s0.closedByClient, true, 'closed at the timeout')
  assert.equal(c.state, 'reconnecting')
  await w.clock.tick(0)
  // random() = 0.5 → 0.5 × min(30 s, 1 s × 2^0) = 500 ms, then 0.5 × 2 s = 1000 ms.
  assert.deepEqual(w.clock.pending(), [500])
  await w.clock.tick(500)
  assert.equal(w.sockets.length, 2)
  const s1 = w.sockets[1]
  await w.clock.tick(5000)
  assert.equal(s1.closedByClient, true, 'the second one times out too')
  await w.clock.tick(0)
  assert.deepEqual(w.clock.pending(), [1000], 'the backoff grows')
  await w.clock.tick(1000)
  assert.equal(w.sockets.length, 3)
  // This one says hello in time: open, and its timer is gone (no close later).
  w.sockets[2].hello(2)
  assert.equal(c.state, 'open')
  assert.equal(c.unread, 2)
  await w.clock.tick(60000)
  assert.equal(w.sockets[2].closedByClient, false)
  assert.equal(w.sockets.length, 3)
  assert.deepEqual(log.state, ['reconnecting', 'open'])
  c.close()
})

test('a hello timeout with the hub answering REST counts toward the SSE fallback', async () => {
  const w = world({ fetch: hubFetch({ unread: 1 }) })
  const c = start(w, { helloTimeout: 3000 })
  await w.clock.tick(0)
  await w.clock.tick(3000)
  assert.equal(w.sockets[0].closedByClient, true)
  await w.clock.tick(500)
  assert.equal(w.sockets.length, 2)
  await w.clock.tick(3000)
  await w.clock.tick(0)
  assert.equal(w.sources.length, 1, 'two silent WebSockets while REST answers: SSE')
  assert.equal(w.sockets.length, 2)
  c.close()
})

test('the default hello timeout is 10 s; 0 turns it off', async () => {
  const w = world()
  const c = start(w)
  await w.clock.tick(0)
  await w.clock.tick(9999)
  assert.equal(w.sockets[0].closedByClient, false)
  await w.clock.tick(1)
  assert.equal(w.sockets[0].closedByClient, true)
  c.close()

  const w2 = world()
  const c2 = start(w2, { helloTimeout: 0 })
  await w2.clock.tick(120000)
  assert.equal(w2.sockets.length, 1)
  assert.equal(w2.sockets[0].closedByClient, false)
  c2.close()
})
