import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, note, hubFetch, fakeFetch } from './support/fakes.js'

const start = (w, opts = {}) =>
  connect({ url: 'http://hub.test', token: 't1', transport: 'sse', share: false, env: w.tab().env, ...opts })

test('SSE frames: hello, notification (deduped), unread_count, read, read_all, error', async () => {
  const w = world()
  const c = start(w)
  const log = record(c)
  await w.clock.tick(0)
  const es = w.sources[0]
  es.open()
  es.emit('hello', { user_id: 'u-1', connection_id: 'c', unread: 1 })
  es.emit('notification', note('n1'), 'n1')
  es.emit('notification', note('n1'), 'n1')
  es.emit('unread_count', { unread: 2 })
  es.emit('read', { ids: ['n1'] })
  es.emit('read_all', {})
  es.emit('error', { code: 'bad', message: 'bad frame' })
  assert.equal(c.state, 'open')
  assert.equal(c.transport, 'sse')
  assert.deepEqual(
    log.notification.map((n) => n.id),
    ['n1'],
  )
  assert.deepEqual(log.unread, [1, 2])
  assert.deepEqual(log.read, [
    { ids: ['n1'], all: false },
    { ids: [], all: true },
  ])
  assert.deepEqual(log.error, [{ code: 'bad', message: 'bad frame' }])
  assert.equal(es.closed, false, "the hub's error event is not a connection error")
  c.close()
  assert.equal(es.closed, true)
})

test('SSE drop after open: own reconnect with backoff and last_event_id, no probe', async () => {
  const w = world()
  const c = start(w)
  await w.clock.tick(0)
  w.sources[0].open()
  w.sources[0].emit('notification', note('n2'), 'n2')
  w.sources[0].fail()
  assert.equal(w.sources[0].closed, true, 'the EventSource does not retry on its own')
  assert.equal(c.state, 'reconnecting')
  await w.clock.tick(0)
  assert.deepEqual(w.clock.pending(), [500])
  await w.clock.tick(500)
  assert.deepEqual(w.sources[1].query, { token: 't1', last_event_id: 'n2' })
  assert.equal(w.fetch.calls.length, 0)
  c.close()
})

test('markRead over SSE: one REST POST per id with the bearer token', async () => {
  const fetch = hubFetch()
  const w = world({ fetch })
  const c = start(w)
  await w.clock.tick(0)
  w.sources[0].open()
  await c.markRead(['a/1', 'b'])
  assert.deepEqual(
    fetch.calls.map((x) => [x.method, x.path, x.auth]),
    [
      ['POST', '/v1/me/notifications/a%2F1/read', 'Bearer t1'],
      ['POST', '/v1/me/notifications/b/read', 'Bearer t1'],
    ],
  )
  c.close()
})

test('markAllRead over SSE: POST read-all', async () => {
  const fetch = hubFetch()
  const w = world({ fetch })
  const c = start(w)
  await w.clock.tick(0)
  w.sources[0].open()
  await c.markAllRead()
  assert.deepEqual(
    fetch.calls.map((x) => [x.method, x.path, x.auth]),
    [['POST', '/v1/me/notifications/read-all', 'Bearer t1']],
  )
  c.close()
})

test('markRead of an unknown id rejects with the hub error', async () => {
  const fetch = fakeFetch(() => [404, { error: { code: 'not_found', message: 'no such notification' } }])
  const w = world({ fetch })
  const c = start(w)
  await assert.rejects(c.markRead('zz'), { status: 404, code: 'not_found', message: 'no such notification' })
  c.close()
})

test("the hub's token_expired error event ends the stream: refresh through getToken, resume", async () => {
  const w = world()
  const asked = []
  const getToken = (ctx) => (asked.push(ctx), 't' + asked.length)
  const c = connect({ url: 'http://hub.test', getToken, transport: 'sse', share: false, env: w.tab().env })
  const log = record(c)
  await w.clock.tick(0)
  w.sources[0].open()
  w.sources[0].emit('notification', note('n1'), 'n1')
  w.sources[0].emit('error', { code: 'token_expired', message: 'token expired' })
  assert.equal(w.sources[0].closed, true)
  assert.equal(c.state, 'reconnecting')
  await w.clock.tick(500)
  assert.deepEqual(asked, [{ expired: false }, { expired: true }])
  assert.deepEqual(w.sources[1].query, { token: 't2', last_event_id: 'n1' })
  assert.deepEqual(log.error, [], 'a close reason is not an app error')
  assert.equal(w.fetch.calls.length, 0)
  c.close()
})

for (const code of ['slow_consumer', 'shutdown', 'unavailable'])
  test(`the hub's ${code} error event: reconnect with backoff, same token, last_event_id`, async () => {
    const w = world()
    const c = start(w)
    await w.clock.tick(0)
    w.sources[0].open()
    w.sources[0].emit('notification', note('n1'), 'n1')
    w.sources[0].emit('error', { code, message: 'bye' })
    assert.equal(w.sources[0].closed, true)
    await w.clock.tick(0)
    assert.deepEqual(w.clock.pending(), [500])
    await w.clock.tick(500)
    assert.deepEqual(w.sources[1].query, { token: 't1', last_event_id: 'n1' })
    c.close()
  })
