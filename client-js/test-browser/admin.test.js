// The admin console (/admin, served by the hub) end to end in chromium against a
// real hub: sign in, templates (Arabic, test render, versions, toggle), patient
// preferences, single and scheduled sends, cancel, bulk send with batch counts,
// the dashboard's totals, the CSV export, the audit log; then every page at
// 360 px wide and an axe-core scan of each. Tests run in order and share state.
//
// SMS goes through Twilio's adapter to a stand-in Twilio (fakeTwilio) that accepts
// every number but one; the dispatch worker sends, so a message to that number
// bounces for real (Twilio's 21211), and Retry is exercised on it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { rig, shot, axe, API_KEY } from './support.js'
import { console_, ready, redraw, go, widths, rows, text, fakeTwilio, until } from './admin-support.js'

let r
let page
let twilio
const REJECTED = '+966500000666'
const s = {} // what the tests create, for the later ones
before(async () => {
  twilio = await fakeTwilio(REJECTED)
  // The demo tenant's SMS go to Twilio's adapter, pointed at the stand-in.
  r = await rig({
    config: `
[outbound.tenants.demo.providers.twilio]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "browser-suite-twilio-token"
from = "+14155550100"
base_url = "${twilio.url}"
timeout_ms = 3000

[outbound.tenants.demo.routes]
sms = ["twilio"]
whatsapp = ["log"]
email = ["log"]
`,
  })
  const c = await r.context({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })
  page = await console_(r, c)
})
after(async () => {
  if (r) await r.close()
  if (twilio) await twilio.close()
})

const api = (method, path, body) => r.hub.api(method, path, body)
const alertText = () => text(page, '[role=alert]')
const hashId = () => page.evaluate(() => decodeURIComponent(location.hash.split('/')[2].split('?')[0]))
const pillText = () => text(page, 'dl.props .pill')
const timeline = () => page.$$eval('ol.timeline li', (li) => li.map((x) => x.dataset.event))
const buttons = () => page.$$eval('main .actions button', (b) => b.map((x) => x.textContent))

test('sign in: a wrong credential is refused and named; sign out forgets the credential', async () => {
  const c = await r.context({ viewport: { width: 1280, height: 900 } })
  const p = await c.newPage()
  await p.goto(r.hub.url + '/admin')
  await ready(p, 'signin')
  await shot(p, 'admin-signin')
  await p.fill('input[name=credential]', 'tdk_wrong_key')
  await p.click('form button[type=submit]')
  await p.waitForSelector('[role=alert]')
  assert.match(await p.innerText('[role=alert]'), /does not accept this credential/)
  assert.match(await p.innerText('[role=alert]'), /HTTP 401/)
  assert.equal(await p.getAttribute('input[name=credential]', 'aria-invalid'), 'true')
  assert.equal(await p.evaluate(() => sessionStorage.getItem('tidings.admin.credential')), null)
  await p.fill('input[name=credential]', API_KEY)
  await p.click('form button[type=submit]')
  await ready(p, 'messages')
  assert.equal(await p.evaluate(() => sessionStorage.getItem('tidings.admin.credential')), API_KEY)
  assert.equal(await p.isVisible('#nav'), true)
  await p.click('#signout')
  await ready(p, 'signin')
  assert.equal(await p.evaluate(() => sessionStorage.getItem('tidings.admin.credential')), null)
  assert.equal(await p.isVisible('#nav'), false)
  assert.match(await p.innerText('main'), /Signed out\./)
  await c.close()
})

test('sign in with an admin user token works; a provider token is refused with 403', async () => {
  const c = await r.context({ viewport: { width: 1280, height: 900 } })
  const p = await c.newPage()
  await p.goto(r.hub.url + '/admin')
  await ready(p, 'signin')
  const provider = (await r.hub.api('POST', '/v1/tokens', { user_id: 'u-doc', role: 'provider', ttl_seconds: 600 })).token
  await p.fill('input[name=credential]', provider)
  await p.click('form button[type=submit]')
  await p.waitForSelector('[role=alert]')
  assert.match(await p.innerText('[role=alert]'), /may not use the admin API/)
  assert.match(await p.innerText('[role=alert]'), /HTTP 403/)
  const admin = (await r.hub.api('POST', '/v1/tokens', { user_id: 'u-admin', role: 'admin', ttl_seconds: 600 })).token
  await p.fill('input[name=credential]', admin)
  await p.click('form button[type=submit]')
  await ready(p, 'messages')
  assert.equal(await p.evaluate(() => sessionStorage.getItem('tidings.admin.credential')), admin)
  await c.close()
})

test('templates: create with Arabic, test-render (a missing variable is named), edit to version 2, deactivate and activate', async () => {
  await go(page, '#/templates/new', 'template-form')
  await shot(page, 'admin-template-form')
  await page.fill('input[name=name]', 'reminder_24h')
  await page.selectOption('select[name=channel]', 'sms')
  await page.selectOption('select[name=kind]', 'appointment_reminder')
  await page.fill('textarea[name=body_en]', 'Hello {patient_name}, your appointment is on {time}.')
  await page.fill('textarea[name=body_ar]', 'مرحباً {patient_name}، موعدك يوم {time}.')
  assert.equal(await page.getAttribute('textarea[name=body_ar]', 'dir'), 'rtl')
  await redraw(page, 'template', () => page.click('form button[type=submit]'))
  s.template = await hashId()
  assert.equal(await text(page, 'h1'), 'Template reminder_24h')
  assert.equal(await text(page, '.notice'), 'Template created.')
  assert.equal(await text(page, '.version'), '1')
  const ar = page.locator('pre[data-lang=ar]')
  assert.equal(await ar.innerText(), 'مرحباً {patient_name}، موعدك يوم {time}.')
  assert.equal(await ar.getAttribute('dir'), 'rtl')
  assert.equal(await ar.evaluate((e) => getComputedStyle(e).direction), 'rtl')
  const stored = await api('GET', '/v1/templates/' + s.template)
  assert.deepEqual([stored.name, stored.version, stored.is_active, stored.variables], ['reminder_24h', 1, true, ['patient_name', 'time']])

  // Test render in Arabic: without `time` the hub names it; with it, the text comes back RTL.
  await page.selectOption('select[name=language]', 'ar')
  await page.fill('input[name="variables.patient_name"]', 'سارة')
  await page.click('button:text-is("Render")')
  await page.waitForSelector('[role=alert]')
  assert.match(await alertText(), /time/)
  assert.match(await alertText(), /missing_variables/)
  assert.equal(await page.getAttribute('input[name="variables.time"]', 'aria-invalid'), 'true')
  await page.fill('input[name="variables.time"]', 'الأحد 10:00')
  await page.click('button:text-is("Render")')
  const out = page.locator('.rendered-body')
  await out.waitFor()
  assert.equal(await out.innerText(), 'مرحباً سارة، موعدك يوم الأحد 10:00.')
  assert.equal(await out.getAttribute('dir'), 'rtl')
  assert.equal(await page.locator('[role=alert]').count(), 0)
  await shot(page, 'admin-template', { fullPage: true })

  // Edit: a new version.
  await redraw(page, 'template-form', () => page.click('a:text("Edit")'))
  assert.equal(await text(page, 'form button[type=submit]'), 'Save as version 2')
  await page.fill('textarea[name=body_en]', 'Hello {patient_name}, see you on {time}.')
  await redraw(page, 'template', () => page.click('form button[type=submit]'))
  assert.equal(await text(page, '.notice'), 'Saved: version 2.')
  assert.equal(await text(page, '.version'), '2')
  assert.equal(await text(page, 'pre[data-lang=en]'), 'Hello {patient_name}, see you on {time}.')
  const versions = await rows(page, 'section:has(#t-versions)')
  assert.deepEqual(versions.map((v) => v.Version), ['2', '1'])
  assert.equal((await api('GET', '/v1/templates/' + s.template)).version, 2)

  // Deactivate, then activate again.
  await redraw(page, 'template', () => page.click('button:text("Deactivate")'))
  assert.equal(await text(page, '.notice'), 'Deactivated.')
  assert.equal(await pillText(), 'inactive')
  assert.equal((await api('GET', '/v1/templates/' + s.template)).is_active, false)
  await redraw(page, 'template', () => page.click('button:text("Activate")'))
  assert.equal(await pillText(), 'active')
  assert.equal((await api('GET', '/v1/templates/' + s.template)).is_active, true)

  // A second template, deleted after an inline confirmation.
  const doomed = await api('POST', '/v1/templates', { name: 'to_delete', channel: 'email', kind: 'billing', body_en: 'Invoice {n}', body_ar: 'فاتورة {n}', subject_en: 'Invoice', subject_ar: 'فاتورة', variables: ['n'], is_active: true })
  await go(page, '#/templates/' + doomed.id, 'template')
  await page.click('button:text("Delete")')
  assert.equal(await page.getAttribute('button:text("Delete")', 'aria-expanded'), 'true')
  await redraw(page, 'templates', () => page.click('button:text("Delete template")'))
  assert.equal(await text(page, '.notice'), 'Template to_delete deleted.')
  const list = await rows(page)
  assert.deepEqual(list.map((t) => [t.Name, t.Channel, t.Version, t.State]), [['reminder_24h', 'sms', '2', 'active']])
  await shot(page, 'admin-templates')
})

test("patient preferences: an invalid phone is marked; saved values are what the hub stores", async () => {
  await go(page, '#/patients/p-1001', 'patients')
  assert.match(await text(page, '.notice'), /No preferences stored/)
  await page.fill('input[name=phone]', '12345')
  await page.selectOption('select[name=language]', 'ar')
  await page.click('button:text("Save preferences")')
  await page.waitForSelector('[role=alert]')
  assert.match(await alertText(), /phone/)
  assert.equal(await page.getAttribute('input[name=phone]', 'aria-invalid'), 'true')
  await page.fill('input[name=phone]', '+966500000001')
  await page.selectOption('select[name=preferred_channel]', 'sms')
  await page.uncheck('input[name="channels.whatsapp"]')
  await redraw(page, 'patients', () => page.click('button:text("Save preferences")'))
  assert.equal(await text(page, '.notice'), 'Preferences saved.')
  const p = await api('GET', '/v1/patients/p-1001/preferences')
  assert.equal(p.phone, '+966500000001')
  assert.equal(p.language, 'ar')
  assert.equal(p.preferred_channel, 'sms')
  assert.deepEqual(p.channels, { email: true, sms: true, whatsapp: false })
  assert.equal(p.kinds.marketing, false)
  assert.equal(await page.isChecked('input[name="channels.whatsapp"]'), false)
  assert.equal(await page.inputValue('select[name=language]'), 'ar')
  await shot(page, 'admin-patient')
})

test('send a message to a patient: detail with its timeline, and it is in the filtered list', async () => {
  await go(page, '#/messages/new?patient=p-1001', 'send')
  assert.equal(await page.inputValue('input[name=patient_id]'), 'p-1001')
  await page.selectOption('select[name=template]', 'reminder_24h')
  await page.fill('textarea[name=variables]', 'patient_name=سارة\ntime=Sun 10:00')
  await shot(page, 'admin-send')
  await redraw(page, 'message', () => page.click('button:text("Send message")'))
  s.sent = await hashId()
  assert.ok(['queued', 'sending', 'sent', 'delivered'].includes(await pillText()))
  const body = page.locator('pre.body-text')
  assert.equal(await body.innerText(), 'مرحباً سارة، موعدك يوم Sun 10:00.')
  assert.equal(await body.getAttribute('dir'), 'rtl')
  const events = await timeline()
  assert.deepEqual(events.slice(0, 2), ['created', 'queued'])
  const m = await api('GET', '/v1/messages/' + s.sent)
  assert.deepEqual([m.channel, m.to, m.language, m.template.name, m.template.version], ['sms', '+966500000001', 'ar', 'reminder_24h', 2])
  await shot(page, 'admin-message', { fullPage: true })

  await go(page, '#/messages?template=reminder_24h', 'messages')
  const list = await rows(page)
  assert.equal(list.length, 1)
  assert.equal(list[0].Template, 'reminder_24h')
  assert.equal(list[0].To, '+966500000001')
  assert.equal(await page.getAttribute('main table.data tbody a', 'title'), s.sent)
  assert.equal(await page.inputValue('select[name=template]'), 'reminder_24h')
})

test('a scheduled message can be cancelled (and then neither cancelled nor retried)', async () => {
  await go(page, '#/messages/new', 'send')
  await page.fill('input[name=to]', '+966500000009')
  await page.selectOption('select[name=channel]', 'sms')
  await page.selectOption('select[name=kind]', 'results')
  await page.fill('textarea[name=body]', 'Your results are ready.')
  const tomorrow = new Date(Date.now() + 86400e3).toISOString().slice(0, 16)
  await page.fill('input[name=send_at]', tomorrow)
  await page.fill('input[name=group_key]', 'appt-42')
  await redraw(page, 'message', () => page.click('button:text("Send message")'))
  s.scheduled = await hashId()
  assert.equal(await pillText(), 'queued')
  assert.deepEqual(await buttons(), ['Cancel message'])
  assert.equal(Date.parse((await api('GET', '/v1/messages/' + s.scheduled)).send_at), Date.parse(tomorrow + ':00Z'))
  await redraw(page, 'message', () => page.click('button:text("Cancel message")'))
  assert.equal(await text(page, '.notice'), 'Cancelled.')
  assert.equal(await pillText(), 'cancelled')
  assert.deepEqual(await timeline(), ['created', 'queued', 'cancelled'])
  assert.deepEqual(await buttons(), [])
  assert.match(await text(page, 'main .actions'), /can be neither retried nor cancelled/)
  assert.equal((await api('GET', '/v1/messages/' + s.scheduled)).status, 'cancelled')
})

test('a whole group of scheduled messages is cancelled from the messages page', async () => {
  const later = new Date(Date.now() + 2 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z')
  const ids = []
  for (const to of ['+966500000011', '+966500000012'])
    ids.push((await api('POST', '/v1/messages', { to, channel: 'sms', kind: 'appointment_reminder', body: 'See you soon.', send_at: later, group_key: 'appt-77:reminders' })).id)
  await go(page, '#/messages', 'messages')
  // An empty key is refused by the hub, and the field is named.
  await page.click('button:text("Cancel queued messages")')
  await page.waitForSelector('form[aria-labelledby=cancel-group-h] [role=alert]')
  assert.equal(await page.getAttribute('input[name=group_key]', 'aria-invalid'), 'true')
  await page.fill('input[name=group_key]', 'appt-77:reminders')
  await page.click('button:text("Cancel queued messages")')
  await page.waitForSelector('form[aria-labelledby=cancel-group-h] .notice')
  assert.equal(await text(page, 'form[aria-labelledby=cancel-group-h] .notice'), 'Cancelled 2 queued messages of group appt-77:reminders.')
  for (const id of ids) assert.equal((await api('GET', '/v1/messages/' + id)).status, 'cancelled')
  s.group = ids
  // Nothing is left to cancel the second time.
  await page.click('button:text("Cancel queued messages")')
  await page.waitForFunction(() => /Cancelled 0 queued messages/.test(document.querySelector('form[aria-labelledby=cancel-group-h] .notice')?.textContent || ''))
})

test('a message the provider rejects bounces; Retry queues it again and the worker sends it again', async () => {
  await go(page, '#/messages/new', 'send')
  await page.fill('input[name=to]', REJECTED)
  await page.selectOption('select[name=channel]', 'sms')
  await page.selectOption('select[name=kind]', 'billing')
  await page.fill('textarea[name=body]', 'Your invoice is ready.')
  await redraw(page, 'message', () => page.click('button:text("Send message")'))
  s.failed = await hashId()
  // Twilio's 21211 (invalid To number) is a bad address: the worker marks it bounced.
  await until(async () => (await api('GET', '/v1/messages/' + s.failed)).status == 'bounced', 15000, 'the worker bounces it')
  await redraw(page, 'message', () => page.evaluate(() => (location.hash += '?again=1')))
  assert.equal(await pillText(), 'bounced')
  assert.deepEqual(await buttons(), ['Retry'])
  assert.ok((await timeline()).includes('bounced'))
  assert.match(await text(page, 'dl.props'), /21211/)
  await shot(page, 'admin-message-bounced', { fullPage: true })
  await redraw(page, 'message', () => page.click('button:text("Retry")'))
  assert.equal(await text(page, '.notice'), 'Queued again for sending.')
  assert.ok((await timeline()).includes('retry'))
  // The worker takes it again: a second request to the provider, refused again.
  await until(async () => twilio.sends.filter((to) => to == REJECTED).length == 2, 15000, 'sent a second time')
  await until(async () => (await api('GET', '/v1/messages/' + s.failed)).status == 'bounced', 15000, 'bounced again')
  const m = await api('GET', '/v1/messages/' + s.failed)
  const events = m.events.map((e) => e.event)
  assert.ok(events.indexOf('retry') > events.indexOf('bounced'), String(events))
  assert.ok(events.lastIndexOf('bounced') > events.indexOf('retry'), String(events))
  assert.equal(m.attempts, 2)
})

test('bulk send: a CSV upload, a suppressed patient, the batch counts', async () => {
  await api('PUT', '/v1/patients/p-1002/preferences', { phone: '+966500000003', language: 'en', preferred_channel: 'sms', kinds: { appointment_reminder: false } })
  await go(page, '#/bulk', 'bulk')
  await page.selectOption('select[name=template]', 'reminder_24h')
  const csv = 'patient_id,to,patient_name,time\np-1001,,Sara,Sun 10:00\n,+966500000002,Omar,Sun 10:30\np-1002,,"Huda, A.",Sun 11:00\n'
  await page.setInputFiles('input[name=file]', { name: 'recipients.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) })
  await page.waitForSelector('.preview .count')
  assert.equal(await text(page, '.preview .count'), '3 recipients')
  assert.equal(await page.inputValue('textarea[name=recipients]'), csv)
  await shot(page, 'admin-bulk-form')
  await redraw(page, 'bulk', () => page.click('button:text("Send to all")'))
  s.batch = await page.evaluate(() => new URLSearchParams(location.hash.split('?')[1]).get('batch'))
  assert.ok(s.batch)
  assert.equal(await text(page, '.batch .notice'), 'Batch accepted: 2 queued, 1 suppressed.')
  assert.equal(await text(page, '.batch .total'), '3')
  assert.equal(await text(page, '.batch [data-status=suppressed]'), '1')
  const b = await api('GET', '/v1/messages/batches/' + s.batch)
  assert.equal(b.total, 3)
  assert.equal(b.by_status.suppressed, 1)
  // The two queued ones may move on (a dispatch worker) between the page and this
  // read: the counts shown add up to the total, and the suppressed one stays.
  const shown = await page.$$eval('.batch [data-status]', (e) => Object.fromEntries(e.map((x) => [x.dataset.status, Number(x.textContent)])))
  assert.equal(Object.values(shown).reduce((a, n) => a + n, 0), 3)
  assert.equal(shown.suppressed, 1)
  await shot(page, 'admin-bulk')
})

test('dashboard: the totals and charts match the hub\'s stats', async () => {
  const st = await api('GET', '/v1/messages/stats?days=7')
  assert.equal(st.total, 8, 'one send, one scheduled, two of a cancelled group, one bounced, three in the batch')
  await go(page, '#/dashboard', 'dashboard')
  assert.equal(await text(page, '[data-tile=total] .value'), '8')
  assert.equal(await text(page, '[data-tile=success] .value'), `${(st.success_rate * 100).toFixed(1)}%`)
  // Daily trend: three bars a day, the day totals as the hub counted them.
  const days = await page.$$eval('[data-chart=daily] g[data-date]', (g) => g.map((x) => [x.dataset.date, Number(x.dataset.total)]))
  assert.deepEqual(days, st.daily.map((d) => [d.date, d.total]))
  assert.equal(await page.locator('[data-chart=daily] rect.bar').count(), st.daily.length * 3)
  assert.equal(days.reduce((a, [, n]) => a + n, 0), 8)
  const bars = (key) => page.$$eval(`[data-chart=${key}] g[data-key]`, (g) => Object.fromEntries(g.map((x) => [x.dataset.key, Number(x.dataset.value)])))
  assert.deepEqual(await bars('channel'), st.by_channel)
  assert.deepEqual(await bars('channel'), { email: 0, sms: 8, whatsapp: 0 })
  // Every status has its bar; the finished ones are fixed, the rest may move on.
  const status = await bars('status')
  assert.deepEqual(Object.keys(status).sort(), Object.keys(st.by_status).sort())
  assert.equal(Object.values(status).reduce((a, n) => a + n, 0), 8)
  assert.equal(status.cancelled, 3)
  assert.equal(status.bounced, 1)
  assert.equal(status.suppressed, 1)
  assert.match(await page.getAttribute('[data-chart=daily] svg', 'aria-label'), /Messages per day/)
  await shot(page, 'admin-dashboard', { fullPage: true })
})

test('export: the CSV download honours the filters', async () => {
  await go(page, '#/messages?template=reminder_24h', 'messages')
  const want = (await api('GET', '/v1/messages?template=reminder_24h&limit=200')).items.map((m) => m.id)
  assert.equal(want.length, 4, 'the single send and the three of the batch')
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')])
  assert.match(download.suggestedFilename(), /^messages-\d{4}-\d{2}-\d{2}\.csv$/)
  const csv = readFileSync(await download.path(), 'utf8').replace(/^\uFEFF/, '')
  const lines = csv.trim().split(/\r?\n/)
  assert.equal(lines[0].split(',')[0], 'id')
  assert.equal(lines.length, 1 + 4)
  assert.deepEqual(lines.slice(1).map((l) => l.split(',')[0]).sort(), [...want].sort())
  // Another filter, another file: the cancelled ones only (the scheduled one and the group's two).
  await go(page, '#/messages?status=cancelled', 'messages')
  const [d2] = await Promise.all([page.waitForEvent('download'), page.click('#export')])
  const lines2 = readFileSync(await d2.path(), 'utf8').replace(/^\uFEFF/, '').trim().split(/\r?\n/)
  assert.equal(lines2.length, 1 + 3)
  assert.deepEqual(lines2.slice(1).map((l) => l.split(',')[0]).sort(), [s.scheduled, ...s.group].sort())
  await go(page, '#/messages', 'messages')
  await shot(page, 'admin-messages')
})

test('the audit log shows the actions taken in the console', async () => {
  await go(page, '#/audit', 'audit')
  const actions = (await rows(page)).map((e) => e.Action)
  for (const a of ['template.create', 'template.update', 'template.toggle', 'template.delete', 'patient.preferences', 'message.cancel', 'message.cancel_group', 'message.retry', 'message.bulk'])
    assert.ok(actions.includes(a), `${a} in ${actions}`)
  assert.equal(actions.filter((a) => a == 'template.toggle').length, 2)
  await shot(page, 'admin-audit')
  await go(page, '#/audit?action=template.', 'audit')
  const only = (await rows(page)).map((e) => e.Action)
  assert.ok(only.length >= 5 && only.every((a) => a.startsWith('template.')), String(only))
})

const PAGES = () => [
  ['messages', '#/messages'],
  ['message', '#/messages/' + s.sent],
  ['send', '#/messages/new'],
  ['templates', '#/templates'],
  ['template', '#/templates/' + s.template],
  ['template-form', `#/templates/${s.template}/edit`],
  ['bulk', '#/bulk?batch=' + s.batch],
  ['dashboard', '#/dashboard'],
  ['patients', '#/patients/p-1001'],
  ['audit', '#/audit'],
]

test('every page fits a 360-px-wide screen (tables become cards)', async () => {
  const c = await r.context({ viewport: { width: 360, height: 760 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true })
  const p = await console_(r, c)
  for (const [name, hash] of PAGES()) {
    await go(p, hash, name)
    const w = await widths(p)
    assert.ok(w.scroll <= 360, `${name}: scrollWidth ${w.scroll} > 360`)
    await shot(p, `admin-${name}-360`)
  }
  // The list's rows are cards: each cell shows its column name.
  await go(p, '#/messages', 'messages')
  const before = await p.$eval('main table.data td', (td) => getComputedStyle(td, '::before').content)
  assert.equal(before, '"Message"')
  assert.deepEqual(p.errors, [])
})

test('axe-core: no serious or critical violation on the admin pages', async () => {
  // axe is injected as an inline script, which the console's CSP rightly refuses:
  // this context bypasses the CSP (the other tests run under it).
  const c = await r.context({ viewport: { width: 1280, height: 900 }, bypassCSP: true })
  const p = await c.newPage()
  await p.goto(r.hub.url + '/admin')
  await ready(p, 'signin')
  const found = {}
  const v = await axe(p)
  if (v.length) found.signin = v
  await p.fill('input[name=credential]', API_KEY)
  await p.click('form button[type=submit]')
  await ready(p, 'messages')
  for (const [name, hash] of PAGES()) {
    await go(p, hash, name)
    const v = await axe(p)
    if (v.length) found[name] = v
  }
  assert.deepEqual(found, {})
  // And no script error or CSP violation anywhere in the flows above.
  assert.deepEqual(page.errors, [])
})
