// Bulk send: a template and a CSV of recipients (pasted or uploaded) →
// POST /v1/messages/bulk, then the batch's counts by status.
import { api, all, qs, newKey, canWrite } from '../api.js'
import { h, field, fill, table, showError, showErrors, announce, adminOnly } from '../dom.js'
import { CHANNELS, time } from '../format.js'
import { recipientsFromCsv, recipientRows, checkRecipients, csvPlace } from '../csv.js'
import { go } from '../app.js'

const EXAMPLE = 'patient_id,to,patient_name,time\np-1001,,Sara Haddad,Sun 10:00\n,+966500000001,Omar Khalil,Sun 10:30'

export async function render(main, _p, query) {
  main.append(h('h1', { text: 'Bulk send' }))
  if (!canWrite()) return main.append(adminOnly('a bulk send'))
  const status = h('div')
  main.append(status)
  if (query.batch) await batchCard(main, status, query.batch)
  const templates = await all('/v1/templates').catch((err) => (showError(status, err), []))
  const active = templates.filter((t) => t.is_active !== false)
  const preview = h('div', { class: 'preview', 'aria-live': 'polite' })
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'bulk-h' },
    h('h2', { id: 'bulk-h', text: 'New batch' }),
    h('div', { class: 'row' },
      field({ label: 'Template', name: 'template', type: 'select', value: query.template, options: [['', 'Choose a template'], ...active.map((t) => [t.name, `${t.name} (${t.channel}, version ${t.version})`])], required: true }),
      field({ label: 'Channel', name: 'channel', type: 'select', options: [['', "Each patient's preferred"], ...CHANNELS.map((c) => [c, c])] }),
    ),
    field({ label: 'Recipients (CSV)', name: 'recipients', type: 'textarea', hint: 'Header row: patient_id and/or to, then one column per template variable.', placeholder: EXAMPLE, attrs: { dir: 'auto', spellcheck: 'false' } }),
    field({ label: 'Or upload a CSV file', name: 'file', type: 'file', attrs: { accept: '.csv,text/csv' } }),
    preview,
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Send to all' })),
  )
  const parse = () => {
    const text = form.recipients.value
    if (!text.trim()) return fill(preview), null
    try {
      const list = recipientsFromCsv(text)
      fill(
        preview,
        h('p', { class: 'count', text: `${list.length} recipient${list.length == 1 ? '' : 's'}` }),
        table(
          'First recipients',
          [
            ['Patient', (r) => r.patient_id || '—'],
            ['To', (r) => r.to || '—'],
            ['Variables', (r) => Object.entries(r.variables).map(([k, v]) => `${k}=${v}`).join(', ')],
          ],
          list.slice(0, 5),
        ),
      )
      return list
    } catch (err) {
      fill(preview, h('p', { class: 'field-error', text: 'CSV: ' + err.message }))
      return null
    }
  }
  form.recipients.addEventListener('input', parse)
  form.file.addEventListener('change', async () => {
    const f = form.file.files[0]
    if (!f) return
    form.recipients.value = await f.text()
    parse()
  })
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    // Everything that can be checked here is checked at once and listed together,
    // each recipient problem by its CSV line and column.
    const errors = []
    const template = active.find((t) => t.name == form.template.value)
    if (!template) errors.push({ field: 'template', message: 'Choose a template.' })
    let csv = null
    try {
      csv = recipientRows(form.recipients.value)
    } catch (err) {
      errors.push({ field: 'recipients', label: 'CSV', message: err.message })
    }
    if (csv) errors.push(...checkRecipients(csv, template, form.channel.value))
    if (errors.length) return showErrors(status, errors.slice(0, 50), form, errors.length > 50 ? `${errors.length} problems; the first 50:` : 'Nothing was sent. Please fix:')
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const body = { template: form.template.value, channel: form.channel.value || undefined, recipients: csv.recipients }
      const r = await api('POST', '/v1/messages/bulk', body, { headers: { 'Idempotency-Key': newKey() } })
      sessionStorage.setItem('tidings.admin.flash', `Batch accepted: ${r.queued} queued, ${r.suppressed} suppressed.`)
      go('#/bulk' + qs({ batch: r.batch_id }))
    } catch (err) {
      // The hub names `recipients[i].field`: say it as the CSV's line and column.
      const place = csvPlace(err.field, csv.lines)
      if (place) showErrors(status, [{ field: 'recipients', label: place[0].toUpperCase() + place.slice(1), message: err.message }], form, `Nothing was sent (HTTP ${err.status} ${err.code}):`)
      else showError(status, err, form)
    } finally {
      button.disabled = false
    }
  })
  main.append(form)
}

/** The batch's counts by status, with a refresh button. */
async function batchCard(main, status, id) {
  const card = h('section', { class: 'card batch', 'aria-labelledby': 'batch-h' })
  main.append(card)
  const flash = sessionStorage.getItem('tidings.admin.flash')
  sessionStorage.removeItem('tidings.admin.flash')
  const draw = async () => {
    try {
      const b = await api('GET', '/v1/messages/batches/' + encodeURIComponent(id))
      const counts = Object.entries(b.by_status || {}).filter(([, n]) => n > 0)
      fill(
        card,
        h('h2', { id: 'batch-h', text: 'Batch ' + id }),
        flash ? h('div', { class: 'notice', role: 'status', text: flash }) : null,
        h('dl', { class: 'props' },
          [['Template', b.template || '—'], ['Created', time(b.created_at)], ['Total', h('span', { class: 'total', text: String(b.total) })],
            ...counts.map(([s, n]) => [s, h('span', { dataset: { status: s }, text: String(n) })])].map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]),
        ),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', text: 'Refresh', onclick: () => draw().then(() => announce('Batch counts refreshed.')) }),
          h('a', { class: 'button secondary', href: '#/messages', text: 'All messages' }),
        ),
      )
    } catch (err) {
      showError(status, err)
    }
  }
  await draw()
}
