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
