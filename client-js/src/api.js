/**
 * REST calls to the hub with `Authorization: Bearer <token>` (and a JSON
 * `body` when given). A 401 drops the token and, when `retry` is set, tries
 * once more with a fresh one. Errors carry the hub's `status`, `code` and
 * `field` (`{"error": {"code", "message", "field"}}`).
 */
export function createApi(env, base, auth) {
  const api = async (method, path, retry = true, body) => {
    const token = await auth.get()
    const headers = { Authorization: 'Bearer ' + token }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const res = await env.fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (res.status == 401) {
      auth.invalidate(token)
      if (retry) return api(method, path, false, body)
    }
    const out = res.status == 204 ? null : await res.json().catch(() => null)
    if (!res.ok) {
      const err = (out && out.error) || {}
      throw Object.assign(new Error(err.message || 'HTTP ' + res.status), {
        status: res.status,
        code: err.code,
        field: err.field,
      })
    }
    return out
  }
  return api
}
