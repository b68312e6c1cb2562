import { backoff } from './backoff.js'
import { openWs } from './ws.js'
import { openSse } from './sse.js'

/**
 * The realtime connection of the tab that holds one (the leader, or every tab
 * when sharing is off): picks the transport, reconnects, refreshes the token.
 *
 * - Every reconnect resumes from `o.lastId()` (`since` / `last_event_id`), so
 *   the hub replays exactly what was missed; the inbox drops any repeat.
 * - Delays: exponential backoff with full jitter; the attempt count resets
 *   when a connection opens.
 * - Close 4001 (token expired or revoked): drop the token, reconnect with a
 *   new one from `getToken`.
 * - A failure before the connection opened tells nothing in a browser (a 401
 *   and a blocking proxy look the same), so the hub is probed over REST:
 *   401 → token refresh; reachable → in `auto` mode, after `fallbackAfter`
 *   such WebSocket failures in a row, switch to SSE for good; unreachable →
 *   plain backoff.
 * - No token to be had (static token rejected, `getToken` yields nothing):
 *   state `unauthorized` and stop. Never an anonymous connection.
 */
export function createConnection(env, o) {
  let kind = o.mode == 'sse' || (o.mode != 'ws' && !env.WebSocket) ? 'sse' : 'ws'
  let t = null
  let timer = 0
  let attempt = 0
  let wsFails = 0
  let stopped = false

  const state = (s) => o.state(s, kind)
  const schedule = (ms) => {
    timer = env.setTimeout(run, ms)
  }
  const retry = () => schedule(backoff(attempt++, o.backoff, env.random))
  const stop = () => {
    stopped = true
    env.clearTimeout(timer)
    if (t) t.close()
    t = null
  }
  const deny = () => {
    stop()
    o.state('unauthorized', null)
    o.denied()
  }
  const refresh = (token) => {
    o.auth.invalidate(token)
    o.auth.canRefresh ? retry() : deny()
  }

  async function run() {
    timer = 0
    let token
    try {
      token = await o.auth.get()
    } catch (e) {
      if (!stopped) e.code == 'unauthorized' ? deny() : retry()
      return
    }
    if (stopped) return
    const h = {
      open() {
        attempt = wsFails = 0
        state('open')
      },
      frame: o.frame,
      close(code, early) {
        t = null
        if (!stopped) closed(token, code, early)
      },
    }
    try {
      t = (kind == 'ws' ? openWs : openSse)(env, o, token, o.lastId(), h)
    } catch {
      h.close(0, true)
    }
  }

  async function closed(token, code, early) {
    state('reconnecting')
    if (code == 4001) return refresh(token)
    if (early) {
      const r = await o.probe()
      if (stopped) return
      if (r == 'auth') return refresh(token)
      if (r == 'ok' && kind == 'ws' && o.mode != 'ws' && ++wsFails >= o.fallbackAfter) {
        kind = 'sse'
        return schedule(0)
      }
    }
    retry()
  }

  state('connecting')
  run()
  return {
    send: (m) => !!(t && t.send(m)),
    close: stop,
  }
}
