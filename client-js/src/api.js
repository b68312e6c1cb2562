/**
 * REST calls to the hub with `Authorization: Bearer <token>`. A 401 drops the
 * token and, when `retry` is set, tries once more with a fresh one. Errors carry
 * the hub's `status` and `code` (`{"error": {"code", "message"}}`).
 */
export function createApi(env, base, auth) {
  const api = async (method, path, retry = true) => {
    const token = await auth.get()
    const res = await env.fetch(base + path, {
      method,
      headers: { Authorization: 'Bearer ' + token },
    })
    if (res.status == 401) {
      auth.invalidate(token)
      if (retry) return api(method, path, false)
    }
    const body = res.status == 204 ? null : await res.json().catch(() => null)
    if (!res.ok) {
      const err = (body && body.error) || {}
      throw Object.assign(new Error(err.message || 'HTTP ' + res.status), {
        status: res.status,
        code: err.code,
      })
    }
    return body
  }
  return api
}
