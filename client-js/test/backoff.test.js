import test from 'node:test'
import assert from 'node:assert/strict'
import { backoff } from '../src/backoff.js'
import { connect } from '../src/index.js'
import { world, fakeFetch } from './support/fakes.js'

test('full jitter: the cap doubles per attempt up to max', () => {
  const half = () => 0.5
  const delays = [0, 1, 2, 3, 4, 5, 6, 40].map((n) => backoff(n, { base: 1000, max: 30000 }, half))
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000])
})

test('full jitter: every delay lies in [0, min(max, base * 2^n))', () => {
  assert.equal(backoff(3, { base: 100, max: 10000 }, () => 0), 0)
  assert.equal(backoff(3, { base: 100, max: 10000 }, () => 0.999999), 799)
  assert.equal(backoff(20, { base: 100, max: 10000 }, () => 0.999999), 9999)
  for (let n = 0; n < 12; n++) {
    const cap = Math.min(30000, 1000 * 2 ** n)
    for (let i = 0; i < 200; i++) {
      const d = backoff(n, undefined, Math.random)
      assert.ok(d >= 0 && d < cap, `attempt ${n}: ${d} not in [0, ${cap})`)
    }
  }
})

test('reconnect delays grow with failures and reset once a connection opens', async () => {
  // The hub is unreachable over REST too, so failures never count as "WebSocket blocked".
  const fetch = fakeFetch(() => {
    throw new TypeError('network down')
  })
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  await w.clock.tick(0)
  assert.equal(w.sockets.length, 1)
  for (const expected of [500, 1000, 2000, 4000]) {
    w.sockets.at(-1).drop(1006) // fails before hello
    await w.clock.tick(0)
    assert.deepEqual(w.clock.pending(), [expected])
    await w.clock.tick(expected)
  }
  assert.equal(w.sockets.length, 5)
  assert.equal(w.sources.length, 0)
  w.sockets.at(-1).hello(0)
  assert.equal(c.state, 'open')
  w.sockets.at(-1).drop(1012) // server restarting
  await w.clock.tick(0)
  // The ping timer is gone with the socket; only the reconnect, back at attempt 0.
  assert.deepEqual(w.clock.pending(), [500])
  c.close()
})

test('backoff options set base and max', async () => {
  const w = world({ fetch: fakeFetch(() => [503, {}]) })
  const c = connect({
    url: 'http://hub.test',
    token: 't1',
    share: false,
    backoff: { base: 200, max: 700 },
    env: w.tab({ random: () => 0.99 }).env,
  })
  const seen = []
  for (let i = 0; i < 4; i++) {
    await w.clock.tick(0)
    w.sockets.at(-1).drop(1006)
    await w.clock.tick(0)
    seen.push(w.clock.pending()[0])
    await w.clock.tick(seen.at(-1))
  }
  assert.deepEqual(seen, [198, 396, 693, 693])
  c.close()
})
