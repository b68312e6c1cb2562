import { qs } from './util.js'

/**
 * One WebSocket attempt: `GET /v1/ws?token&since`. It counts as open at the
 * hub's `hello` (a proxy may accept the upgrade and still drop it); a socket
 * with no `hello` after `o.hello` ms is closed (code 4002, local) and counts as
 * a failure before `hello`, so it is retried with backoff. A client
 * `ping` every `o.ping` ms: when nothing at all came back in between, the
 * socket is dead and is closed (code 4000, local). `h.close(code, early)`
 * reports every end the client did not ask for; early = before `hello`.
 */
export function openWs(env, o, token, since, h) {
  const ws = new env.WebSocket(o.base.replace(/^http/, 'ws') + '/v1/ws' + qs({ token, since }))
  let open = 0
  let rx = 0
  let done = 0
  let timer
  let wait
  const send = (m) => (open && ws.readyState == 1 ? (ws.send(JSON.stringify(m)), true) : false)
  const stop = () => {
    done = 1
    env.clearTimeout(timer)
    env.clearTimeout(wait)
    try {
      ws.close()
    } catch {}
  }
  const end = (code) => {
    if (!done) {
      stop()
      h.close(code, !open)
    }
  }
  const tick = () => {
    if (!rx) return end(4000)
    rx = 0
    send({ type: 'ping' })
    timer = env.setTimeout(tick, o.ping)
  }
  ws.onmessage = (e) => {
    rx = 1
    let m
    try {
      m = JSON.parse(e.data)
    } catch {
      return
    }
    if (m.type == 'hello' && !open) {
      open = 1
      env.clearTimeout(wait)
      if (o.ping) timer = env.setTimeout(tick, o.ping)
      h.open()
    }
    if (open) h.frame(m.type, m.data)
  }
  // The close event that follows says all; a no-op listener keeps Node's `ws` from throwing.
  ws.onerror = () => {}
  ws.onclose = (e) => end(e.code)
  if (o.hello) wait = env.setTimeout(() => end(4002), o.hello)
  return { send, close: stop }
}
