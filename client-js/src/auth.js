/** The error every path raises when no usable token can be had. */
export const unauthorized = () =>
  Object.assign(new Error('Tidings: no valid token'), { code: 'unauthorized' })

/**
 * Holds the current token. A token is used until the hub rejects it; then
 * `invalidate(used)` drops it and the next `get()` asks `getToken({ expired: true })`.
 * Concurrent refreshes share one `getToken` call. Without `getToken`, or when it
 * yields no token, `get()` rejects with `unauthorized()`: the library never
 * goes on without a token.
 */
export function createAuth({ token, getToken }) {
  let current = token || null
  let expired = false
  let pending = null
  return {
    canRefresh: !!getToken,
    get() {
      if (current) return Promise.resolve(current)
      if (!getToken) return Promise.reject(unauthorized())
      return (pending ||= Promise.resolve()
        .then(() => getToken({ expired }))
        .then(
          (t) => {
            pending = null
            if (!t) throw unauthorized()
            expired = false
            return (current = t)
          },
          (e) => {
            pending = null
            throw e
          },
        ))
    },
    /** Drops `used` if it is still the current token (a newer one stays). */
    invalidate(used) {
      if (used === current) {
        current = null
        expired = true
      }
    },
  }
}
