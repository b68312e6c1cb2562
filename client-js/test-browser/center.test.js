// <tidings-center> (history with filters and paging, preferences), accessibility
// scans with axe-core, right-to-left Arabic, and the screenshots.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rig, until, bellState, axe, shot } from './support.js'

let r
before(async () => (r = await rig()))
after(async () => r && (await r.close()))

const connected = (page, sel = 'tidings-bell') =>
  until(() => page.evaluate((sel) => document.querySelector(sel).dataset.state == 'open', sel), 15000, sel + ' connected')

const rows = (page) =>
  page.evaluate(() =>
    [...document.querySelector('tidings-center').shadowRoot.querySelectorAll('.row')].map((li) => ({
      id: li.dataset.id,
      type: li.dataset.type,
      unread: li.classList.contains('unread'),
      title: li.querySelector('h3').textContent,
    })),
  )
const inCenter = (page, sel) => `tidings-center >> ${sel}`
const moreVisible = (page) => page.evaluate(() => !document.querySelector('tidings-center').shadowRoot.querySelector('.more').hidden)

// Realistic clinic notifications, oldest first.
const SAMPLE = [
  { title: 'Appointment booked', message: 'Omar Khalil booked Mon 09:30 with Dr. Mansour', type: 'info', category: 'appointment.booked', related: { type: 'appointment', id: 'a-101' } },
  { title: 'Insurance pre-approval needed', message: 'Policy for Lina Farah expires before the visit', type: 'warning', category: 'billing.insurance' },
  { title: 'Lab results ready', message: 'CBC panel for Sara Haddad is available', type: 'success', category: 'results.lab', link: '/results/r-77' },
  { title: 'Appointment cancelled', message: 'Yusuf Amin cancelled Tue 11:00', type: 'warning', category: 'appointment.cancelled', related: { type: 'appointment', id: 'a-102' } },
  { title: 'Payment failed', message: 'Card declined for invoice INV-2291', type: 'error', category: 'billing.payment' },
  { title: 'Appointment booked', message: 'Maha Saleh booked Wed 14:00 with Dr. Nasser', type: 'info', category: 'appointment.booked', related: { type: 'appointment', id: 'a-103' } },
  { title: 'Patient arrived', message: 'Sara Haddad is in the waiting room', type: 'info', category: 'appointment.arrived', related: { type: 'appointment', id: 'a-104' } },
  { title: 'Referral received', message: 'Cardiology referral for Omar Khalil', type: 'info', category: 'referral.received' },
  { title: 'No-show', message: 'Hassan Ali missed his 08:30 appointment', type: 'error', category: 'appointment.no_show', related: { type: 'appointment', id: 'a-105' } },
  { title: 'Lab results ready', message: 'Lipid panel for Ahmed Al-Saud is available', type: 'success', category: 'results.lab', link: '/results/r-78' },
  { title: 'Appointment rescheduled', message: 'Lina Farah moved to Thu 10:00', type: 'warning', category: 'appointment.rescheduled', related: { type: 'appointment', id: 'a-106' } },
  { title: 'Patient arrived', message: 'Omar Khalil is in the waiting room', type: 'info', category: 'appointment.arrived', related: { type: 'appointment', id: 'a-107' } },
]

const seed = async (user) => {
  const ids = []
  for (const n of SAMPLE) ids.push(await r.hub.publish(user, n))
  return ids
}

test('history: newest first, paged with the cursor, filtered by status, type and category', async () => {
  const user = 'u-history'
  const ids = await seed(user)
  const newest = [...ids].reverse()
  // Two read ones, through the API.
  const tok = await r.hub.token(user)
  await r.hub.api('POST', `/v1/me/notifications/${ids[11]}/read`, null, tok)
  await r.hub.api('POST', `/v1/me/notifications/${ids[0]}/read`, null, tok)
  const c = await r.context()
  const page = await r.open(c, 'center', { user, nonav: 1 })
  await connected(page, 'tidings-center')
  await until(async () => (await rows(page)).length == 5, 5000, 'first page of 5')
  assert.deepEqual((await rows(page)).map((x) => x.id), newest.slice(0, 5))
  assert.equal((await rows(page))[0].unread, false)
  await page.click(inCenter(page, '.more'))
  await until(async () => (await rows(page)).length == 10, 5000, 'second page')
  await page.click(inCenter(page, '.more'))
  await until(async () => (await rows(page)).length == 12, 5000, 'last page')
  assert.deepEqual((await rows(page)).map((x) => x.id), newest)
  assert.equal(await moreVisible(page), false)

  // Type: client-side over the loaded rows.
  await page.selectOption(inCenter(page, 'select[name=type]'), 'warning')
  assert.deepEqual(
    (await rows(page)).map((x) => x.title),
    ['Appointment rescheduled', 'Appointment cancelled', 'Insurance pre-approval needed'],
  )
  await page.selectOption(inCenter(page, 'select[name=type]'), '')
  await page.selectOption(inCenter(page, 'select[name=category]'), 'results.lab')
  assert.deepEqual((await rows(page)).map((x) => x.id), [ids[9], ids[2]])
  await page.selectOption(inCenter(page, 'select[name=category]'), '')

  // Status: the hub's filter, paged again from the start.
  await page.selectOption(inCenter(page, 'select[name=status]'), 'unread')
  await until(async () => (await rows(page)).length == 5 && (await rows(page))[0].id == ids[10], 5000, 'unread page 1')
  await page.click(inCenter(page, '.more'))
  await until(async () => (await rows(page)).length == 10, 5000, 'unread page 2')
  assert.deepEqual((await rows(page)).map((x) => x.id), newest.slice(1, 11))
  assert.ok((await rows(page)).every((x) => x.unread))
  assert.equal(await moreVisible(page), false)

  // "Mark as read" on a row: the row and the bell update from the hub's push.
  await connected(page)
  // The bell and the center share one connection: one of them leads.
  const leaders = await page.evaluate(() => ['tidings-bell', 'tidings-center'].map((s) => document.querySelector(s).client.isLeader))
  assert.deepEqual(leaders.sort(), [false, true])
  assert.equal((await bellState(page)).badge, '10')
  await page.click(inCenter(page, `.row[data-id="${ids[10]}"] button`))
  await until(async () => (await rows(page)).find((x) => x.id == ids[10]).unread == false, 3000, 'row read')
  await until(async () => (await bellState(page)).badge == '9', 3000, 'bell 9')
  // A live one appears on top.
  const live = await r.hub.publish(user, { title: 'Walk-in registered', message: 'Front desk added a walk-in', category: 'appointment.booked' })
  await until(async () => (await rows(page))[0].id == live, 3000, 'live row on top')
  assert.deepEqual(page.errors, [])
  await c.close()
})

test('preferences: muted categories and quiet hours are saved and read back; a muted category is counted, not pushed', async () => {
  const user = 'u-prefs'
  await seed(user)
  const c = await r.context()
  const page = await r.open(c, 'center', { user, nonav: 1 })
  await connected(page, 'tidings-center')
  await until(async () => (await rows(page)).length == 5, 5000, 'history loaded')
  await page.click(inCenter(page, '#tab-preferences'))
  await until(() => page.evaluate(() => !!document.querySelector('tidings-center').shadowRoot.querySelector('input[name=muted]')), 5000, 'categories listed')
  // Categories seen in the history are listed; others are typed in.
  await page.check(inCenter(page, 'input[name=muted][value="appointment.arrived"]'))
  await page.fill(inCenter(page, 'input[name=category]'), 'appointment.booked')
  await page.click(inCenter(page, '.grid button'))
  await page.check(inCenter(page, 'input[name=muted][value="appointment.arrived"]'))
  await page.uncheck(inCenter(page, 'input[name=muted][value="appointment.arrived"]'))
  await page.fill(inCenter(page, 'input[name=category]'), 'marketing.news')
  await page.press(inCenter(page, 'input[name=category]'), 'Enter')
  await page.check(inCenter(page, 'input[name=quiet]'))
  await page.fill(inCenter(page, 'input[name=start]'), '21:30')
  await page.fill(inCenter(page, 'input[name=end]'), '06:45')
  await page.selectOption(inCenter(page, 'select[name=tz]'), 'Asia/Riyadh')
  await page.click(inCenter(page, 'button[type=submit]'))
  await until(
    () => page.evaluate(() => document.querySelector('tidings-center').shadowRoot.querySelector('form [role=status]').textContent == 'Preferences saved'),
    5000,
    'saved',
  )
  const stored = await r.hub.api('GET', '/v1/me/preferences', null, await r.hub.token(user))
  assert.deepEqual(
    { ...stored, muted_categories: [...stored.muted_categories].sort() },
    { muted_categories: ['appointment.booked', 'marketing.news'], quiet_hours: { start: '21:30', end: '06:45', tz: 'Asia/Riyadh' } },
  )
  // Read back in a fresh page.
  const again = await r.open(c, 'center', { user, nonav: 1 })
  await until(() => again.evaluate(() => window.ready), 5000, 'page ready')
  await again.evaluate(() => (document.querySelector('tidings-center').view = 'preferences'))
  await connected(again, 'tidings-center')
  await until(
    () => again.evaluate(() => document.querySelector('tidings-center').shadowRoot.querySelector('input[name=start]').value == '21:30'),
    5000,
    'form filled from the hub',
  )
  const form = await again.evaluate(() => {
    const r = document.querySelector('tidings-center').shadowRoot
    return {
      muted: [...r.querySelectorAll('input[name=muted]:checked')].map((i) => i.value).sort(),
      quiet: r.querySelector('input[name=quiet]').checked,
      end: r.querySelector('input[name=end]').value,
      tz: r.querySelector('select[name=tz]').value,
    }
  })
  assert.deepEqual(form, { muted: ['appointment.booked', 'marketing.news'], quiet: true, end: '06:45', tz: 'Asia/Riyadh' })

  // Quiet hours off again (so the next check does not depend on the time of day), then a
  // muted category: the badge counts it, but it is not pushed as a notification.
  await r.hub.api('PUT', '/v1/me/preferences', { muted_categories: ['appointment.booked'], quiet_hours: null }, await r.hub.token(user))
  const bell = await r.open(c, 'bell', { user, nonav: 1 })
  await connected(bell)
  const badge = Number((await bellState(bell)).badge)
  const seenBefore = (await bell.evaluate(() => window.rec.seen)).length
  await r.hub.publish(user, { title: 'Muted', category: 'appointment.booked' })
  await until(async () => (await bellState(bell)).badge == String(badge + 1), 2000, 'badge counts the muted one')
  const pushed = await r.hub.publish(user, { title: 'Not muted', category: 'results.lab' })
  await until(async () => (await bellState(bell)).badge == String(badge + 2), 2000, 'badge counts the next one')
  assert.deepEqual((await bell.evaluate(() => window.rec.seen)).slice(seenBefore), [pushed])
  await c.close()
})

test('accessibility: no serious or critical axe violations on the bell (closed, open) and the center', async () => {
  const user = 'u-axe'
  await seed(user)
  const c = await r.context()
  const page = await r.open(c, 'bell', { user, nonav: 1 })
  await connected(page)
  await until(async () => (await bellState(page)).badge == '12', 5000, 'badge 12')
  assert.deepEqual(await axe(page), [], 'bell closed')
  await shot(page, 'bell-closed')
  await page.click('tidings-bell >> .bell')
  await until(async () => (await bellState(page)).items.length == 8, 5000, 'menu filled')
  assert.deepEqual(await axe(page), [], 'bell open')
  await shot(page, 'bell-open')

  const center = await r.open(c, 'center', { user, nonav: 1 })
  await connected(center, 'tidings-center')
  await until(async () => (await rows(center)).length == 5, 5000, 'history loaded')
  assert.deepEqual(await axe(center), [], 'center history')
  await shot(center, 'center', { fullPage: true })
  await center.click(inCenter(center, '#tab-preferences'))
  await until(() => center.evaluate(() => !!document.querySelector('tidings-center').shadowRoot.querySelector('input[name=muted]')), 5000, 'preferences loaded')
  assert.deepEqual(await axe(center), [], 'center preferences')
  await shot(center, 'center-preferences', { fullPage: true })
  // Keyboard on the tabs: ArrowLeft goes back to the history.
  await center.focus(inCenter(center, '#tab-preferences'))
  await center.keyboard.press('ArrowLeft')
  assert.equal(await center.evaluate(() => document.querySelector('tidings-center').view), 'history')
  await c.close()
})

test('an Arabic page renders the bell right-to-left with Arabic strings and relative times', async () => {
  const user = 'u-arabic'
  await r.hub.publish(user, { title: 'موعد جديد', message: 'حجز أحمد آل سعود موعدًا يوم الأحد الساعة 10:00', type: 'info', category: 'appointment.booked' })
  await r.hub.publish(user, { title: 'نتائج المختبر جاهزة', message: 'نتائج تحليل الدم لسارة حداد متاحة', type: 'success' })
  await r.hub.publish(user, { title: 'تعذّر الدفع', message: 'رُفضت البطاقة للفاتورة INV-2291', type: 'error' })
  const c = await r.context()
  // lang="ar" alone (no dir on the page): the bell still turns right-to-left.
  const page = await r.open(c, 'bell', { user, lang: 'ar', nonav: 1 })
  await connected(page)
  await page.click('tidings-bell >> .bell')
  await until(async () => (await bellState(page)).items.length == 3, 5000, 'three items')
  const s = await bellState(page)
  assert.equal(s.label, 'الإشعارات، 3 غير مقروءة')
  assert.equal(s.items[0].title, 'تعذّر الدفع')
  assert.equal(s.items[0].time, 'الآن')
  const layout = await page.evaluate(() => {
    const el = document.querySelector('tidings-bell')
    const r = el.shadowRoot
    const panel = r.querySelector('.panel').getBoundingClientRect()
    const bell = r.querySelector('.bell').getBoundingClientRect()
    return {
      dir: getComputedStyle(r.querySelector('.panel')).direction,
      title: r.querySelector('.title').textContent,
      markAll: r.querySelector('.all').textContent,
      // Right-to-left: the menu hangs from the bell's left edge (inset-inline-end: 0) and
      // extends to the right; on this left-to-right page the bell sits near the right
      // edge, so the menu is shifted back inside the viewport (8 px from its edge).
      extendsRight: panel.right > bell.right,
      shiftedInside: panel.left >= 0 && Math.abs(panel.right - (document.documentElement.clientWidth - 8)) < 1,
      stripeRight: getComputedStyle(r.querySelector('.item')).borderRightWidth,
    }
  })
  assert.deepEqual(layout, { dir: 'rtl', title: 'الإشعارات', markAll: 'تحديد الكل كمقروء', extendsRight: true, shiftedInside: true, stripeRight: '3px' })
  assert.deepEqual(await axe(page), [], 'Arabic bell open')

  // The screenshot: a whole Arabic page (dir=rtl), menu open.
  const rtl = await r.open(c, 'bell', { user, lang: 'ar', dir: 'rtl', nonav: 1 })
  await connected(rtl)
  await rtl.click('tidings-bell >> .bell')
  await until(async () => (await bellState(rtl)).items.length == 3, 5000, 'three items (rtl page)')
  // On a right-to-left page the bell is near the left edge: the menu hangs from its left edge, unshifted.
  const aligned = await rtl.evaluate(() => {
    const r = document.querySelector('tidings-bell').shadowRoot
    return Math.abs(r.querySelector('.panel').getBoundingClientRect().left - r.querySelector('.bell').getBoundingClientRect().left) < 1
  })
  assert.equal(aligned, true)
  await shot(rtl, 'bell-open-ar')
  await c.close()
})
