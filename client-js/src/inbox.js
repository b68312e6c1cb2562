/**
 * What every tab knows, fed with server frames (its own connection's, or the
 * leader's relayed ones): the unread count and its version, the last seen
 * notification id (the resume point), and a bounded set of recent ids so a
 * notification is emitted once even when a reconnect replays it.
 */
export function createInbox(emit, since, max = 1000) {
  const seen = new Set()
  const box = {
    lastId: since || null,
    unread: null,
    version: null,
    /**
     * Applies an unread count. With a `version`, a count older than the last
     * applied one is ignored so the value never goes backwards; `reset` (a
     * fresh snapshot: `hello`) sets the baseline whatever it was.
     */
    set(n, version, reset) {
      if (typeof n != 'number') return
      if (version != null) {
        if (!reset && box.version != null && version < box.version) return
        box.version = version
      } else if (reset) box.version = null
      if (n !== box.unread) emit('unread', (box.unread = n))
    },
    ingest(type, d) {
      d = d || {}
      if (type == 'notification') {
        if (d.id != null) {
          if (seen.has(d.id)) return
          seen.add(d.id)
          if (seen.size > max) seen.delete(seen.values().next().value)
          box.lastId = d.id
        }
        emit('notification', d)
      } else if (type == 'hello') box.set(d.unread, d.unread_version ?? d.version, true)
      else if (type == 'unread_count') box.set(d.unread, d.version)
      else if (type == 'read') emit('read', { ids: d.ids || [], all: false })
      else if (type == 'read_all') emit('read', { ids: [], all: true })
      else if (type == 'error') emit('error', d)
    },
  }
  return box
}
