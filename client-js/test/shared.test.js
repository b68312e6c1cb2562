import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, record, note, hubFetch } from './support/fakes.js'

const openTab = (w, tabOpts = {}, opts = {}) => {
  const tab = w.tab(tabOpts)
  const client = connect({ url: 'http://hub.test', token: 't' + tab.id, env: tab.env, ...opts })
  return { tab, client, log: record(client) }
}
const leaders = (tabs) => tabs.filter((t) => t.client.isLeader).map((t) => t.tab.id)
const live = (w) => w.sockets.filter((s) => !s.closedByClient && s.readyState != 3)

test('Web Locks: one leader holds the only connection; followers get every event relayed', async () => {
  const w = world({ fetch: hubFetch() })
  const tabs = [openTab(w), openTab(w), openTab(w)]
  await w.clock.tick(0)
  assert.deepEqual(leaders(tabs), [1])
  assert.equal(w.sockets.length, 1)
  assert.equal(w.sockets[0].query.token, 't1')
  const s = w.sockets[0]
  s.hello(4)
  s.recv('notification', note('n1'))
  s.recv('unread_count', { unread: 5, version: 2 })
  s.recv('read', { ids: ['n0'] })
  await w.clock.tick(0)
  for (const t of tabs) {
    assert.equal(t.client.state, 'open', 'tab ' + t.tab.id)
    assert.equal(t.client.transport, 'ws')
    assert.equal(t.client.unread, 5)
    assert.equal(t.client.lastId, 'n1')
    assert.deepEqual(
      t.log.notification.map((n) => n.id),
      ['n1'],
    )
    assert.deepEqual(t.log.unread, [4, 5])
    assert.deepEqual(t.log.read, [{ ids: ['n0'], all: false }])
    assert.deepEqual(t.log.state, ['open'])
  }
  assert.equal(w.sockets.length, 1)
  for (const t of tabs) t.client.close()
})

test('a follower marks read over REST with its own token; the leader over its socket', async () => {
  const w = world({ fetch: hubFetch() })
  const [a, b] = [openTab(w), openTab(w)]
  await w.clock.tick(0)
  w.sockets[0].hello(2)
  await w.clock.tick(0)
  await b.client.markRead(['x'])
  await a.client.markRead(['y'])
  assert.deepEqual(
    w.fetch.calls.map((x) => [x.method, x.path, x.auth]),
    [['POST', '/v1/me/notifications/x/read', 'Bearer t2']],
  )
  assert.deepEqual(w.sockets[0].sent, [{ type: 'mark_read', ids: ['y'] }])
  a.client.close()
  b.client.close()
})

test('a tab that opens later is synced: state, unread and resume point', async () => {
  const w = world()
  const a = openTab(w)
  await w.clock.tick(0)
  w.sockets[0].hello(3, { unread_version: 7 })
  w.sockets[0].recv('notification', note('n8'))
  const b = openTab(w)
  await w.clock.tick(0)
  assert.equal(b.client.isLeader, false)
  assert.equal(b.client.state, 'open')
  assert.equal(b.client.unread, 3)
  assert.equal(b.client.lastId, 'n8')
  assert.deepEqual(b.log.notification, [])
  w.sockets[0].recv('unread_count', { unread: 2, version: 6 }) // older: ignored everywhere
  await w.clock.tick(0)
  assert.equal(b.client.unread, 3)
  a.client.close()
  b.client.close()
})

test('the leader tab closes: the next tab takes over and resumes from the last relayed id', async () => {
  const w = world()
  const tabs = [openTab(w), openTab(w), openTab(w)]
  await w.clock.tick(0)
  w.sockets[0].hello(1)
  w.sockets[0].recv('notification', note('n1'))
  w.sockets[0].recv('notification', note('n2'))
  await w.clock.tick(0)
  tabs[0].client.close()
  await w.clock.tick(0)
  assert.deepEqual(leaders(tabs), [2])
  assert.equal(w.sockets.length, 2)
  assert.deepEqual(w.sockets[1].query, { token: 't2', since: 'n2' })
  w.sockets[1].hello(1)
  w.sockets[1].recv('notification', note('n2')) // replay overlap
  w.sockets[1].recv('notification', note('n3'))
  await w.clock.tick(0)
  for (const t of tabs.slice(1))
    assert.deepEqual(
      t.log.notification.map((n) => n.id),
      ['n1', 'n2', 'n3'],
    )
  assert.deepEqual(
    tabs[0].log.notification.map((n) => n.id),
    ['n1', 'n2'],
  )
  for (const t of tabs) t.client.close()
})

test('the leader tab dies without a word: the browser frees the lock, a follower takes over', async () => {
  const w = world()
  const tabs = [openTab(w), openTab(w)]
  await w.clock.tick(0)
  w.sockets[0].hello(0)
  w.sockets[0].recv('notification', note('n4'))
  await w.clock.tick(0)
  tabs[0].tab.crash()
  await w.clock.tick(0)
  assert.equal(tabs[1].client.isLeader, true)
  assert.deepEqual(w.sockets[1].query, { token: 't2', since: 'n4' })
  tabs[1].client.close()
})

test('heartbeat election without Web Locks: one leader, takeover after 3 missed heartbeats', async () => {
  const w = world({ latency: 5 })
  // The hub's hello comes only after 20 s of election checks: no hello timeout here.
  const a = openTab(w, { withLocks: false, random: () => 0.3 }, { helloTimeout: 0 })
  await w.clock.tick(499)
  assert.equal(w.sockets.length, 0, 'first listens half a heartbeat for a leader')
  await w.clock.tick(1)
  assert.equal(a.client.isLeader, true)
  const b = openTab(w, { withLocks: false, random: () => 0.2 })
  const c = openTab(w, { withLocks: false, random: () => 0.1 })
  await w.clock.tick(20000)
  assert.deepEqual(leaders([a, b, c]), [1])
  assert.equal(w.sockets.length, 1)
  w.sockets[0].hello(0)
  w.sockets[0].recv('notification', note('n6'))
  await w.clock.tick(5)
  assert.deepEqual(
    c.log.notification.map((n) => n.id),
    ['n6'],
  )
  a.tab.crash()
  await w.clock.tick(2000)
  assert.deepEqual(leaders([b, c]), [])
  await w.clock.tick(1000)
  // b and c both time out together; the lower id (c: 0.1) stays leader.
  await w.clock.tick(5000)
  assert.deepEqual(leaders([b, c]), [3])
  assert.equal(live(w).length, 1)
  assert.equal(live(w)[0].query.since, 'n6')
  assert.equal(live(w)[0].query.token, 't3')
  b.client.close()
  c.client.close()
})

test('heartbeat election: two tabs starting together settle on one leader', async () => {
  const w = world({ latency: 5 }) // both claim before hearing the other
  const a = openTab(w, { withLocks: false, random: () => 0.8 })
  const b = openTab(w, { withLocks: false, random: () => 0.4 })
  await w.clock.tick(500)
  assert.deepEqual(leaders([a, b]), [1, 2], 'both claimed')
  assert.equal(w.sockets.length, 2)
  await w.clock.tick(5000)
  assert.deepEqual(leaders([a, b]), [2])
  assert.equal(live(w).length, 1)
  assert.equal(live(w)[0].tab, 2)
  a.client.close()
  b.client.close()
})

test('heartbeat election: a leader that closes says bye and a follower takes over at once', async () => {
  const w = world()
  const a = openTab(w, { withLocks: false, random: () => 0.1 })
  await w.clock.tick(500)
  const b = openTab(w, { withLocks: false, random: () => 0.2 })
  await w.clock.tick(3000)
  assert.deepEqual(leaders([a, b]), [1])
  a.client.close()
  await w.clock.tick(50) // random() * hb / 4 = 0.2 * 250
  assert.equal(b.client.isLeader, true)
  assert.equal(live(w).length, 1)
  b.client.close()
})

test('no BroadcastChannel, or share: false: one connection per tab', async () => {
  const w = world()
  const a = openTab(w, { withChannel: false })
  const b = openTab(w, { withChannel: false })
  const c = openTab(w, {}, { share: false })
  const d = openTab(w, {}, { share: false })
  await w.clock.tick(0)
  assert.deepEqual(leaders([a, b, c, d]), [1, 2, 3, 4])
  assert.deepEqual(
    w.sockets.map((s) => s.query.token),
    ['t1', 't2', 't3', 't4'],
  )
  for (const t of [a, b, c, d]) t.client.close()
})

test('different share keys do not share', async () => {
  const w = world()
  const a = openTab(w, {}, { share: 'user-1' })
  const b = openTab(w, {}, { share: 'user-2' })
  const c = openTab(w, {}, { share: 'user-1' })
  await w.clock.tick(0)
  assert.deepEqual(leaders([a, b, c]), [1, 2])
  assert.equal(w.sockets.length, 2)
  for (const t of [a, b, c]) t.client.close()
})
