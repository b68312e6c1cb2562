// CSV (RFC 4180: quotes, doubled quotes, CRLF) and the recipients of a bulk send.

/**
 * Rows of cells; blank lines are skipped. Each row has `line`: the line of the
 * text it starts on (1-based), so errors can say where to look.
 */
export function parseCsv(text) {
  const rows = []
  let row = []
  let cell = ''
  let quoted = false
  let line = 1
  let start = 1
  const end = () => {
    row.push(cell)
    if (row.some((x) => x.trim() != '')) rows.push(Object.assign(row, { line: start }))
    row = []
    cell = ''
  }
  const s = String(text).replace(/^\uFEFF/, '')
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c == '\n' || (c == '\r' && s[i + 1] != '\n')) line++
    if (quoted) {
      if (c == '"' && s[i + 1] == '"') (cell += '"'), i++
      else if (c == '"') quoted = false
      else cell += c
    } else if (c == '"' && cell == '') quoted = true
    else if (c == ',') row.push(cell), (cell = '')
    else if (c == '\n' || c == '\r') {
      if (c == '\r' && s[i + 1] == '\n') (i++, line++)
      end()
      start = line
    } else cell += c
  }
  if (quoted) throw new Error(`line ${start}: unclosed quote`)
  end()
  return rows
}

/**
 * The recipients of a bulk send from a CSV whose header names the columns:
 * `patient_id` and/or `to`, every other column is a template variable.
 */
export function recipientsFromCsv(text) {
  return recipientRows(text).recipients
}

/**
 * The recipients, with `lines[i]` the CSV line of recipient `i` (the hub's
 * `recipients[i].to` is "line lines[i], column to") and `head`, the columns.
 * An empty variable cell is left out, so the hub names it as missing instead of
 * sending a blank.
 */
export function recipientRows(text) {
  const rows = parseCsv(text)
  if (rows.length < 2) throw new Error('the CSV needs a header row and at least one recipient')
  const head = rows[0].map((x) => x.trim())
  if (!head.includes('patient_id') && !head.includes('to')) throw new Error('the header needs a patient_id or a to column')
  const recipients = rows.slice(1).map((r) => {
    if (r.length != head.length) throw new Error(`line ${r.line} has ${r.length} cells, the header ${head.length}`)
    const out = { variables: {} }
    head.forEach((k, i) => {
      const v = r[i].trim()
      if (k == 'patient_id' || k == 'to') {
        if (v) out[k] = v
      } else if (k && v) out.variables[k] = v
    })
    return out
  })
  return { recipients, lines: rows.slice(1).map((r) => r.line), head }
}

/** `recipients[3].variables.time` → "line 5, column time" (with `lines` from recipientRows). */
export function csvPlace(field, lines) {
  const m = /^recipients\[(\d+)\](?:\.([\w.]+))?/.exec(field || '')
  if (!m || lines[Number(m[1])] == null) return null
  const column = (m[2] || '').replace(/^variables\.?/, '') || m[2]
  return `line ${lines[Number(m[1])]}` + (column ? `, column ${column}` : '')
}

const PHONE = /^\+[1-9][0-9]{7,14}$/
const EMAIL = /^[^@\s"(),:;<>[\]\\]{1,64}@[^@\s]+\.[^@\s]+$/

/**
 * Every problem of the recipients that can be seen without the hub (all at once,
 * each with its line and column): no patient_id nor to, an address that is neither
 * an E.164 phone nor an email (or not the template's channel's kind), a template
 * variable without a column or without a value. `template`: {channel, variables}.
 */
export function checkRecipients({ recipients, lines, head }, template, channel) {
  const errors = []
  const at = (i, column, message) => errors.push({ field: 'recipients', label: `Line ${lines[i]}, column ${column}`, message })
  const via = (template && template.channel) || channel
  const vars = (template && template.variables) || []
  for (const v of vars) if (!head.includes(v)) errors.push({ field: 'recipients', label: 'Header', message: `no column for the template's variable ${v}` })
  recipients.forEach((r, i) => {
    if (!r.patient_id && !r.to) at(i, 'to', 'give a patient_id or a to')
    if (r.to) {
      const phone = PHONE.test(r.to)
      const email = EMAIL.test(r.to)
      if (!phone && !email) at(i, 'to', 'must be a phone in E.164 (+966501234567) or an email address')
      else if (via == 'email' && phone) at(i, 'to', 'an email message needs an email address')
      else if (via && via != 'email' && email) at(i, 'to', `a ${via} message needs a phone number`)
    }
    for (const v of vars) if (head.includes(v) && !(v in r.variables)) at(i, v, 'is empty')
  })
  return errors
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
