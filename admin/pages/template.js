// One template: both languages (Arabic right-to-left), its version, edit,
// activate/deactivate, delete (confirmed inline), and a test render.
import { api, canWrite } from '../api.js'
import { h, field, fill, table, showError, clearErrors, notice, announce } from '../dom.js'
import { time, pill, label, LANGUAGES } from '../format.js'
import { getTemplate, rulesOf, rulesMark } from './templates.js'
import { go } from '../app.js'

export async function render(main, { id }) {
  const status = h('div')
  main.append(h('p', {}, h('a', { href: '#/templates', text: '← All templates' })))
  let t
  try {
    t = await getTemplate(id)
  } catch (err) {
    main.append(h('h1', { text: 'Template' }), status)
    return showError(status, err)
  }
  const flash = sessionStorage.getItem('tidings.admin.flash')
  if (flash) {
    sessionStorage.removeItem('tidings.admin.flash')
    notice(status, flash)
    announce(flash)
  }
  const path = '/v1/templates/' + encodeURIComponent(id)
  const toggle = h('button', {
    type: 'button',
    class: 'secondary',
    text: t.is_active ? 'Deactivate' : 'Activate',
    onclick: async () => {
      toggle.disabled = true
      try {
        const r = await api('POST', path + '/toggle')
        const active = r && typeof r.is_active == 'boolean' ? r.is_active : !t.is_active
        sessionStorage.setItem('tidings.admin.flash', active ? 'Activated.' : 'Deactivated.')
        go(location.hash)
      } catch (err) {
        toggle.disabled = false
        showError(status, err)
      }
    },
  })
  const confirmBox = h('div')
  const rules = rulesOf(t)
  // The hub refuses to delete a template the clinic-event rules send (409
  // template_in_use): the button says why instead of offering a deletion that fails.
  const why = rules.length
    ? h('p', { class: 'why', id: 'delete-why', text: `Cannot be deleted: the clinic-event rules send it (${rules.join(', ')}). Change the rules first, or deactivate it to suppress those messages.` })
    : null
  const del = rules.length
    ? h('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-disabled': 'true', 'aria-describedby': 'delete-why', onclick: () => announce(why.textContent) })
    : h('button', {
    type: 'button',
    class: 'danger',
    text: 'Delete',
    'aria-expanded': 'false',
    onclick: () => {
      del.setAttribute('aria-expanded', 'true')
      const yes = h('button', {
        type: 'button',
        class: 'danger',
        text: 'Delete template',
        onclick: async () => {
          yes.disabled = true
          try {
            await api('DELETE', path)
            sessionStorage.setItem('tidings.admin.flash', `Template ${t.name} deleted.`)
            go('#/templates')
          } catch (err) {
            yes.disabled = false
            showError(status, err)
          }
        },
      })
      const no = h('button', { type: 'button', class: 'secondary', text: 'Keep it', onclick: () => (fill(confirmBox), del.setAttribute('aria-expanded', 'false'), del.focus()) })
      fill(confirmBox, h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm deletion' }, h('span', { text: `Delete “${t.name}”? Messages already sent keep their text.` }), yes, no))
      yes.focus()
    },
  })
  const bodies = [
    ['English', 'en', t.subject_en, t.body_en],
    ['Arabic', 'ar', t.subject_ar, t.body_ar],
  ]
  main.append(
    h('h1', { text: 'Template ' + t.name }),
    status,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 't-details' },
      h('h2', { id: 't-details', text: 'Details' }),
      h(
        'dl',
        { class: 'props' },
        [
          ['Name', t.name],
          ['Version', h('span', { class: 'version', text: String(t.version) })],
          ['State', [pill(t.is_active ? 'active' : 'inactive'), rulesMark(t)]],
          ['Used by rules', rules.length ? h('span', { class: 'used-by', text: rules.join(', ') }) : 'none'],
          ['Channel', t.channel],
          ['Kind', label(t.kind)],
          ['Variables', (t.variables || []).join(', ') || '—'],
          ['Created', time(t.created_at)],
          ['Updated', time(t.updated_at)],
        ].map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]),
      ),
      // A front-desk token may only read templates (the hub answers 403 to the rest).
      canWrite() ? h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/templates/${encodeURIComponent(id)}/edit`, text: 'Edit' }), toggle, del, why) : null,
      confirmBox,
    ),
    h(
      'div',
      { class: 'grid' },
      bodies.map(([name, lang, subject, body]) =>
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'b-' + lang },
          h('h2', { id: 'b-' + lang, text: name }),
          subject ? h('p', {}, h('strong', { text: 'Subject: ' }), h('span', { lang, dir: lang == 'ar' ? 'rtl' : 'ltr', text: subject })) : null,
          h('pre', { class: 'body-text', lang, dir: lang == 'ar' ? 'rtl' : 'ltr', dataset: { lang }, text: body || '' }),
        ),
      ),
    ),
    testRender(path, t),
    await versions(path),
  )
}

/** The version history (GET .../versions), newest first. */
async function versions(path) {
  const card = h('section', { class: 'card', 'aria-labelledby': 't-versions' }, h('h2', { id: 't-versions', text: 'Versions' }))
  try {
    const r = await api('GET', path + '/versions')
    card.append(
      table('Versions, newest first', [
        ['Version', (v) => String(v.version)],
        ['Created', (v) => time(v.created_at)],
        ['By', (v) => v.actor || '—'],
        ['English', (v) => h('span', { lang: 'en', text: v.body_en })],
        ['Arabic', (v) => h('span', { lang: 'ar', dir: 'rtl', text: v.body_ar })],
      ], r.items || []),
    )
  } catch (err) {
    const box = h('div')
    showError(box, err)
    card.append(box)
  }
  return card
}

/** The test-render form: a language and a value per variable → the rendered subject and body. */
function testRender(path, t) {
  const out = h('div', { class: 'render-out', 'aria-live': 'polite' })
  const status = h('div')
  const form = h(
    'form',
    { novalidate: true },
    field({ label: 'Language', name: 'language', type: 'select', options: LANGUAGES, value: 'en' }),
    h('div', { class: 'row' }, (t.variables || []).map((v) => field({ label: v, name: 'variables.' + v, attrs: { dir: 'auto' } }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Render' })),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const variables = {}
    // An empty input is left out: the hub names a missing variable instead of rendering a blank.
    for (const v of t.variables || []) {
      const val = form.elements['variables.' + v].value
      if (val !== '') variables[v] = val
    }
    const language = form.language.value
    // The marks of the previous attempt go: a variable filled since is no longer missing.
    clearErrors(form)
    fill(status)
    try {
      const r = await api('POST', path + '/test', { language, variables })
      const dir = language == 'ar' ? 'rtl' : 'ltr'
      fill(
        out,
        h('h3', { text: 'Rendered (' + (language == 'ar' ? 'Arabic' : 'English') + ')' }),
        r.subject ? h('p', {}, h('strong', { text: 'Subject: ' }), h('span', { class: 'rendered-subject', lang: language, dir, text: r.subject })) : null,
        h('pre', { class: 'body-text rendered-body', lang: language, dir, text: r.body }),
      )
    } catch (err) {
      fill(out)
      showError(status, err, form)
      // `missing_variables` names every missing one in its message: mark those inputs.
      if (err.code == 'missing_variables')
        for (const v of t.variables || []) {
          const input = form.elements['variables.' + v]
          if (!input.value && new RegExp(`\\b${v}\\b`).test(err.message)) input.setAttribute('aria-invalid', 'true')
        }
    }
  })
  return h('section', { class: 'card', 'aria-labelledby': 't-test' }, h('h2', { id: 't-test', text: 'Test render' }), status, form, out)
}
