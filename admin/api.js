// The hub's REST API with the signed-in credential (an API key or an admin
// token, kept in this tab's sessionStorage: gone when the tab closes).

const KEY = 'tidings.admin.credential'

export const credential = {
  get: () => sessionStorage.getItem(KEY),
  set: (c) => sessionStorage.setItem(KEY, c),
  clear: () => sessionStorage.removeItem(KEY),
}

/**
 * What the signed-in credential may do: `full` for an API key or an `admin` token,
 * `front_desk` for a front-desk token (the hub lets it read, send single messages and
 * retry; everything else is a 403). The role is the token's `role` claim, read
 * without checking the signature: this only decides which buttons to show, the hub
 * decides what is allowed. A credential that is not a JWT is an API key.
 */
export function access(c = credential.get()) {
  const parts = String(c || '').split('.')
  if (parts.length != 3) return 'full'
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(parts[1].length / 4) * 4, '='))
    const role = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (ch) => ch.charCodeAt(0)))).role
    return role == 'admin' ? 'full' : role == 'front_desk' ? 'front_desk' : 'none'
  } catch {
    return 'none'
  }
}

/** True when the credential may change things beyond single sends and retries. */
export const canWrite = () => access() == 'full'

/** An error answered by the hub: `status`, and the contract's `code`, `message`, `field`. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {}
    super(e.message || `HTTP ${status}`)
    this.status = status
    this.code = e.code || (status ? 'http_' + status : 'network')
    this.field = e.field || null
  }
}

/** Called when the hub answers 401 (the credential is wrong, expired or revoked). */
let onUnauthorized = () => {}
export const setUnauthorizedHandler = (fn) => (onUnauthorized = fn)

/** Query string from an object, skipping empty values. */
export function qs(params = {}) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v)
  const s = q.toString()
  return s ? '?' + s : ''
}

async function send(method, path, body, { auth = credential.get(), headers = {} } = {}) {
  let res
  try {
    res = await fetch(path, {
      method,
      headers: {
        Accept: 'application/json',
        ...(auth ? { Authorization: 'Bearer ' + auth } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    })
  } catch (e) {
    throw Object.assign(new ApiError(0, { error: { code: 'network', message: 'The hub did not answer: ' + e.message } }))
  }
  return res
}

/** A JSON request; rejects with an ApiError for any non-2xx answer. */
export async function api(method, path, body, options = {}) {
  const res = await send(method, path, body, options)
  const text = await res.text()
  let data = null
  try {
    data = text ? JSON.parse(text) : null
  } catch {
    data = null
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data)
    if (res.status == 401 && !options.auth) onUnauthorized(err)
    throw err
  }
  return data
}

/**
 * Downloads `path` with the Authorization header (a plain link cannot carry
 * it) and saves the body under `filename` through a blob URL.
 */
export async function download(path, filename) {
  const res = await send('GET', path, undefined, { headers: { Accept: 'text/csv' } })
  if (!res.ok) {
    let data = null
    try {
      data = await res.json()
    } catch {}
    throw new ApiError(res.status, data)
  }
  const blob = await res.blob()
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = filename
  a.hidden = true
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
  return blob.size
}

/** Every page of a list (for small lists such as templates), up to `max` items. */
export async function all(path, params = {}, max = 1000) {
  const items = []
  let cursor
  do {
    const page = await api('GET', path + qs({ ...params, limit: 200, cursor }))
    items.push(...page.items)
    cursor = page.next_cursor
  } while (cursor && items.length < max)
  return items
}

/** A fresh Idempotency-Key (randomUUID needs a secure context; getRandomValues does not). */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID()
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('')
}
