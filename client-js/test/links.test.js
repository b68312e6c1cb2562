// Where <tidings-bell> and <tidings-center> navigate on a click (targetOf /
// safeTarget): never off-site for a link that looks relative, whatever the hub
// or an older hub stored.
import test from 'node:test'
import assert from 'node:assert/strict'
import { targetOf, safeTarget } from '../elements/i18n.js'

const PAGE = 'https://clinic.example/portal/inbox'

// Links a browser resolves to another site although they start with one `/`.
const OFF_SITE = ['/\\evil.example/phish', '/\\/evil.example', '/\t/evil.example', '/\n/evil.example', '/\r\n/evil.example']

test('the browser really resolves these off-site (what the guard is for)', () => {
  for (const link of OFF_SITE) assert.equal(new URL(link, PAGE).host, 'evil.example', JSON.stringify(link))
})

test('links that would leave the site are not followed', () => {
  for (const link of [...OFF_SITE, '//evil.example', '\\\\evil.example', 'javascript:alert(1)', ' /x', 'x/y', 'https:evil.example', '/x\u0000']) {
    assert.equal(targetOf({ link }, null, PAGE), null, JSON.stringify(link))
    assert.equal(safeTarget(link, PAGE), null, JSON.stringify(link))
  }
})

test('http(s) URLs and same-site paths are followed as given', () => {
  for (const link of ['/appointments/42?tab=notes#top', '/', 'https://clinic.example/a', 'HTTP://other.example/b']) {
    assert.equal(targetOf({ link }, null, PAGE), link)
  }
  // Without a page (node, tests) paths are still checked against an origin.
  assert.equal(safeTarget('/x'), '/x')
  assert.equal(safeTarget('/\\evil.example'), null)
})

test('whatever a path resolves to stays on the page origin', () => {
  const parts = ['/', '\\', '.', '..', '%2f', '%5c', 'evil.example', '@', ':', '?', '#', '\t', ' ']
  let followed = 0
  for (const a of parts)
    for (const b of parts)
      for (const c of parts) {
        const link = '/' + a + b + c
        const got = safeTarget(link, PAGE)
        if (got == null) continue
        followed++
        assert.equal(new URL(got, PAGE).origin, 'https://clinic.example', JSON.stringify(link))
      }
  assert.ok(followed > 100, `most paths are still followed (${followed})`)
})

test('the related-url pattern goes through the same guard', () => {
  const n = { link: null, related: { type: 'appointment', id: 'a1' } }
  assert.equal(targetOf(n, '/{type}s/{id}', PAGE), '/appointments/a1')
  assert.equal(targetOf(n, '/\\evil.example/{id}', PAGE), null)
})
