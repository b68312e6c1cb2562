// The browser suite's rig: a real hub (target/release/tidings), a static server for the
// pages, Debian's chromium driven by playwright-core. Every wait has a timeout and
// every process started here is stopped by its PID.
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { createServer as netServer } from 'node:net'
import { mkdtempSync, readFileSync, rmSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, extname, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
export const clientRoot = resolve(here, '..')
export const repoRoot = resolve(clientRoot, '..')

export const API_KEY = 'tdk_browser_0123456789abcdef'
const JWT_SECRET = 'browser-suite-secret-0123456789'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A free loopback port (bound then released). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = netServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

/** Polls `fn` until it returns a truthy value; throws after `ms` with `what`. */
export async function until(fn, ms, what) {
  const end = Date.now() + ms
  let last
  for (;;) {
    try {
      last = await fn()
      if (last) return last
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what} (last: ${last})`)
    await sleep(50)
  }
}

export function hubBinary() {
  if (process.env.TIDINGS_BIN) return process.env.TIDINGS_BIN
  const target = process.env.CARGO_TARGET_DIR || join(repoRoot, 'target')
  return join(target, 'release', 'tidings')
}

/**
 * A hub process on a fixed port and database, so it can be stopped (SIGTERM)
 * and started again on the same ones.
 */
export class Hub {
  constructor({ port, dir, origins, config }) {
    this.port = port
    this.dir = dir
    this.origins = origins
    // Optional TOML for `serve --config` (e.g. per-tenant outbound providers).
    this.config = config
    this.url = `http://127.0.0.1:${port}`
    this.proc = null
    this.log = ''
  }

  static async start(origins, { config } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'tidings-browser-'))
    const hub = new Hub({ port: await freePort(), dir, origins, config })
    await hub.start()
    return hub
  }

  async start() {
    const bin = hubBinary()
    if (!existsSync(bin)) throw new Error(`no hub binary at ${bin}: run cargo build --release first`)
    const env = {
      ...process.env,
      TIDINGS_LISTEN: `127.0.0.1:${this.port}`,
      TIDINGS_DATABASE_URL: `sqlite://${this.dir}/db`,
      TIDINGS_DEV_TENANT: 'demo',
      TIDINGS_DEV_API_KEY: API_KEY,
      TIDINGS_DEV_JWT_SECRET: JWT_SECRET,
      TIDINGS_CORS_ORIGINS: JSON.stringify(this.origins),
      TIDINGS_LOG_LEVEL: 'warn',
      TIDINGS_SHUTDOWN__GRACE_SECS: '2',
    }
    const args = ['serve']
    if (this.config) {
      writeFileSync(join(this.dir, 'config.toml'), this.config)
      args.push('--config', join(this.dir, 'config.toml'))
    }
    const p = spawn(bin, args, { env, cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = p
    p.stdout.on('data', (d) => (this.log += d))
    p.stderr.on('data', (d) => (this.log += d))
    p.exited = new Promise((r) => p.once('exit', (code, sig) => r({ code, sig })))
    // If this test process dies first, the hub must not outlive it.
    const reap = () => p.exitCode == null && p.signalCode == null && process.kill(p.pid, 'SIGKILL')
    process.once('exit', reap)
    p.once('exit', () => process.off('exit', reap))
    await until(
      async () => {
        if (p.exitCode != null) throw new Error('hub exited: ' + this.log.slice(-2000))
        const r = await fetch(this.url + '/readyz', { signal: AbortSignal.timeout(1000) })
        return r.status == 200
      },
      20000,
      'hub ready',
    )
  }

  /** SIGTERM and wait for the exit (SIGKILL after 15 s). */
  async stop() {
    const p = this.proc
    if (!p || p.exitCode != null || p.signalCode != null) return
    this.proc = null
    process.kill(p.pid, 'SIGTERM')
    const t = setTimeout(() => p.exitCode == null && process.kill(p.pid, 'SIGKILL'), 15000)
    await p.exited
    clearTimeout(t)
  }

  async close() {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }

  async api(method, path, body, auth = API_KEY) {
    const r = await fetch(this.url + path, {
      method,
      headers: { Authorization: 'Bearer ' + auth, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10000),
    })
    const text = await r.text()
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`)
    return text ? JSON.parse(text) : null
  }

  /** A user token for `user` (staff role provider) valid `ttl` seconds. */
  async token(user, ttl = 3600, extra = {}) {
    return (await this.api('POST', '/v1/tokens', { user_id: user, role: 'provider', ttl_seconds: ttl, ...extra })).token
  }

  /** Publishes one notification to `user`; returns its id. */
  async publish(user, fields = {}) {
    const body = { user_id: user, title: 'New appointment', message: 'Ahmed Al-Saud booked Sun 10:00', ...fields }
    return (await this.api('POST', '/v1/notifications', body)).notifications[0].id
  }

  async unread(user) {
    return (await this.api('GET', '/v1/me/unread-count', null, await this.token(user))).unread
  }
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png', '.svg': 'image/svg+xml' }

/** Serves client-js/ (pages, src, elements, dist) on a free port. Unknown paths are a 404 page. */
export async function startStatic() {
  const port = await freePort()
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname)
    const file = resolve(clientRoot, '.' + path)
    if (!file.startsWith(clientRoot) || !existsSync(file) || !extname(file)) {
      res.writeHead(404, { 'Content-Type': 'text/html; charset=utf-8' })
      return res.end('<!doctype html><html lang="en"><title>Not found</title><h1>Not found: ' + path.replace(/[<&]/g, '') + '</h1></html>')
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' })
    res.end(readFileSync(file))
  })
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) }
}

export const CHROMIUM = process.env.TIDINGS_CHROMIUM || '/usr/bin/chromium'

/** Debian's chromium, headless; never a downloaded browser. */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--font-render-hinting=none',
    ],
  })
}

/**
 * Everything one test file needs: a hub, the static server, the browser.
 * `ctx.open(page, query)` loads a test page wired to the hub: `query.user`
 * is the staff member; `query.ttl` a list of token lifetimes handed out in
 * order by `getToken` (the last one repeats).
 */
export async function rig({ config } = {}) {
  const web = await startStatic()
  let hub
  let browser
  try {
    hub = await Hub.start([web.origin], { config })
    browser = await launch()
  } catch (e) {
    // Nothing may keep the process alive after a failed start.
    if (hub) await hub.close()
    await web.close()
    throw e
  }
  const contexts = []
  const ctx = {
    hub,
    web,
    browser,
    async context(options = {}) {
      const c = await browser.newContext({ viewport: { width: 900, height: 640 }, deviceScaleFactor: 1, ...options })
      c.setDefaultTimeout(10000)
      contexts.push(c)
      // getToken in the pages asks here: the API key never reaches the browser.
      const ttls = new Map()
      await c.exposeFunction('tidingsToken', async (user, key, expired) => {
        const list = ttls.get(key) || [3600]
        const ttl = list.length > 1 ? list.shift() : list[0]
        ttls.set(key, list)
        return hub.token(user, ttl)
      })
      c.ttls = ttls
      return c
    },
    /** Opens `pages/<name>.html` with the hub URL and `query`. */
    async open(context, name, query = {}) {
      const page = await context.newPage()
      page.errors = []
      page.on('pageerror', (e) => page.errors.push(String(e)))
      const key = query.key || Math.random().toString(36).slice(2)
      if (query.ttl) context.ttls.set(key, [...query.ttl])
      const q = new URLSearchParams({ hub: hub.url, key, ...Object.fromEntries(Object.entries(query).filter(([k]) => k != 'ttl')) })
      await page.goto(`${web.origin}/test-browser/pages/${name}.html?${q}`)
      return page
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {})
      await browser.close().catch(() => {})
      await hub.close()
      await web.close()
    },
  }
  return ctx
}

/** The bell's state as the page sees it. */
export const bellState = (page, sel = 'tidings-bell') =>
  page.evaluate((sel) => {
    const el = document.querySelector(sel)
    const r = el.shadowRoot
    const badge = r.querySelector('.badge')
    return {
      state: el.dataset.state,
      transport: el.client && el.client.transport,
      badge: badge.hidden ? '' : badge.textContent,
      label: r.querySelector('.bell').getAttribute('aria-label'),
      expanded: r.querySelector('.bell').getAttribute('aria-expanded'),
      items: [...r.querySelectorAll('.item')].map((i) => ({
        id: i.dataset.id,
        type: i.dataset.type,
        unread: i.classList.contains('unread'),
        title: i.querySelector('.t').textContent,
        message: i.querySelector('.m').textContent,
        time: i.querySelector('time').textContent,
      })),
      focus: r.activeElement ? r.activeElement.dataset.id || r.activeElement.className : null,
    }
  }, sel)

/** Saves a screenshot into TIDINGS_SCREENSHOTS (scripts/screenshots points it at docs/screenshots), else test-browser/out. */
export async function shot(target, name, options = {}) {
  const dir = process.env.TIDINGS_SCREENSHOTS || join(here, 'out')
  mkdirSync(dir, { recursive: true })
  await target.screenshot({ path: join(dir, name + '.png'), animations: 'disabled', ...options })
}

/** axe-core in the page; returns the serious and critical violations. */
export async function axe(page, include) {
  const src = readFileSync(join(clientRoot, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8')
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ content: src })
  const res = await page.evaluate(async (include) => {
    const r = await window.axe.run(include ? { include: [include] } : document, { resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }))
  }, include)
  return res.filter((v) => v.impact == 'serious' || v.impact == 'critical')
}
