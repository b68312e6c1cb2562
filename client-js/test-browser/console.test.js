// The admin console's layout, forms and roles (issue #14), in chromium against a real
// hub: [hidden] hides, a template's kind is its own, table words stay whole, charts
// fit and stay readable, test-render marks clear, templates the clinic-event rules
// send cannot be deleted, a front-desk token sees only what it may do, and form and
// bulk errors come all at once (bulk ones by CSV line and column).
//
// SMS go through Twilio's adapter to a stand-in that prices every message, so the
// dashboard has costs to draw.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { rig, shot, freePort, until, API_KEY } from './support.js'
import { console_, ready, redraw, go, widths, text } from './admin-support.js'

let r
let page
let twilio
const s = {}

/** A stand-in for Twilio's Messages API that accepts every send at 12.50 SAR. */
async function pricedTwilio() {
  const port = await freePort()
  let n = 0
  const server = createServer(async (req, res) => {
    for await (const _ of req);
    res.writeHead(201, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify({ sid: 'SM' + String(++n).padStart(32, '0'), status: 'queued', price: '-12.50', price_unit: 'SAR' }))
  })
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok))
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => (server.closeAllConnections(), server.close(ok))) }
}

const api = (method, path, body) => r.hub.api(method, path, body)
const at = (t) => new Date(Date.now() + t).toISOString().replace(/\.\d+Z$/, 'Z')

before(async () => {
  twilio = await pricedTwilio()
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
  // A clinic event seeds the tenant with the templates the rules send.
  await api('POST', '/v1/events', {
    id: 'ev-1',
    type: 'appointment.booked',
    occurred_at: at(0),
    appointment: {
      id: 'apt-1',
      number: 'APT-1',
      start_at: at(3 * 86400e3),
      provider: { id: 'dr-1', name: 'Dr. Sara Al-Harbi', email: 'sara@clinic.example' },
      patient: { id: 'p-1', name: 'Ahmed Al-Saud', phone: '+966501234567', email: 'ahmed@example.com' },
    },
  })
  s.results = await api('POST', '/v1/templates', {
    name: 'lab_results_ready', channel: 'sms', kind: 'results', variables: ['patient_name', 'time'], is_active: true,
    body_en: 'Hello {patient_name}, your lab results are ready since {time}.', body_ar: 'مرحباً {patient_name}، نتائجك جاهزة منذ {time}.',
  })
  // Messages whose words a squeezed table broke: long texts, phone numbers, "cancelled".
  for (const [i, to] of ['+966500000101', '+966500000102', '+966500000103'].entries()) {
    const m = await api('POST', '/v1/messages', { to, channel: 'sms', kind: 'billing', send_at: at(86400e3),
      body: `Reminder ${i}: your invoice for the cardiology consultation and laboratory panel is ready for payment` })
    await api('POST', `/v1/messages/${m.id}/cancel`)
  }
  for (const to of ['+966500000104', '+966500000105'])
    await api('POST', '/v1/messages', { to, channel: 'sms', kind: 'appointment_reminder', body: 'See you tomorrow at the Riverside clinic, second floor.' })
  await until(async () => (await api('GET', '/v1/messages/stats?days=7')).cost.total > 0, 15000, 'priced sends')
  const c = await r.context({ viewport: { width: 1280, height: 900 } })
  page = await console_(r, c)
})
after(async () => {
  if (r) await r.close()
  if (twilio) await twilio.close()
})

test('[hidden] hides everything it is on: no "Sign out" while signed out', async () => {
  const c = await r.context({ viewport: { width: 1280, height: 900 } })
  const p = await c.newPage()
  await p.goto(r.hub.url + '/admin')
  await ready(p, 'signin')
  assert.equal(await p.isVisible('#signout'), false)
  const shown = await p.$$eval('[hidden]', (els) => els.filter((e) => getComputedStyle(e).display != 'none').map((e) => e.id || e.tagName))
  assert.deepEqual(shown, [])
  await shot(p, 'console-signin-1280')
  await c.close()
})

test("new message: a template's kind is its own (no 422 for a non-reminder template); Kind is for plain text", async () => {
  await go(page, '#/messages/new', 'send')
  const kindShown = () => page.isVisible('select[name=kind]')
  assert.equal(await kindShown(), true)
  await page.selectOption('select[name=template]', 'lab_results_ready')
  assert.equal(await kindShown(), false)
  assert.equal(await page.isVisible('textarea[name=body]'), false)
  assert.match(await text(page, '.template-kind'), /results/)
  await page.fill('input[name=to]', '+966500000200')
  await page.fill('textarea[name=variables]', 'patient_name=Sara\ntime=09:00')
  await shot(page, 'console-send-template-1280')
  await redraw(page, 'message', () => page.click('button:text("Send message")'))
  const id = await page.evaluate(() => decodeURIComponent(location.hash.split('/')[2]))
  const m = await api('GET', '/v1/messages/' + id)
  assert.deepEqual([m.kind, m.template.name], ['results', 'lab_results_ready'])
  await go(page, '#/messages/new', 'send')
  await page.selectOption('select[name=template]', '')
  assert.equal(await kindShown(), true)
})

/** Words (letters) and numbers that a table cell shows on more than one line. */
const brokenWords = (p) =>
  p.evaluate(() => {
    const broken = []
    for (const cell of document.querySelectorAll('main table.data th, main table.data td')) {
      const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT)
      for (let n; (n = walk.nextNode()); )
        for (const m of n.data.matchAll(/\p{L}+|\+?\d{3,}/gu)) {
          const range = document.createRange()
          range.setStart(n, m.index)
          range.setEnd(n, m.index + m[0].length)
          const lines = new Set([...range.getClientRects()].filter((x) => x.width > 0).map((x) => Math.round(x.top)))
          if (lines.size > 1) broken.push(m[0])
        }
    }
    return broken
  })

const TABLES = () => [
  ['messages', '#/messages'],
  ['templates', '#/templates'],
  ['template', '#/templates/' + s.results.id],
  ['audit', '#/audit'],
]

test('tables: no word or phone number broken at 1280 px; at 360 px they fit their box and the page does not scroll', async () => {
  for (const [name, hash] of TABLES()) {
    await go(page, hash, name)
    assert.deepEqual(await brokenWords(page), [], `${name} at 1280 px`)
    await shot(page, `console-${name}-1280`, { fullPage: true })
  }
  const c = await r.context({ viewport: { width: 360, height: 760 }, isMobile: true, hasTouch: true })
  const p = await console_(r, c)
  for (const [name, hash] of TABLES()) {
    await go(p, hash, name)
    const w = await widths(p)
    assert.ok(w.scroll <= 360, `${name}: the page scrolls sideways (${w.scroll})`)
    const boxes = await p.$$eval('main .table-wrap', (els) => els.map((e) => e.getBoundingClientRect().right))
    assert.ok(boxes.length > 0 && boxes.every((right) => right <= 360), `${name}: ${boxes}`)
    await shot(p, `console-${name}-360`, { fullPage: true })
  }
  await c.close()
})

/** Every chart text inside its drawing, the tiles' values inside their tiles. */
const clipped = (p) =>
  p.evaluate(() => {
    const out = []
    for (const svg of document.querySelectorAll('svg.chart')) {
      const vb = svg.viewBox.baseVal
      for (const t of svg.querySelectorAll('text')) {
        const b = t.getBBox()
        if (b.x < vb.x - 0.5 || b.x + b.width > vb.x + vb.width + 0.5) out.push(t.textContent)
      }
    }
    for (const v of document.querySelectorAll('.tile .value')) if (v.scrollWidth > v.clientWidth) out.push(v.textContent)
    return out
  })

test('dashboard: no chart label or tile value clipped (the cost); at 360 px the daily axis text is at least 10 px', async () => {
  await go(page, '#/dashboard', 'dashboard')
  assert.match(await text(page, '[data-tile=cost] .value'), /SAR/)
  assert.deepEqual(await clipped(page), [])
  await shot(page, 'console-dashboard-1280', { fullPage: true })
  const c = await r.context({ viewport: { width: 360, height: 760 }, isMobile: true, hasTouch: true })
  const p = await console_(r, c, '#/dashboard', 'dashboard')
  assert.deepEqual(await clipped(p), [])
  const sizes = await p.$$eval('[data-chart=daily] svg text', (ts) => ts.map((t) => t.ownerSVGElement.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize)))
  assert.ok(sizes.length > 0 && sizes.every((px) => px >= 10), `daily axis text: ${sizes.map((x) => x.toFixed(1))} px`)
  await shot(p, 'console-dashboard-360', { fullPage: true })
  await c.close()
})

test('test render: once the missing variable is filled, it is no longer marked', async () => {
  await go(page, '#/templates/' + s.results.id, 'template')
  await page.fill('input[name="variables.patient_name"]', 'Sara')
  await page.click('button:text-is("Render")')
  await page.waitForSelector('[role=alert]')
  assert.equal(await page.getAttribute('input[name="variables.time"]', 'aria-invalid'), 'true')
  await page.fill('input[name="variables.time"]', '09:00')
  await page.click('button:text-is("Render")')
  await page.locator('.rendered-body').waitFor()
  assert.equal(await page.locator('.rendered-body').innerText(), 'Hello Sara, your lab results are ready since 09:00.')
  assert.equal(await page.locator('form [aria-invalid=true]').count(), 0)
  assert.equal(await page.locator('form .field-error').count(), 0)
})

test('a template the clinic-event rules send: marked in the list and the detail, the delete button says why; the hub answers 409', async () => {
  const all = (await api('GET', '/v1/templates?limit=200')).items
  const used = all.find((t) => t.name == 'appointment.cancelled.email')
  assert.deepEqual(used.used_by_rules, ['events.cancelled.messages[1]'])
  await go(page, '#/templates', 'templates')
  const marks = await page.$$eval('main table.data tbody tr', (trs) =>
    Object.fromEntries(trs.map((tr) => [tr.querySelector('a').textContent, !!tr.querySelector('.pill.rules')])))
  assert.equal(marks['appointment.cancelled.email'], true)
  assert.equal(marks['lab_results_ready'], false)
  await go(page, '#/templates/' + used.id, 'template')
  assert.match(await text(page, 'dl.props'), /events\.cancelled\.messages\[1\]/)
  const del = page.locator('main .actions button:text-is("Delete")')
  assert.equal(await del.getAttribute('aria-disabled'), 'true')
  const why = await page.evaluate(() => {
    const b = [...document.querySelectorAll('main .actions button')].find((x) => x.textContent == 'Delete')
    return document.getElementById(b.getAttribute('aria-describedby')).textContent
  })
  assert.match(why, /clinic-event rules send it \(events\.cancelled\.messages\[1\]\)/)
  await del.click({ force: true }) // aria-disabled: Playwright would wait for it to be enabled
  assert.equal(await page.locator('button:text("Delete template")').count(), 0)
  await shot(page, 'console-template-used-1280', { fullPage: true })
  // The hub refuses it too, whatever the page shows.
  const res = await fetch(r.hub.url + '/v1/templates/' + used.id, { method: 'DELETE', headers: { Authorization: 'Bearer ' + API_KEY } })
  assert.equal(res.status, 409)
  const body = await res.json()
  assert.equal(body.error.code, 'template_in_use')
  assert.match(body.error.message, /events\.cancelled\.messages\[1\]/)
  assert.equal((await api('GET', '/v1/templates/' + used.id)).name, 'appointment.cancelled.email')
})

test('a front-desk token sees no Edit, Deactivate, Delete, New template, Bulk send, Cancel or Save', async () => {
  const token = (await api('POST', '/v1/tokens', { user_id: 'u-desk', role: 'front_desk', ttl_seconds: 600 })).token
  const c = await r.context({ viewport: { width: 1280, height: 900 } })
  const p = await c.newPage()
  await p.goto(r.hub.url + '/admin')
  await ready(p, 'signin')
  await p.fill('input[name=credential]', token)
  await p.click('form button[type=submit]')
  await ready(p, 'messages')
  const visible = (sel) => p.locator(sel).filter({ visible: true }).count()
  assert.equal(await visible('nav a:text("Bulk send")'), 0)
  assert.equal(await visible('button:text("Cancel queued messages")'), 0)
  assert.equal(await visible('a:text("New message")'), 1, 'single sends stay')
  await go(p, '#/templates', 'templates')
  assert.equal(await visible('a:text("New template")'), 0)
  await go(p, '#/templates/' + s.results.id, 'template')
  for (const name of ['Edit', 'Deactivate', 'Delete']) assert.equal(await visible(`main :text-is("${name}")`), 0, name)
  assert.equal(await visible('button:text-is("Render")'), 1, 'test render is a read')
  await shot(p, 'console-template-front-desk-1280', { fullPage: true })
  const queued = await api('POST', '/v1/messages', { to: '+966500000400', channel: 'sms', kind: 'billing', body: 'Later.', send_at: at(86400e3) })
  await go(p, '#/messages/' + queued.id, 'message')
  assert.match(await text(p, 'dl.props'), /queued/)
  assert.equal(await visible('button:text("Cancel message")'), 0)
  await go(p, '#/patients/p-1', 'patients')
  assert.equal(await visible('button:text("Save preferences")'), 0)
  await go(p, '#/bulk', 'bulk')
  assert.match(await text(p, 'main'), /front desk/)
  await c.close()
})

test('the template form lists every error at once', async () => {
  await go(page, '#/templates/new', 'template-form')
  await page.fill('input[name=name]', 'Bad Name!')
  await page.selectOption('select[name=channel]', 'email')
  await page.fill('textarea[name=body_en]', 'Hello {patient_name}')
  await page.fill('input[name=variables]', 'time')
  await page.click('form button[type=submit]')
  await page.waitForSelector('[role=alert]')
  const items = await page.$$eval('[role=alert] li', (li) => li.map((x) => x.textContent))
  for (const want of [/^name:/, /^body_ar: must not be empty/, /^subject_en: is required/, /^subject_ar: is required/, /^variables: not declared but used in the text: patient_name/])
    assert.ok(items.some((x) => want.test(x)), `${want} in ${JSON.stringify(items)}`)
  const marked = await page.$$eval('form [aria-invalid=true]', (els) => els.map((e) => e.name).sort())
  assert.deepEqual(marked, ['body_ar', 'name', 'subject_ar', 'subject_en', 'variables'])
  await shot(page, 'console-template-form-errors-1280', { fullPage: true })
  assert.equal((await api('GET', '/v1/templates?limit=200')).items.some((t) => t.name == 'Bad Name!'), false)
})

test('bulk: every recipient error at once, by CSV line and column; the hub\'s own by line and column too', async () => {
  await go(page, '#/bulk', 'bulk')
  await page.selectOption('select[name=template]', 'lab_results_ready')
  // Line 3 has no address, line 5 a bad phone, line 6 an empty variable (blank line 4 skipped).
  const csv = 'patient_id,to,patient_name,time\n,+966500000301,Sara,09:00\n,,Omar,09:30\n\n,12345,Huda,10:00\n,+966500000302,Lina,\n'
  await page.fill('textarea[name=recipients]', csv)
  await page.click('button:text("Send to all")')
  await page.waitForSelector('[role=alert]')
  const items = await page.$$eval('[role=alert] li', (li) => li.map((x) => x.textContent))
  assert.deepEqual(items.map((x) => x.split(':')[0]), ['Line 3, column to', 'Line 5, column to', 'Line 6, column time'])
  assert.equal(await page.getAttribute('textarea[name=recipients]', 'aria-invalid'), 'true')
  await shot(page, 'console-bulk-errors-1280', { fullPage: true })
  // What only the hub knows (a patient id it refuses) is said the same way.
  await page.fill('textarea[name=recipients]', 'patient_id,to,patient_name,time\np-1,,Sara,09:00\nbad id!,,Omar,09:30\n')
  await page.click('button:text("Send to all")')
  await page.waitForFunction(() => /Line 3, column patient_id/.test(document.querySelector('[role=alert]')?.textContent || ''))
  assert.doesNotMatch(await text(page, '[role=alert]'), /recipients\[/)
  assert.equal((await api('GET', '/v1/messages?template=lab_results_ready&limit=200')).items.length, 1, 'only the single send')
})
