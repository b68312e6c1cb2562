// The bell's connection through a hub restart, blocked WebSockets and an expiring token.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rig, until, bellState } from './support.js'

let r
before(async () => (r = await rig()))
after(async () => r && (await r.close()))

const connected = (page) =>
  until(() => page.evaluate(() => document.querySelector('tidings-bell').dataset.state == 'open'), 15000, 'bell connected')

const noRepeats = async (page) => {
  const seen = await page.evaluate(() => window.rec.seen)
  assert.equal(new Set(seen).size, seen.length, 'a notification event repeated: ' + seen.join(','))
  const ids = (await bellState(page)).items.map((i) => i.id)
  assert.equal(new Set(ids).size, ids.length, 'a menu item repeated: ' + ids.join(','))
  return seen
}

test('the bell survives a hub restart: reconnects, resumes, shows nothing twice', async () => {
  const user = 'u-restart'
  const c = await r.context()
  const page = await r.open(c, 'bell', { user, nonav: 1 })
  await connected(page)
  const before = [await r.hub.publish(user, { title: 'Before 1' }), await r.hub.publish(user, { title: 'Before 2' })]
  await until(async () => (await bellState(page)).badge == '2', 2000, 'badge 2')
  await page.click('tidings-bell >> .bell')
  await until(async () => (await bellState(page)).items.length == 2, 3000, 'two items')

  await r.hub.stop()
  await until(async () => (await bellState(page)).state == 'reconnecting', 5000, 'bell reconnecting')
  await r.hub.start()
  // Published as soon as the hub is back: the bell gets it live or in the resume replay.
  const during = await r.hub.publish(user, { title: 'Right after the restart' })
  await connected(page)
  await until(async () => (await bellState(page)).badge == '3', 30000, 'badge 3 after the restart')
  const after = await r.hub.publish(user, { title: 'After' })
  await until(async () => (await bellState(page)).items[0]?.id == after, 3000, 'live item after the restart')
  assert.equal((await bellState(page)).badge, '4')
  const seen = await noRepeats(page)
  assert.deepEqual(seen, [...before, during, after])
  assert.deepEqual(
    (await bellState(page)).items.map((i) => i.id),
    [after, during, ...before.reverse()],
  )
  assert.deepEqual(page.errors, [])
  await c.close()
})

test('with WebSockets blocked the bell falls back to SSE, and live updates and reads still work', async () => {
  const user = 'u-sse'
  const c = await r.context()
  // Something between the browser and the hub kills every WebSocket.
  await c.routeWebSocket('**/v1/ws*', (ws) => ws.close({ code: 1008, reason: 'blocked by proxy' }))
  const page = await r.open(c, 'bell', { user, nonav: 1 })
  await connected(page)
  const s = await bellState(page)
  assert.equal(s.transport, 'sse')
  const t0 = Date.now()
  const id = await r.hub.publish(user, { title: 'Over SSE', type: 'warning' })
  await until(async () => (await bellState(page)).badge == '1', 1000, 'badge 1 within 1 s over SSE')
  assert.ok(Date.now() - t0 < 1000)
  await page.click('tidings-bell >> .bell')
  await page.click(`tidings-bell >> .item[data-id="${id}"]`)
  await until(async () => (await bellState(page)).badge == '', 3000, 'read over REST clears the badge')
  assert.equal(await r.hub.unread(user), 0)
  await noRepeats(page)
  await c.close()
})

for (const transport of ['ws', 'sse'])
  test(`an expired token is replaced through getToken (${transport})`, async () => {
    const user = 'u-expiry-' + transport
    const c = await r.context()
    // The first token lives 2 s; getToken hands out hour-long ones after that.
    const page = await r.open(c, 'bell', { user, transport, ttl: [2, 3600], nonav: 1 })
    await connected(page)
    await until(
      () => page.evaluate(() => window.rec.tokenCalls.filter((t) => t.el == 'tidings-bell').length >= 2),
      15000,
      'getToken asked again',
    )
    const calls = await page.evaluate(() => window.rec.tokenCalls.filter((t) => t.el == 'tidings-bell').map((t) => t.expired))
    assert.deepEqual(calls, [false, true])
    await connected(page)
    await r.hub.publish(user, { title: 'After the refresh' })
    await until(async () => (await bellState(page)).badge == '1', 2000, 'badge after the refresh')
    assert.equal((await bellState(page)).transport, transport)
    await c.close()
  })
