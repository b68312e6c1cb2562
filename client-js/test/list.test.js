import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, note, fakeFetch } from './support/fakes.js'

test('list() pages through /v1/me/notifications with status, limit and cursor', async () => {
  const pages = {
    '': { items: [note('n3'), note('n2')], next_cursor: 'c2' },
    c2: { items: [note('n1')], next_cursor: null },
  }
  const fetch = fakeFetch((call) => [200, pages[call.query.cursor || '']])
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  const first = await c.list({ status: 'unread', limit: 2 })
  assert.deepEqual(
    first.items.map((n) => n.id),
    ['n3', 'n2'],
  )
  assert.equal(first.next_cursor, 'c2')
  const second = await c.list({ status: 'unread', limit: 2, cursor: first.next_cursor })
  assert.deepEqual(second, { items: [note('n1')], next_cursor: null })
  await c.list()
  assert.deepEqual(
    fetch.calls.map((x) => [x.method, x.path, x.query, x.auth]),
    [
      ['GET', '/v1/me/notifications', { status: 'unread', limit: '2' }, 'Bearer t1'],
      ['GET', '/v1/me/notifications', { status: 'unread', limit: '2', cursor: 'c2' }, 'Bearer t1'],
      ['GET', '/v1/me/notifications', {}, 'Bearer t1'],
    ],
  )
  c.close()
})

test('list() does not feed the dedupe set: a listed notification still arrives live once', async () => {
  const fetch = fakeFetch(() => [200, { items: [note('n1')], next_cursor: null }])
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  const got = []
  c.on('notification', (n) => got.push(n.id))
  await c.list()
  await w.clock.tick(0)
  w.sockets[0].hello(1)
  w.sockets[0].recv('notification', note('n1'))
  assert.deepEqual(got, ['n1'])
  c.close()
})

test('list() errors carry the status and code of the hub error body', async () => {
  const fetch = fakeFetch(() => [400, { error: { code: 'bad_query', message: 'limit too large', field: 'limit' } }])
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  await assert.rejects(c.list({ limit: 500 }), (e) => {
    assert.equal(e.status, 400)
    assert.equal(e.code, 'bad_query')
    assert.equal(e.message, 'limit too large')
    return true
  })
  c.close()
})

test('a non-JSON error body still rejects with the status', async () => {
  const fetch = async () => ({ status: 503, ok: false, json: async () => JSON.parse('<html>') })
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  await assert.rejects(c.list(), { status: 503, message: 'HTTP 503' })
  c.close()
})
