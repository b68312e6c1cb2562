// Wires the test pages to the hub named in the query string:
// ?hub=URL&user=ID&key=K[&lang=ar][&dir=rtl][&transport=sse][&nonav=1][&bundle=src]
// getToken asks the test (window.tidingsToken, exposed by Playwright), so the
// API key never reaches the page. Records what the tests check in window.rec.
const q = new URLSearchParams(location.search)
if (q.get('lang')) document.documentElement.lang = q.get('lang')
if (q.get('dir')) document.documentElement.dir = q.get('dir')
if (q.get('lang') == 'ar') for (const el of document.querySelectorAll('[data-ar]')) el.textContent = el.dataset.ar
window.rec = { tokenCalls: [], seen: [], selected: [] }

// The built bundle by default (what users load); ?bundle=src for the source modules.
await import(q.get('bundle') == 'src' ? '../../elements/index.js' : '../../dist/tidings-elements.min.js')

for (const el of document.querySelectorAll('tidings-bell, tidings-center')) {
  el.setAttribute('url', q.get('hub'))
  if (q.get('transport')) el.setAttribute('transport', q.get('transport'))
  if (q.get('share')) el.setAttribute('share', q.get('share'))
  el.getToken = async ({ expired }) => {
    window.rec.tokenCalls.push({ el: el.localName, expired })
    return window.tidingsToken(q.get('user'), q.get('key'), expired)
  }
  if (q.get('nonav'))
    el.addEventListener('tidings-select', (e) => {
      e.preventDefault()
      window.rec.selected.push(e.detail)
    })
}

// Every notification event the bell's client emits, to check that none repeats.
const bell = document.querySelector('tidings-bell')
if (bell) {
  const hook = () => (bell.client ? bell.client.on('notification', (n) => window.rec.seen.push(n.id)) : setTimeout(hook, 5))
  hook()
}
window.ready = true
