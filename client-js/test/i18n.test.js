import test from 'node:test'
import assert from 'node:assert/strict'
import { relTime, badgeText, targetOf, dirOf, strings } from '../elements/i18n.js'

const NOW = Date.parse('2026-11-27T10:00:00Z')
const ago = (s) => new Date(NOW - s * 1000).toISOString()

test('relTime: now, minutes, hours, yesterday, last week in English', () => {
  assert.deepEqual(
    [0, 44, 50, 5 * 60, 3 * 3600, 30 * 3600, 9 * 86400, 400 * 86400].map((s) => relTime(ago(s), 'en', NOW)),
    ['now', 'now', '1 minute ago', '5 minutes ago', '3 hours ago', 'yesterday', 'last week', 'last year'],
  )
  assert.equal(relTime(new Date(NOW + 2 * 3600e3).toISOString(), 'en', NOW), 'in 2 hours')
})

test('relTime: Arabic', () => {
  assert.equal(relTime(ago(0), 'ar', NOW), 'الآن')
  assert.equal(relTime(ago(30 * 3600), 'ar', NOW), 'أمس')
  assert.match(relTime(ago(5 * 60), 'ar', NOW), /^قبل .+ دقائق$/)
})

test('badgeText: hidden at 0 and unknown, 99+ above 99', () => {
  assert.deepEqual([null, 0, 1, 99, 100, 5000].map(badgeText), ['', '', '1', '99', '99+', '99+'])
})

test('targetOf: link first, then the related-url pattern (encoded), only http(s) and paths', () => {
  const n = { link: null, related: { type: 'appointment', id: '8a 6f/x' } }
  assert.equal(targetOf({ ...n, link: 'https://clinic.example/a/1' }, '/{type}s/{id}'), 'https://clinic.example/a/1')
  assert.equal(targetOf(n, '/{type}s/{id}'), '/appointments/8a%206f%2Fx')
  assert.equal(targetOf(n, null), null)
  assert.equal(targetOf({ related: null }, '/{type}s/{id}'), null)
  assert.equal(targetOf({ link: 'javascript:alert(1)' }, null), null)
  assert.equal(targetOf({ link: '//evil.example/x' }, null), null)
  assert.equal(targetOf({ link: '/billing/inv-7' }, null), '/billing/inv-7')
})

test('direction and strings follow the language', () => {
  assert.deepEqual(['ar', 'ar-SA', 'he', 'en', 'fr-CA', '', undefined].map(dirOf), ['rtl', 'rtl', 'rtl', 'ltr', 'ltr', 'ltr', 'ltr'])
  assert.equal(strings('ar-SA').markAll, 'تحديد الكل كمقروء')
  assert.equal(strings('de').markAll, 'Mark all as read')
  assert.equal(strings('en', { markAll: 'Clear' }).markAll, 'Clear')
  assert.equal(strings('en').bellUnread(3), 'Notifications, 3 unread')
})
