import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, note, hubFetch } from './support/fakes.js'

/** A getToken that hands out t1, t2, ... and records how it was asked. */
const tokens = (list = ['t1', 't2', 't3', 't4']) => {
  const asked = []
  const getToken = (ctx) => {
    asked.push(ctx)
    return Promise.resolve(list[asked.length - 1])
  }
  getToken.asked = asked
  return getToken
}

test('connect needs a token or getToken', () => {
  assert.throws(() => connect({ url: 'http://hub.test' }), TypeError)
})

test('close 4001 on a live socket: getToken({ expired: true }), then reconnect with the new token and since', async () => {
  const w = world()
  const getToken = tokens()
  const c = connect({ url: 'http://hub.test', getToken, share: false, env: w.tab().env })
  await w.clock.tick(0)
  assert.deepEqual(getToken.asked, [{ expired: false }])
  assert.equal(w.sockets[0].query.token, 't1')
  w.sockets[0].hello(0)
  w.sockets[0].recv('notification', note('n5'))
  w.sockets[0].drop(4001)
  await w.clock.tick(500)
  assert.deepEqual(getToken.asked, [{ expired: false }, { expired: true }])
  assert.deepEqual(w.sockets[1].query, { token: 't2', since: 'n5' })
  w.sockets[1].hello(0)
  assert.equal(c.state, 'open')
  // A plain drop keeps the token: no new getToken call.
  w.sockets[1].drop(1006 + 6)
  await w.clock.tick(500)
  assert.equal(w.sockets[2].query.token, 't2')
  assert.equal(getToken.asked.length, 2)
  c.close()
})

test('a WebSocket refused before hello with a 401 probe refreshes the token (no SSE fallback)', async () => {
  const fetch = hubFetch({ valid: (auth) => auth != 'Bearer t1' })
  const w = world({ fetch })
  const getToken = tokens()
  const c = connect({ url: 'http://hub.test', getToken, share: false, env: w.tab().env })
  await w.clock.tick(0)
  w.sockets[0].drop(1006) // how a browser shows a 401 before the upgrade
  await w.clock.tick(0)
  assert.deepEqual(
    fetch.calls.map((x) => [x.path, x.auth]),
    [['/v1/me/unread-count', 'Bearer t1']],
  )
  await w.clock.tick(500)
  assert.deepEqual(getToken.asked, [{ expired: false }, { expired: true }])
  assert.equal(w.sockets.length, 2)
  assert.equal(w.sockets[1].query.token, 't2')
  w.sockets[1].hello(1)
  assert.equal(c.state, 'open')
  assert.equal(w.sources.length, 0)
  c.close()
})

test('SSE: a 401 (seen by the probe) refreshes the token and resumes with last_event_id', async () => {
  const fetch = hubFetch({ valid: (auth) => auth != 'Bearer t1' })
  const w = world({ fetch })
  const getToken = tokens()
  const c = connect({ url: 'http://hub.test', getToken, transport: 'sse', since: 'n7', share: false, env: w.tab().env })
  await w.clock.tick(0)
  assert.deepEqual(w.sources[0].query, { token: 't1', last_event_id: 'n7' })
  w.sources[0].fail()
  assert.equal(w.sources[0].closed, true)
  await w.clock.tick(500)
  assert.deepEqual(getToken.asked, [{ expired: false }, { expired: true }])
  assert.deepEqual(w.sources[1].query, { token: 't2', last_event_id: 'n7' })
  c.close()
})

test('a static token rejected: state unauthorized, an error event, no further attempt', async () => {
  const fetch = hubFetch({ valid: () => false })
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 'old', share: false, env: w.tab().env })
  const log = record(c)
  await w.clock.tick(0)
  w.sockets[0].drop(1006)
  await w.clock.tick(0)
  assert.equal(c.state, 'unauthorized')
  assert.deepEqual(log.error, [{ code: 'unauthorized', message: 'no valid token' }])
  await w.clock.tick(600000)
  assert.equal(w.sockets.length, 1)
  assert.equal(w.sources.length, 0)
  assert.deepEqual(log.state, ['reconnecting', 'unauthorized'])
})

test('a static token closed with 4001: unauthorized, never an anonymous reconnect', async () => {
  const w = world()
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  await w.clock.tick(0)
  w.sockets[0].hello(0)
  w.sockets[0].drop(4001)
  await w.clock.tick(600000)
  assert.equal(c.state, 'unauthorized')
  assert.equal(w.sockets.length, 1)
})

test('getToken yielding no token: no connection at all, state unauthorized', async () => {
  const w = world()
  const c = connect({ url: 'http://hub.test', getToken: async () => null, share: false, env: w.tab().env })
  const log = record(c)
  await w.clock.tick(60000)
  assert.equal(w.sockets.length, 0)
  assert.equal(w.sources.length, 0)
  assert.equal(c.state, 'unauthorized')
  assert.equal(log.error[0].code, 'unauthorized')
  await assert.rejects(c.list(), { code: 'unauthorized' })
  assert.equal(w.fetch.calls.length, 0)
})

test('getToken failing (network) is retried with backoff', async () => {
  const w = world()
  let n = 0
  const getToken = async () => {
    if (++n < 3) throw new Error('auth server down')
    return 'tok'
  }
  const c = connect({ url: 'http://hub.test', getToken, share: false, env: w.tab().env })
  await w.clock.tick(0)
  assert.equal(w.sockets.length, 0)
  assert.deepEqual(w.clock.pending(), [500])
  await w.clock.tick(500)
  assert.deepEqual(w.clock.pending(), [1000])
  await w.clock.tick(1000)
  assert.equal(n, 3)
  assert.equal(w.sockets[0].query.token, 'tok')
  c.close()
})

test('REST 401: one refresh through getToken, one retry', async () => {
  const fetch = hubFetch({ valid: (auth) => auth == 'Bearer t2', items: [] })
  const w = world({ fetch })
  const getToken = tokens()
  const c = connect({ url: 'http://hub.test', getToken, transport: 'sse', share: false, env: w.tab().env })
  const page = await c.list()
  assert.deepEqual(page, { items: [], next_cursor: null })
  assert.deepEqual(
    fetch.calls.map((x) => x.auth),
    ['Bearer t1', 'Bearer t2'],
  )
  assert.deepEqual(getToken.asked, [{ expired: false }, { expired: true }])
  c.close()
})

test('REST 401 twice: the call fails with status 401', async () => {
  const fetch = hubFetch({ valid: () => false })
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', getToken: tokens(), transport: 'sse', share: false, env: w.tab().env })
  await assert.rejects(c.list(), { status: 401, code: 'unauthorized', message: 'token expired' })
  assert.equal(fetch.calls.length, 2)
  c.close()
})

test('concurrent refreshes share one getToken call', async () => {
  const fetch = hubFetch({ valid: (auth) => auth == 'Bearer t2' })
  const w = world({ fetch })
  const getToken = tokens()
  const c = connect({ url: 'http://hub.test', getToken, transport: 'sse', share: false, env: w.tab().env })
  await w.clock.tick(0)
  await Promise.all([c.list(), c.list(), c.markAllRead()])
  assert.deepEqual(getToken.asked, [{ expired: false }, { expired: true }])
  c.close()
})
