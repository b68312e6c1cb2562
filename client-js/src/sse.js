import { qs } from './util.js'

const TYPES = ['hello', 'notification', 'unread_count', 'read', 'read_all', 'error']
// SSE has no close codes: the hub ends the stream with an `error` event whose
// code says why. They map onto the WebSocket codes the connection understands.
const CLOSE = { token_expired: 4001, slow_consumer: 4008, shutdown: 1012, unavailable: 1011 }

/**
 * One Server-Sent Events attempt: `GET /v1/sse?token&last_event_id`. The
 * EventSource's own retry is not used: on any error it is closed and the
 * stream reconnects with backoff, a fresh token and the last seen id. The
 * `error` type carries both the hub's `event: error` frames (with data) and
 * connection failures (without); an `error` whose code is a close reason
 * (`token_expired`, ...) ends the attempt like the matching WebSocket close
 * code. Nothing is sent over SSE: `send` says no,
 * so the caller uses REST.
 */
export function openSse(env, o, token, since, h) {
  const es = new env.EventSource(o.base + '/v1/sse' + qs({ token, last_event_id: since }))
  let open = 0
  let done = 0
  const stop = () => {
    done = 1
    es.close()
  }
  es.onopen = () => {
    if (!open) {
      open = 1
      h.open()
    }
  }
  for (const type of TYPES)
    es.addEventListener(type, (e) => {
      if (done) return
      if (e.data == null) {
        stop()
        return h.close(0, !open)
      }
      let d
      try {
        d = JSON.parse(e.data)
      } catch {
        return
      }
      if (type == 'error' && CLOSE[d.code]) {
        stop()
        return h.close(CLOSE[d.code], !open)
      }
      h.frame(type, d)
    })
  return { send: () => false, close: stop }
}
