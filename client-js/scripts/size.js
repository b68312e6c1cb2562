// Fails (exit 1) when a built bundle is over the budget, minified and gzipped.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

const BUDGET = 6 * 1024
let over = false
for (const file of ['dist/tidings.min.js', 'dist/tidings.global.min.js']) {
  const raw = readFileSync(new URL('../' + file, import.meta.url))
  const gz = gzipSync(raw, { level: 9 }).length
  const ok = gz <= BUDGET
  over ||= !ok
  console.log(`${ok ? 'ok  ' : 'OVER'} ${file}: ${raw.length} B minified, ${gz} B gzipped (budget ${BUDGET} B)`)
}
if (over) process.exit(1)
