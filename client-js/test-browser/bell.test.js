// <tidings-bell> against a real hub in a real browser: badge, menu, keyboard, tabs.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rig, until, bellState } from './support.js'

let r
before(async () => (r = await rig()))
after(async () => r && (await r.close()))

const open = async (user, query = {}) => {
  const c = await r.context()
  const page = await r.open(c, 'bell', { user, ...query })
  await until(() => page.evaluate(() => document.querySelector('tidings-bell').dataset.state == 'open'), 10000, 'bell connected')
  return page
}

test('the badge shows a REST publish within a second, and 99+ above 99', async () => {
  const user = 'u-badge'
  const page = await open(user)
  assert.equal((await bellState(page)).badge, '')
  const t0 = Date.now()
  await r.hub.publish(user, { title: 'Lab results ready', type: 'success' })
  await until(async () => (await bellState(page)).badge == '1', 1000, 'badge 1 within 1 s')
  const took = Date.now() - t0
  assert.ok(took < 1000, `badge after ${took} ms`)
  const s = await bellState(page)
  assert.equal(s.label, 'Notifications, 1 unread')
  assert.equal(s.transport, 'ws')
  await Promise.all(Array.from({ length: 99 }, (_, i) => r.hub.publish(user, { title: 'Bulk ' + i })))
  await until(async () => (await bellState(page)).badge == '99+', 5000, 'badge 99+')
  assert.equal((await bellState(page)).label, 'Notifications, 100 unread')
  assert.deepEqual(page.errors, [])
  await page.close()
})

test('the menu lists the latest notifications with title, message, relative time and type', async () => {
  const user = 'u-menu'
  await r.hub.publish(user, { title: 'Older', message: 'first one', type: 'warning' })
  const id = await r.hub.publish(user, {
    title: 'Patient arrived',
    message: 'Sara Haddad is in the waiting room',
    type: 'error',
    related: { type: 'appointment', id: '8a6f' },
  })
  const page = await open(user, { nonav: 1 })
  await page.click('tidings-bell >> .bell')
  await until(async () => (await bellState(page)).items.length == 2, 5000, 'two items')
  const s = await bellState(page)
  assert.equal(s.expanded, 'true')
  assert.deepEqual(
    s.items.map(({ id, type, unread, title, message, time }) => ({ id, type, unread, title, message, time })),
    [
      { id, type: 'error', unread: true, title: 'Patient arrived', message: 'Sara Haddad is in the waiting room', time: 'now' },
      { id: s.items[1].id, type: 'warning', unread: true, title: 'Older', message: 'first one', time: 'now' },
    ],
  )
  // The type colour is the themed custom property.
  const colour = await page.evaluate(() => {
    const el = document.querySelector('tidings-bell').shadowRoot.querySelector('.item[data-type=error]')
    return getComputedStyle(el).borderInlineStartColor
  })
  assert.equal(colour, 'rgb(185, 28, 28)')
  // A live one goes on top while the menu is open.
  const live = await r.hub.publish(user, { title: 'Live one', message: 'pushed' })
  await until(async () => (await bellState(page)).items[0]?.id == live, 2000, 'live item on top')
  // "See all" leads to the history page.
  const href = await page.evaluate(() => document.querySelector('tidings-bell').shadowRoot.querySelector('.see').getAttribute('href'))
  assert.equal(href, 'center.html')
  await page.close()
})

test('clicking a notification marks it read and follows its link or the related-url pattern', async () => {
  const user = 'u-click'
  const viaPattern = await r.hub.publish(user, { title: 'Appointment moved', related: { type: 'appointment', id: 'a 1' } })
  const page = await open(user)
  await until(async () => (await bellState(page)).badge == '1', 3000, 'badge 1')
  await page.click('tidings-bell >> .bell')
  await page.click(`tidings-bell >> .item[data-id="${viaPattern}"]`)
  await page.waitForURL('**/appointments/a%201', { timeout: 5000 })
  await until(async () => (await r.hub.unread(user)) == 0, 3000, 'marked read at the hub')
  await page.close()

  await r.hub.publish(user, { title: 'Invoice paid', link: '/billing/inv-7', related: { type: 'invoice', id: 'inv-7' } })
  const page2 = await open(user)
  await until(async () => (await bellState(page2)).badge == '1', 3000, 'badge 1 again')
  await page2.click('tidings-bell >> .bell')
  await page2.click('tidings-bell >> .item.unread')
  await page2.waitForURL('**/billing/inv-7', { timeout: 5000 })
  await until(async () => (await r.hub.unread(user)) == 0, 3000, 'second marked read')
  await page2.close()
})

test('keyboard: Enter opens on the first item, arrows move, Escape closes back to the bell', async () => {
  const user = 'u-keys'
  const a = await r.hub.publish(user, { title: 'A' })
  const b = await r.hub.publish(user, { title: 'B' })
  const page = await open(user, { nonav: 1 })
  await until(async () => (await bellState(page)).badge == '2', 3000, 'badge 2')
  await page.focus('tidings-bell >> .bell')
  await page.keyboard.press('Enter')
  await until(async () => (await bellState(page)).focus == b, 3000, 'focus on the newest item')
  assert.equal((await bellState(page)).expanded, 'true')
  await page.keyboard.press('ArrowDown')
  assert.equal((await bellState(page)).focus, a)
  await page.keyboard.press('ArrowDown')
  assert.equal((await bellState(page)).focus, 'all')
  await page.keyboard.press('Home')
  assert.equal((await bellState(page)).focus, b)
  await page.keyboard.press('ArrowUp')
  assert.equal((await bellState(page)).focus, 'see')
  await page.keyboard.press('Escape')
  let s = await bellState(page)
  assert.equal(s.expanded, 'false')
  assert.equal(s.focus, 'bell')
  // ArrowUp opens on the last item; Enter on a notification selects it.
  await page.keyboard.press('ArrowUp')
  assert.equal((await bellState(page)).focus, 'see')
  await page.keyboard.press('Home')
  await page.keyboard.press('Enter')
  await until(() => page.evaluate(() => window.rec.selected.length == 1), 3000, 'selected')
  const sel = await page.evaluate(() => window.rec.selected[0])
  assert.equal(sel.notification.id, b)
  s = await bellState(page)
  assert.equal(s.expanded, 'false')
  await until(async () => (await bellState(page)).badge == '1', 3000, 'badge 1 after Enter')
  await page.close()
})

test('mark all read in one tab clears the badge in another tab', async () => {
  const user = 'u-tabs'
  const c = await r.context()
  const one = await r.open(c, 'bell', { user, nonav: 1 })
  const two = await r.open(c, 'bell', { user, nonav: 1 })
  for (const p of [one, two]) await until(() => p.evaluate(() => document.querySelector('tidings-bell').dataset.state == 'open'), 10000, 'connected')
  const first = await r.hub.publish(user, { title: 'One' })
  await r.hub.publish(user, { title: 'Two' })
  for (const p of [one, two]) await until(async () => (await bellState(p)).badge == '2', 2000, 'badge 2 in both tabs')
  // One tab holds the connection, the other gets it relayed; both work either way.
  const leaders = await Promise.all([one, two].map((p) => p.evaluate(() => document.querySelector('tidings-bell').client.isLeader)))
  assert.deepEqual(leaders.sort(), [false, true])
  await one.click('tidings-bell >> .bell')
  await one.click(`tidings-bell >> .item[data-id="${first}"]`)
  await until(async () => (await bellState(two)).badge == '1', 2000, 'tab two: badge 1 after a read in tab one')
  await two.click('tidings-bell >> .bell')
  await until(async () => (await bellState(two)).items.find((i) => i.id == first)?.unread === false, 2000, 'tab two shows it read')
  await two.click('tidings-bell >> .all')
  await until(async () => (await bellState(one)).badge == '', 2000, 'tab one: badge gone after mark all read in tab two')
  assert.equal(await r.hub.unread(user), 0)
  await one.close()
  await two.close()
})

test('on a 360-px-wide screen the open menu stays inside the viewport (LTR and Arabic RTL)', async () => {
  const user = 'u-narrow'
  await r.hub.publish(user, { title: 'Lab results ready', message: 'A long message that wraps inside the narrow menu on a phone screen' })
  for (const lang of ['en', 'ar']) {
    const c = await r.context({ viewport: { width: 360, height: 640 } })
    const page = await r.open(c, 'bell', { user, nonav: 1, ...(lang == 'ar' ? { lang: 'ar', dir: 'rtl' } : {}) })
    await until(() => page.evaluate(() => document.querySelector('tidings-bell').dataset.state == 'open'), 10000, 'bell connected')
    await page.click('tidings-bell >> .bell')
    await until(async () => (await bellState(page)).items.length == 1, 5000, 'one item')
    const box = await page.evaluate(() => {
      const r = document.querySelector('tidings-bell').shadowRoot.querySelector('.panel').getBoundingClientRect()
      return { left: r.left, right: r.right, width: r.width }
    })
    assert.ok(box.left >= 0 && box.right <= 360, `${lang}: menu at ${box.left}..${box.right}, outside 0..360`)
    assert.ok(box.width >= 300, `${lang}: the menu keeps its width (${box.width})`)
    // Still inside after the window narrows while it is open.
    await page.setViewportSize({ width: 340, height: 640 })
    await until(
      () => page.evaluate(() => {
        const r = document.querySelector('tidings-bell').shadowRoot.querySelector('.panel').getBoundingClientRect()
        return r.left >= 0 && r.right <= 340
      }),
      2000,
      'inside 340 px after a resize',
    )
    await c.close()
  }
})
