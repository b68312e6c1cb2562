import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, note, hubFetch } from './support/fakes.js'

const start = (w, opts = {}) =>
  connect({ url: 'http://hub.test/', token: 't1', share: false, env: w.tab().env, ...opts })

test('connects to /v1/ws with the token, opens at hello', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  assert.equal(c.state, 'connecting')
  await w.clock.tick(0)
  assert.equal(w.sockets.length, 1)
  assert.equal(w.sockets[0].url, 'ws://hub.test/v1/ws?token=t1')
  assert.equal(c.unread, null)
  w.sockets[0].hello(3)
  assert.equal(c.state, 'open')
  assert.equal(c.transport, 'ws')
  assert.equal(c.unread, 3)
  assert.deepEqual(log.state, ['open'])
  assert.deepEqual(log.unread, [3])
  c.close()
  assert.equal(c.state, 'closed')
  assert.equal(w.sockets[0].closedByClient, true)
})

test('https becomes wss', async () => {
  const w = world()
  const c = start(w, { url: 'https://hub.example.com' })
  await w.clock.tick(0)
  assert.equal(w.sockets[0].url, 'wss://hub.example.com/v1/ws?token=t1')
  c.close()
})

test('resume: a reconnect sends since = the last seen id; the replayed overlap is not repeated', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  const s0 = w.sockets[0]
  s0.hello(0)
  s0.recv('notification', note('n1'))
  s0.recv('notification', note('n2'))
  s0.drop(1012)
  assert.equal(c.state, 'reconnecting')
  await w.clock.tick(500)
  assert.equal(w.sockets.length, 2)
  assert.deepEqual(w.sockets[1].query, { token: 't1', since: 'n2' })
  const s1 = w.sockets[1]
  s1.hello(1)
  s1.recv('notification', note('n2')) // overlap: already seen
  s1.recv('notification', note('n3'))
  s1.recv('notification', note('n1')) // older, already seen
  assert.deepEqual(
    log.notification.map((n) => n.id),
    ['n1', 'n2', 'n3'],
  )
  assert.equal(c.lastId, 'n3')
  assert.deepEqual(log.state, ['open', 'reconnecting', 'open'])
  c.close()
})

test('the since option is the first resume point', async () => {
  const w = world()
  const c = start(w, { since: 'n41' })
  await w.clock.tick(0)
  assert.deepEqual(w.sockets[0].query, { token: 't1', since: 'n41' })
  c.close()
})

test('dedupe keeps a bounded set of recent ids', async () => {
  const w = world()
  const c = start(w, { dedupe: 2 })
  const log = record(c)
  await w.clock.tick(0)
  const s = w.sockets[0]
  s.hello(0)
  for (const id of ['a', 'b', 'c', 'c', 'b', 'a']) s.recv('notification', note(id))
  // 'a' fell out of the 2-id window when 'c' came, so its replay is emitted again.
  assert.deepEqual(
    log.notification.map((n) => n.id),
    ['a', 'b', 'c', 'a'],
  )
  c.close()
})

for (const code of [4008, 1012, 1001, 1000, 1006]) {
  test(`close ${code} after hello: reconnect with backoff and since`, async () => {
    const w = world()
    const c = start(w)
    await w.clock.tick(0)
    w.sockets[0].hello(0)
    w.sockets[0].recv('notification', note('n9'))
    w.sockets[0].drop(code)
    await w.clock.tick(0)
    assert.deepEqual(w.clock.pending(), [500])
    await w.clock.tick(500)
    assert.equal(w.sockets.length, 2)
    assert.equal(w.sockets[1].query.since, 'n9')
    assert.equal(w.fetch.calls.length, 0, 'a drop after hello needs no probe')
    c.close()
  })
}

test('read, read_all and error frames become events; pong is silent', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  const s = w.sockets[0]
  s.hello(2)
  s.recv('read', { ids: ['a', 'b'] })
  s.recv('read_all', {})
  s.recv('error', { code: 'bad_frame', message: 'unknown type' })
  s.recv('pong', {})
  s.recv('something_new', { x: 1 })
  assert.deepEqual(log.read, [
    { ids: ['a', 'b'], all: false },
    { ids: [], all: true },
  ])
  assert.deepEqual(log.error, [{ code: 'bad_frame', message: 'unknown type' }])
  assert.equal(c.state, 'open')
  c.close()
})

test('markRead and markAllRead over WebSocket send frames, not REST', async () => {
  const w = world()
  const c = start(w)
  await w.clock.tick(0)
  const s = w.sockets[0]
  s.hello(2)
  await c.markRead(['a', 'b'])
  await c.markRead('c')
  await c.markRead([])
  await c.markAllRead()
  assert.deepEqual(s.sent, [
    { type: 'mark_read', ids: ['a', 'b'] },
    { type: 'mark_read', ids: ['c'] },
    { type: 'mark_all_read' },
  ])
  assert.equal(w.fetch.calls.length, 0)
  c.close()
})

test('markRead before the socket is open goes over REST', async () => {
  const w = world({ fetch: hubFetch() })
  const c = start(w)
  await w.clock.tick(0)
  await c.markRead(['a'])
  assert.deepEqual(w.sockets[0].sent, [])
  assert.deepEqual(
    w.fetch.calls.map((x) => [x.method, x.path, x.auth]),
    [['POST', '/v1/me/notifications/a/read', 'Bearer t1']],
  )
  c.close()
})

test('ping every pingInterval; a socket silent for a whole interval is replaced', async () => {
  const w = world()
  const c = start(w, { pingInterval: 10000 })
  const log = record(c)
  await w.clock.tick(0)
  const s = w.sockets[0]
  s.hello(0)
  await w.clock.tick(10000)
  assert.deepEqual(s.sent, [{ type: 'ping' }])
  s.recv('pong', {})
  await w.clock.tick(10000)
  assert.deepEqual(s.sent, [{ type: 'ping' }, { type: 'ping' }])
  assert.equal(c.state, 'open')
  await w.clock.tick(10000) // no pong came back
  assert.equal(s.closedByClient, true)
  assert.equal(c.state, 'reconnecting')
  await w.clock.tick(500)
  assert.equal(w.sockets.length, 2)
  assert.deepEqual(log.state, ['open', 'reconnecting'])
  c.close()
})

test('close() stops everything: no reconnect afterwards', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  w.sockets[0].hello(0)
  c.close()
  w.sockets[0].drop(1006)
  await w.clock.tick(120000)
  assert.equal(w.sockets.length, 1)
  assert.deepEqual(log.state, ['open', 'closed'])
  assert.deepEqual(w.clock.pending(), [])
})

test('a listener that throws does not break the others', async () => {
  const w = world()
  const c = start(w)
  const got = []
  const uncaught = []
  // The emitter rethrows a listener's error on a microtask: catch it there.
  const qm = globalThis.queueMicrotask
  globalThis.queueMicrotask = (fn) => {
    try {
      fn()
    } catch (e) {
      uncaught.push(e.message)
    }
  }
  c.on('notification', () => {
    throw new Error('boom')
  })
  const off = c.on('notification', (n) => got.push(n.id))
  await w.clock.tick(0)
  w.sockets[0].hello(0)
  w.sockets[0].recv('notification', note('x1'))
  off()
  w.sockets[0].recv('notification', note('x2'))
  globalThis.queueMicrotask = qm
  assert.deepEqual(got, ['x1'])
  assert.deepEqual(uncaught, ['boom', 'boom'])
  c.close()
})
