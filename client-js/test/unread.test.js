import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, hubFetch, fakeFetch } from './support/fakes.js'

const start = (w, opts = {}) =>
  connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env, ...opts })

test('unread_count with a lower version than the last applied is ignored', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  const s = w.sockets[0]
  s.hello(5, { unread_version: 10 }) // the hub names it unread_version in hello
  s.recv('unread_count', { unread: 1, version: 9 }) // older than hello's snapshot
  assert.equal(c.unread, 5)
  s.recv('unread_count', { unread: 6, version: 12 })
  s.recv('unread_count', { unread: 4, version: 11 }) // late, from another node
  assert.equal(c.unread, 6)
  s.recv('unread_count', { unread: 6, version: 12 }) // same again: no event
  s.recv('unread_count', { unread: 2, version: 14 })
  s.recv('unread_count', { unread: 9, version: 13 })
  assert.equal(c.unread, 2)
  assert.deepEqual(log.unread, [5, 6, 2])
  c.close()
})

test('without versions every count applies in arrival order', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  const s = w.sockets[0]
  s.hello(1)
  s.recv('unread_count', { unread: 3 })
  s.recv('unread_count', { unread: 2 })
  assert.deepEqual(log.unread, [1, 3, 2])
  c.close()
})

test("hello is a fresh snapshot: it resets the version baseline (a restarted hub's counter)", async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  w.sockets[0].hello(2)
  w.sockets[0].recv('unread_count', { unread: 3, version: 50 })
  w.sockets[0].drop(1012)
  await w.clock.tick(500)
  w.sockets[1].hello(1)
  w.sockets[1].recv('unread_count', { unread: 2, version: 1 })
  assert.deepEqual(log.unread, [2, 3, 1, 2])
  c.close()
})

test('while a connection is open, a REST count without version does not override the pushed one', async () => {
  // The hub answers markRead with a count that a later push has already superseded.
  const fetch = fakeFetch(() => [200, { unread: 0 }])
  const w = world({ fetch })
  const c = start(w, { transport: 'sse' })
  await w.clock.tick(0)
  const es = w.sources[0]
  es.open()
  es.emit('unread_count', { unread: 3 })
  await c.markRead('a')
  assert.equal(c.unread, 3)
  es.emit('unread_count', { unread: 2 })
  assert.equal(c.unread, 2)
  c.close()
})

test('with no connection open, REST answers keep the count right', async () => {
  const fetch = fakeFetch((call) => [200, { unread: call.path.includes('/a/') ? 4 : 3 }])
  const w = world({ fetch })
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  w.sockets[0].hello(5)
  w.sockets[0].drop(1006) // reconnecting
  await c.markRead(['a', 'b']) // answers 4 and 3: the lowest is the latest
  assert.equal(c.unread, 3)
  await c.markAllRead()
  assert.deepEqual(log.unread, [5, 3])
  c.close()
})

test('the probe after a failed attempt gives the count while WebSockets fail', async () => {
  const w = world({ fetch: hubFetch({ unread: 7 }) })
  const c = start(w, { transport: 'ws' })
  await w.clock.tick(0)
  assert.equal(c.unread, null)
  w.sockets[0].drop(1006)
  await w.clock.tick(0)
  assert.equal(c.unread, 7)
  c.close()
})
