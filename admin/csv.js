// CSV (RFC 4180: quotes, doubled quotes, CRLF) and the recipients of a bulk send.

/** Rows of cells; blank lines are skipped. */
export function parseCsv(text) {
  const rows = []
  let row = []
  let cell = ''
  let quoted = false
  const s = String(text).replace(/^\uFEFF/, '')
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (quoted) {
      if (c == '"' && s[i + 1] == '"') (cell += '"'), i++
      else if (c == '"') quoted = false
      else cell += c
    } else if (c == '"' && cell == '') quoted = true
    else if (c == ',') row.push(cell), (cell = '')
    else if (c == '\n' || c == '\r') {
      if (c == '\r' && s[i + 1] == '\n') i++
      row.push(cell)
      if (row.some((x) => x.trim() != '')) rows.push(row)
      row = []
      cell = ''
    } else cell += c
  }
  if (quoted) throw new Error('unclosed quote in the CSV')
  row.push(cell)
  if (row.some((x) => x.trim() != '')) rows.push(row)
  return rows
}

/**
 * The recipients of a bulk send from a CSV whose header names the columns:
 * `patient_id` and/or `to`, every other column is a template variable.
 */
export function recipientsFromCsv(text) {
  const rows = parseCsv(text)
  if (rows.length < 2) throw new Error('the CSV needs a header row and at least one recipient')
  const head = rows[0].map((x) => x.trim())
  if (!head.includes('patient_id') && !head.includes('to')) throw new Error('the header needs a patient_id or a to column')
  return rows.slice(1).map((r, n) => {
    if (r.length != head.length) throw new Error(`row ${n + 2} has ${r.length} cells, the header ${head.length}`)
    const out = { variables: {} }
    head.forEach((k, i) => {
      const v = r[i].trim()
      if (k == 'patient_id' || k == 'to') {
        if (v) out[k] = v
      } else if (k) out.variables[k] = v
    })
    return out
  })
}

/** `name=value` lines → an object. */
export function parseVariables(text) {
  const out = {}
  for (const line of String(text).split(/\r?\n/)) {
    if (!line.trim()) continue
    const i = line.indexOf('=')
    if (i < 1) throw new Error(`"${line.trim()}" is not name=value`)
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim()
  }
  return out
}
