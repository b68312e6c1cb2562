import test from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '../src/index.js'
import { world, fakeFetch } from './support/fakes.js'

const prefs = { muted_categories: ['appointment.completed'], quiet_hours: { start: '22:00', end: '07:00', tz: 'Asia/Riyadh' } }

test('preferences() reads and setPreferences() writes /v1/me/preferences as JSON', async () => {
  let stored = { muted_categories: [], quiet_hours: null }
  const fetch = fakeFetch((call) => {
    if (call.method == 'PUT') stored = call.body
    return [200, stored]
  })
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  assert.deepEqual(await c.preferences(), { muted_categories: [], quiet_hours: null })
  assert.deepEqual(await c.setPreferences(prefs), prefs)
  assert.deepEqual(await c.preferences(), prefs)
  assert.deepEqual(
    fetch.calls.map((x) => [x.method, x.path, x.auth, x.type, x.body]),
    [
      ['GET', '/v1/me/preferences', 'Bearer t1', undefined, undefined],
      ['PUT', '/v1/me/preferences', 'Bearer t1', 'application/json', prefs],
      ['GET', '/v1/me/preferences', 'Bearer t1', undefined, undefined],
    ],
  )
  c.close()
})

test('setPreferences() rejects with the field the hub names, and retries a 401 once with the same body', async () => {
  let calls = 0
  const fetch = fakeFetch((call) => {
    if (call.auth == 'Bearer old') return [401, { error: { code: 'token_expired', message: 'expired' } }]
    calls++
    return [422, { error: { code: 'invalid', message: 'unknown time zone', field: 'quiet_hours.tz' } }]
  })
  const w = world({ fetch })
  const tokens = ['old', 'new']
  const c = connect({ url: 'http://hub.test', getToken: () => tokens.shift(), share: false, env: w.tab().env })
  const bad = { muted_categories: [], quiet_hours: { start: '22:00', end: '07:00', tz: 'Mars/Olympus' } }
  await assert.rejects(c.setPreferences(bad), (e) => {
    assert.equal(e.status, 422)
    assert.equal(e.code, 'invalid')
    assert.equal(e.message, 'unknown time zone')
    assert.equal(e.field, 'quiet_hours.tz')
    return true
  })
  const puts = fetch.calls.filter((x) => x.method == 'PUT')
  assert.deepEqual(
    puts.map((x) => [x.auth, x.body]),
    [
      ['Bearer old', bad],
      ['Bearer new', bad],
    ],
  )
  assert.equal(calls, 1)
  c.close()
})

test('categories() reads /v1/me/categories and resolves with the list', async () => {
  const fetch = fakeFetch(() => [200, { categories: ['appointments', 'lab_results'] }])
  const w = world({ fetch })
  const c = connect({ url: 'http://hub.test', token: 't1', share: false, env: w.tab().env })
  assert.deepEqual(await c.categories(), ['appointments', 'lab_results'])
  assert.deepEqual(fetch.calls.map((x) => [x.method, x.path, x.auth]), [['GET', '/v1/me/categories', 'Bearer t1']])
  c.close()
})
