// Type declarations for the elements: @tidings/client/bell, /center, /elements.
import type { TidingsClient, ConnectOptions, TidingsNotification, StaffPreferences } from '../index.js'

export { connect } from '../index.js'

/** What both elements share. Attributes: url, token, transport, share, related-url, lang, dir. */
export declare class TidingsElement extends HTMLElement {
  /** The library's token source; setting it (re)connects. */
  getToken: ConnectOptions['getToken'] | null
  /** The client in use; set one from `connect()` to share it (the element then never closes it). */
  client: TidingsClient | null
  /** More `connect()` options (backoff, pingInterval, ...). */
  options: Partial<ConnectOptions>
  /** Wording over the built-in English and Arabic strings (see elements/i18n.js). */
  strings: Record<string, unknown>
}

/** `<tidings-bell>`. Extra attributes: history-url, limit. Events: tidings-select (cancelable), tidings-open. */
export declare class TidingsBell extends TidingsElement {
  /** The notifications in the menu, newest first. */
  readonly items: TidingsNotification[]
  readonly limit: number
  open(at?: number): void
  close(refocus?: boolean): void
}

/** `<tidings-center>`. Extra attributes: view, page-size. Event: tidings-preferences. */
export declare class TidingsCenter extends TidingsElement {
  view: 'history' | 'preferences'
  readonly pageSize: number
}

export interface TidingsSelectDetail {
  notification: TidingsNotification
  /** Where the click leads: `link`, else `related-url` filled in, else null. */
  url: string | null
}

declare global {
  interface HTMLElementTagNameMap {
    'tidings-bell': TidingsBell
    'tidings-center': TidingsCenter
  }
  interface HTMLElementEventMap {
    'tidings-select': CustomEvent<TidingsSelectDetail>
    'tidings-open': CustomEvent<void>
    'tidings-preferences': CustomEvent<StaffPreferences>
  }
}
