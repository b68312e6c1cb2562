/** A query string from the defined values of `params` ('' when none). */
export function qs(params) {
  const p = new URLSearchParams()
  for (const k in params) if (params[k] != null) p.set(k, params[k])
  const s = '' + p
  return s && '?' + s
}
