/**
 * Leader election among the tabs of one origin, and the channel between them.
 *
 * - Web Locks (`navigator.locks`): the tab holding the lock `name` leads until
 *   it closes or its page goes away; the browser then hands the lock to the
 *   next waiting tab. No timers.
 * - BroadcastChannel only: the leader posts a heartbeat every `hb` ms; a
 *   follower that hears none for 3 × hb takes over; of two leaders that hear
 *   each other, the one with the lower random id stays. A leader that closes
 *   says `bye` and the followers elect at once (after a short random wait).
 * - Neither (or `share: false`): `solo`, every tab leads its own connection.
 *
 * Callbacks: `lead()` on becoming leader, `follow()` on stepping down,
 * `msg(m)` for every message from another tab.
 */
export function elect(env, name, hb, cb) {
  const BC = env.BroadcastChannel
  if (!BC) return solo(env, name, hb, cb)
  const ch = new BC(name)
  const locks = env.locks
  const me = env.random()
  let leader = false
  let dead = false
  let watch
  let beat
  let release
  let abort
  const post = (m) => {
    try {
      ch.postMessage(m)
    } catch {}
  }
  const tick = () => {
    post({ t: 'hb', id: me })
    beat = env.setTimeout(tick, hb)
  }
  const lead = () => {
    if (dead || leader) return
    leader = true
    env.clearTimeout(watch)
    cb.lead()
    if (!locks) tick()
  }
  const arm = (ms) => {
    env.clearTimeout(watch)
    watch = env.setTimeout(lead, ms)
  }
  ch.onmessage = ({ data: m }) => {
    if (dead || !m) return
    if (!locks) {
      if (m.t == 'hb') {
        if (!leader) arm(3 * hb)
        else if (m.id < me) {
          leader = false
          env.clearTimeout(beat)
          cb.follow()
          arm(3 * hb)
        }
      } else if (m.t == 'bye' && !leader) arm(env.random() * (hb / 4))
      else if (m.t == 'hi' && leader) post({ t: 'hb', id: me })
    }
    cb.msg(m)
  }
  if (locks) {
    abort = new AbortController()
    locks
      .request(name, { signal: abort.signal }, () =>
        dead ? 0 : new Promise((r) => ((release = r), lead())),
      )
      .catch(() => {})
  } else arm(hb / 2)
  post({ t: 'hi' })
  return {
    post,
    close() {
      if (leader && !locks) post({ t: 'bye' })
      dead = true
      env.clearTimeout(watch)
      env.clearTimeout(beat)
      if (release) release()
      abort && abort.abort()
      ch.close()
    },
  }
}

export function solo(env, name, hb, cb) {
  cb.lead()
  return { post() {}, close() {} }
}
