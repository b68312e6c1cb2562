/**
 * A tiny event emitter. A listener that throws does not stop the others
 * nor the library: its error is rethrown on a fresh microtask, where the
 * page's error reporting sees it.
 */
export function emitter() {
  const map = {}
  const off = (type, fn) => {
    map[type] = (map[type] || []).filter((f) => f !== fn)
  }
  return {
    on(type, fn) {
      ;(map[type] ||= []).push(fn)
      return () => off(type, fn)
    },
    off,
    emit(type, value) {
      for (const fn of map[type] || []) {
        try {
          fn(value)
        } catch (e) {
          queueMicrotask(() => {
            throw e
          })
        }
      }
    },
  }
}
