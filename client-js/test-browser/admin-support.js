// Helpers for the admin console's browser tests: the console is served by the
// hub itself (/admin), so pages load from the hub's origin.
import { API_KEY, until } from './support.js'

/** Waits until the console has finished drawing page `name`. */
export const ready = (page, name) =>
  page.waitForFunction((n) => {
    const m = document.getElementById('main')
    return m && m.dataset.page == n && m.dataset.ready
  }, name, { timeout: 10000 })

/** Opens the console at `hash` in a new page of `context`, signed in with the API key. */
export async function console_(ctx, context, hash = '#/messages', name = 'messages') {
  const page = await context.newPage()
  page.errors = []
  page.on('pageerror', (e) => page.errors.push(String(e)))
  // Console errors are script errors and CSP violations; an API answer of 4xx is logged
  // by the browser as a failed resource, and those are expected (and checked) here.
  page.on('console', (m) => m.type() == 'error' && !/^Failed to load resource/.test(m.text()) && page.errors.push('console: ' + m.text()))
  await page.goto(ctx.hub.url + '/admin' + hash)
  await ready(page, 'signin')
  await page.fill('input[name=credential]', API_KEY)
  await page.click('form button[type=submit]')
  await ready(page, name)
  return page
}

/**
 * Runs `fn` (a click that makes the console draw page `name` again, or another
 * one) and waits for that new drawing, not the one already on screen.
 */
export async function redraw(page, name, fn) {
  const before = await page.evaluate(() => document.getElementById('main').dataset.ready || '')
  await fn()
  await page.waitForFunction(
    ([n, b]) => {
      const m = document.getElementById('main')
      return m.dataset.page == n && m.dataset.ready && m.dataset.ready != b
    },
    [name, before],
    { timeout: 10000 },
  )
}

/** Navigates the console to `hash` and waits for `name`. */
export async function go(page, hash, name) {
  await page.evaluate((h) => (location.hash = h), hash)
  await ready(page, name)
}

/** The page is no wider than the viewport (no horizontal scrolling). */
export const widths = (page) =>
  page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, viewport: document.documentElement.clientWidth }))

/** Rows of the data table as [{label: text}] (the labels are the column headings). */
export const rows = (page, scope = 'main') =>
  page.evaluate(
    (scope) =>
      [...document.querySelectorAll(`${scope} table.data tbody tr`)].map((tr) =>
        Object.fromEntries([...tr.children].map((td) => [td.dataset.label, td.textContent.trim()])),
      ),
    scope,
  )

export const text = (page, sel) => page.locator(sel).first().innerText()

export { until }

/**
 * A stand-in for Twilio's Messages API on a free loopback port: every send is
 * accepted (201 with a sid), except to `reject`, which gets Twilio's 400 with
 * code 21211 (invalid To number: a permanent rejection, so the message fails).
 * `sends` records the To of every request.
 */
export async function fakeTwilio(reject) {
  const { createServer } = await import('node:http')
  const { freePort } = await import('./support.js')
  const port = await freePort()
  const sends = []
  let n = 0
  const server = createServer(async (req, res) => {
    let body = ''
    for await (const c of req) body += c
    const to = new URLSearchParams(body).get('To')
    sends.push(to)
    res.setHeader('Content-Type', 'application/json')
    if (to == reject) {
      res.writeHead(400)
      return res.end(JSON.stringify({ code: 21211, message: `The 'To' number ${to} is not a valid phone number.`, more_info: 'https://www.twilio.com/docs/errors/21211', status: 400 }))
    }
    res.writeHead(201)
    res.end(JSON.stringify({ sid: 'SM' + String(++n).padStart(32, '0'), status: 'queued', price: null, price_unit: null }))
  })
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${port}`, sends, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) }
}
