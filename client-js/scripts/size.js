// Fails (exit 1) when a built bundle is over its budget, minified and gzipped (zlib level 9).
// The library keeps its 6 KiB; the elements bundles include the library and have their own.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

const KiB = 1024
const BUDGETS = {
  'dist/tidings.min.js': 6 * KiB,
  'dist/tidings.global.min.js': 6 * KiB,
  'dist/tidings-bell.min.js': 10 * KiB,
  'dist/tidings-elements.min.js': 16 * KiB,
}
let over = false
for (const [file, budget] of Object.entries(BUDGETS)) {
  const raw = readFileSync(new URL('../' + file, import.meta.url))
  const gz = gzipSync(raw, { level: 9 }).length
  const ok = gz <= budget
  over ||= !ok
  console.log(`${ok ? 'ok  ' : 'OVER'} ${file}: ${raw.length} B minified, ${gz} B gzipped (budget ${budget} B)`)
}
if (over) process.exit(1)
