// <tidings-bell> and <tidings-center> (issue #14) against a real hub: the badge and
// the menu count the same notifications (muted ones too), "99+" leaves the bell
// visible, live notifications keep the focus where it is and a burst of 150 never
// blocks the page, the category filter offers every category the hub knows, with
// readable, localized labels.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rig, until, bellState, shot } from './support.js'

let r
before(async () => (r = await rig()))
after(async () => r && (await r.close()))

const connected = (page, sel = 'tidings-bell') =>
  until(() => page.evaluate((sel) => document.querySelector(sel).dataset.state == 'open', sel), 15000, sel + ' connected')
const rowIds = (page) => page.evaluate(() => [...document.querySelector('tidings-center').shadowRoot.querySelectorAll('.row')].map((li) => li.dataset.id))
const menuEmpty = (page) =>
  page.evaluate(() => {
    const e = document.querySelector('tidings-bell').shadowRoot.querySelector('.empty')
    return e.hidden ? null : e.textContent
  })

test('bell: a notification in a muted category is in the menu as it is in the badge', async () => {
  const user = 'u-muted'
  await r.hub.api('PUT', '/v1/me/preferences', { muted_categories: ['marketing'], quiet_hours: null }, await r.hub.token(user))
  const c = await r.context()
  const page = await r.open(c, 'bell', { user, nonav: 1 })
  await connected(page)
  await page.click('tidings-bell >> .bell')
  await until(async () => (await menuEmpty(page)) == "You're all caught up", 5000, 'empty menu loaded')
  await page.keyboard.press('Escape')
  // Muted: stored and counted, not pushed.
  const first = await r.hub.publish(user, { title: 'Clinic newsletter', category: 'marketing' })
  await until(async () => (await bellState(page)).badge == '1', 3000, 'badge 1')
  await page.click('tidings-bell >> .bell')
  await until(async () => (await bellState(page)).items.map((i) => i.id).includes(first), 3000, 'the muted one in the menu')
  assert.equal(await menuEmpty(page), null)
  assert.equal((await bellState(page)).items.find((i) => i.id == first).unread, true)
  // With the menu open, the next one joins it at once.
  const second = await r.hub.publish(user, { title: 'Flu shots this week', category: 'marketing' })
  await until(async () => (await bellState(page)).badge == '2', 3000, 'badge 2')
  await until(async () => (await bellState(page)).items[0]?.id == second, 3000, 'the second muted one on top')
  assert.equal((await bellState(page)).items.filter((i) => i.unread).length, 2)
  assert.deepEqual(await page.evaluate(() => window.rec.seen), [], 'neither was pushed as a live notification')
  await c.close()
})

/** How much of the bell icon the badge covers (share of its box) and whether it covers its centre. */
const badgeCover = (page) =>
  page.evaluate(() => {
    const root = document.querySelector('tidings-bell').shadowRoot
    const a = root.querySelector('.badge').getBoundingClientRect()
    const b = root.querySelector('.bell svg').getBoundingClientRect()
    const w = Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
    const h = Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top))
    const cx = b.left + b.width / 2
    const cy = b.top + b.height / 2
    return { share: (w * h) / (b.width * b.height), centre: cx >= a.left && cx <= a.right && cy >= a.top && cy <= a.bottom }
  })

test('bell: "99+" does not cover the bell icon (left-to-right and Arabic right-to-left)', async () => {
  const user = 'u-many'
  await Promise.all(Array.from({ length: 100 }, (_, i) => r.hub.publish(user, { title: 'Bulk ' + i })))
  for (const lang of ['en', 'ar']) {
    for (const width of [1280, 360]) {
      const c = await r.context({ viewport: { width, height: 640 } })
      const page = await r.open(c, 'bell', { user, nonav: 1, ...(lang == 'ar' ? { lang: 'ar', dir: 'rtl' } : {}) })
      await connected(page)
      await until(async () => (await bellState(page)).badge == '99+', 5000, 'badge 99+')
      const cover = await badgeCover(page)
      assert.equal(cover.centre, false, `${lang}: the badge covers the icon's centre`)
      assert.ok(cover.share <= 0.25, `${lang}: the badge covers ${(cover.share * 100).toFixed(0)}% of the icon`)
      await shot(page, `bell-99-${lang}-${width}`)
      await page.click('tidings-bell >> .bell')
      await until(async () => (await bellState(page)).items.length == 8, 5000, 'menu filled')
      await shot(page, `bell-99-open-${lang}-${width}`)
      await c.close()
    }
  }
})

test('center: live notifications are added without moving the keyboard focus', async () => {
  const user = 'u-focus'
  for (const t of ['One', 'Two', 'Three']) await r.hub.publish(user, { title: t, category: 'appointments' })
  const c = await r.context()
  const page = await r.open(c, 'center', { user, nonav: 1 })
  await connected(page, 'tidings-center')
  await until(async () => (await rowIds(page)).length == 3, 5000, 'three rows')
  await page.focus('tidings-center >> .row:nth-child(2) button')
  await page.evaluate(() => (document.querySelector('tidings-center').shadowRoot.activeElement.dataset.probe = 'focused'))
  for (const t of ['Four', 'Five', 'Six']) await r.hub.publish(user, { title: t, category: 'appointments' })
  await until(async () => (await rowIds(page)).length == 6, 5000, 'three live rows on top')
  const focus = await page.evaluate(() => {
    const el = document.querySelector('tidings-center')
    const a = el.shadowRoot.activeElement
    return { host: document.activeElement == el, probe: a && a.dataset.probe, label: a && a.getAttribute('aria-label') }
  })
  assert.deepEqual(focus, { host: true, probe: 'focused', label: 'Mark as read: Two' })
  // Typing goes on where it was: Enter marks that row read.
  await page.keyboard.press('Enter')
  await until(async () => (await r.hub.unread(user)) == 5, 3000, 'marked read from the kept focus')
  assert.deepEqual(page.errors, [])
  await c.close()
})

test('center: a burst of 150 live notifications renders without a long task over 200 ms', async () => {
  const user = 'u-burst'
  await r.hub.publish(user, { title: 'Before the burst' })
  const c = await r.context()
  const page = await r.open(c, 'center', { user, nonav: 1 })
  await connected(page, 'tidings-center')
  await until(async () => (await rowIds(page)).length == 1, 5000, 'first row')
  await page.evaluate(() => {
    window.longTasks = []
    new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: 'longtask' })
  })
  await Promise.all(Array.from({ length: 150 }, (_, i) => r.hub.publish(user, { title: 'Burst ' + i, message: 'Lab panel ' + i + ' is ready', category: 'results.lab' })))
  await until(async () => (await rowIds(page)).length == 151, 20000, '151 rows')
  await page.waitForTimeout(500)
  const tasks = await page.evaluate(() => window.longTasks)
  assert.ok(tasks.every((ms) => ms <= 200), `long tasks: ${tasks.map((x) => Math.round(x))} ms`)
  await c.close()
})

const categoryOptions = (page) =>
  page.evaluate(() =>
    [...document.querySelector('tidings-center').shadowRoot.querySelectorAll('select[name=category] option')].map((o) => [o.value, o.textContent]),
  )

test('center: the category filter offers every category of the user, labelled (English and Arabic)', async () => {
  const user = 'u-cats'
  // The two oldest are beyond the first page (page-size 5).
  await r.hub.publish(user, { title: 'CBC ready', category: 'lab_results' })
  await r.hub.publish(user, { title: 'Chest X-ray read', category: 'x_ray_reports' })
  for (let i = 0; i < 5; i++) await r.hub.publish(user, { title: 'Booked ' + i, category: 'appointments' })
  for (const [lang, want] of [
    ['en', [['', 'All categories'], ['appointments', 'Appointments'], ['lab_results', 'Lab results'], ['x_ray_reports', 'X ray reports']]],
    ['ar', [['', 'كل الفئات'], ['appointments', 'المواعيد'], ['lab_results', 'نتائج المختبر'], ['x_ray_reports', 'X ray reports']]],
  ]) {
    for (const width of [1280, 360]) {
      const c = await r.context({ viewport: { width, height: 800 } })
      const page = await r.open(c, 'center', { user, nonav: 1, ...(lang == 'ar' ? { lang: 'ar', dir: 'rtl' } : {}) })
      await connected(page, 'tidings-center')
      await until(async () => (await rowIds(page)).length == 5, 5000, 'first page')
      await until(async () => (await categoryOptions(page)).length == 4, 5000, 'every category offered')
      assert.deepEqual(await categoryOptions(page), want)
      const meta = await page.evaluate(() => document.querySelector('tidings-center').shadowRoot.querySelector('.row .cat').textContent)
      assert.equal(meta, want[1][1])
      await shot(page, `center-categories-${lang}-${width}`, { fullPage: true })
      // Filtering by a category that is not loaded yet fetches until it is.
      await page.selectOption('tidings-center >> select[name=category]', 'lab_results')
      await until(async () => (await rowIds(page)).length == 1, 5000, 'the lab result')
      await page.click('tidings-center >> #tab-preferences')
      await until(() => page.evaluate(() => document.querySelector('tidings-center').shadowRoot.querySelectorAll('input[name=muted]').length == 3), 5000, 'categories to mute')
      const mute = await page.evaluate(() => [...document.querySelector('tidings-center').shadowRoot.querySelectorAll('input[name=muted]')].map((i) => [i.value, i.parentElement.textContent]))
      assert.deepEqual(mute, want.slice(1))
      await shot(page, `center-preferences-${lang}-${width}`, { fullPage: true })
      await c.close()
    }
  }
})
