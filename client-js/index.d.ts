// Type declarations for @tidings/client.

/** An in-app notification, as the hub stores and pushes it. */
export interface TidingsNotification {
  /** Opaque, time-ordered id. */
  id: string
  user_id: string
  title: string
  message: string
  type: 'info' | 'warning' | 'error' | 'success'
  category?: string | null
  related?: { type: string; id: string } | null
  link?: string | null
  data?: Record<string, unknown> | null
  is_read: boolean
  read_at: string | null
  /** RFC 3339, UTC. */
  created_at: string
  updated_at: string
  /** `normal` unless the publisher said otherwise; `critical` is pushed even in quiet hours and muted categories. */
  priority: 'low' | 'normal' | 'high' | 'critical'
  /** On an escalation's copy: the id of the notification it escalates; `null` otherwise. */
  escalated_from: string | null
}

/** A page of `list()`. Pass `next_cursor` back as `cursor` for the next page; `null` at the end. */
export interface NotificationPage {
  items: TidingsNotification[]
  next_cursor: string | null
}

/**
 * - `connecting`: first attempt, nothing open yet
 * - `open`: a connection is up (this tab's, or the leader tab's)
 * - `reconnecting`: the connection dropped; retrying with backoff
 * - `unauthorized`: no valid token can be had; the client stopped (never goes on anonymously)
 * - `closed`: `close()` was called
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'unauthorized' | 'closed'

export type Transport = 'ws' | 'sse'

export interface ReadEvent {
  /** The ids marked read (empty when `all`). */
  ids: string[]
  /** True after "mark all read" (from any tab or API call). */
  all: boolean
}

export interface TidingsError {
  /** The hub's `error` frame code, or `'unauthorized'` when the client gave up for lack of a valid token. */
  code: string
  message: string
}

export interface TidingsEvents {
  /** A new notification, once per id, in arrival order. */
  notification: TidingsNotification
  /** The unread count changed. */
  unread: number
  /** Notifications were marked read, here or elsewhere. */
  read: ReadEvent
  /** The connection state changed. */
  state: ConnectionState
  /** A hub `error` frame, or `{ code: 'unauthorized' }` when the client stops. */
  error: TidingsError
}

/** The browser globals the client uses; every one can be replaced (tests, workers, polyfills). */
export interface TidingsEnv {
  WebSocket?: { new (url: string): WebSocket } | undefined
  EventSource?: { new (url: string): EventSource } | undefined
  fetch?: typeof fetch
  BroadcastChannel?: { new (name: string): BroadcastChannel } | undefined
  /** `navigator.locks`. */
  locks?: LockManager | undefined
  setTimeout?: (fn: () => void, ms: number) => unknown
  clearTimeout?: (id: any) => void
  /** Math.random: backoff jitter and election ids. */
  random?: () => number
}

export interface ConnectOptions {
  /** The hub's base URL, `https://hub.example.com` (ws/wss is derived). Default: `location.origin`. */
  url?: string
  /** A user token (JWT). Used until the hub rejects it; without `getToken` the client then stops (`unauthorized`). */
  token?: string
  /**
   * Returns a user token. Called for the first connection (unless `token` is given) and again,
   * with `expired: true`, each time the hub rejects the current one (401 or close 4001).
   * Return `null` to give up (state `unauthorized`); throw for a transient failure (retried with backoff).
   */
  getToken?: (ctx: { expired: boolean }) => string | null | undefined | Promise<string | null | undefined>
  /** `auto` (default): WebSocket, falling back to SSE when WebSockets are blocked. */
  transport?: 'auto' | 'ws' | 'sse'
  /** The newest notification id the page already has: the first connection resumes after it. */
  since?: string
  /**
   * Share one connection among the tabs of this origin (default `true`). A string names the
   * group (e.g. per user id); `false` gives every tab its own connection.
   */
  share?: boolean | string
  /** Reconnect delays: full jitter in [0, min(max, base * 2^attempt)). Default `{ base: 1000, max: 30000 }` ms. */
  backoff?: { base?: number; max?: number }
  /** Client ping period on WebSocket, ms (default 25000; 0 = off). A socket silent for a whole period is replaced. */
  pingInterval?: number
  /** A WebSocket with no `hello` from the hub after this many ms is closed (local code 4002) and retried with backoff. Default 10000; 0 = off. */
  helloTimeout?: number
  /** In `auto`, WebSocket failures before `hello` (hub otherwise reachable) before switching to SSE. Default 2. */
  fallbackAfter?: number
  /** Leader heartbeat for tab sharing without Web Locks, ms (default 1000; takeover after 3 missed). */
  heartbeat?: number
  /** How many recent notification ids are remembered to drop repeats (default 1000). */
  dedupe?: number
  /** Replaces browser globals (tests). */
  env?: TidingsEnv
}

export interface ListOptions {
  cursor?: string | null
  status?: 'unread' | 'all'
  /** 1..200, hub default 50. */
  limit?: number
}

/** Errors of the REST calls (`list`, `markRead`, `markAllRead`, `preferences`, `setPreferences`). */
export interface TidingsRequestError extends Error {
  /** HTTP status (absent for network errors). */
  status?: number
  /** The hub's error code (`not_found`, `unauthorized`, `invalid`, ...). */
  code?: string
  /** For `invalid` (422): the JSON path at fault, e.g. `quiet_hours.tz`. */
  field?: string
}

/** A staff member's in-app preferences (`GET/PUT /v1/me/preferences`). */
export interface StaffPreferences {
  /** Notifications of these categories are stored and counted but not pushed. */
  muted_categories: string[]
  /** Inside this daily window (in `tz`; may wrap midnight) notifications are not pushed. */
  quiet_hours: { start: string; end: string; tz: string } | null
}

export interface TidingsClient {
  /** The current unread count; `null` until the hub told it. Never goes back to an older value. */
  readonly unread: number | null
  readonly state: ConnectionState
  /** The transport of the open connection (this tab's or the leader's), else `null`. */
  readonly transport: Transport | null
  /** Whether this tab holds the shared connection. */
  readonly isLeader: boolean
  /** The newest notification id received: the resume point. */
  readonly lastId: string | null
  /** Subscribes; returns the unsubscribe function. */
  on<K extends keyof TidingsEvents>(type: K, listener: (value: TidingsEvents[K]) => void): () => void
  off<K extends keyof TidingsEvents>(type: K, listener: (value: TidingsEvents[K]) => void): void
  /** Marks notifications read: a WebSocket frame when this tab's socket is open, else REST. */
  markRead(ids: string | string[]): Promise<void>
  markAllRead(): Promise<void>
  /** One page of the user's notifications, newest first. */
  list(options?: ListOptions): Promise<NotificationPage>
  /** `GET /v1/me/preferences`. */
  preferences(): Promise<StaffPreferences>
  /** `PUT /v1/me/preferences`; resolves with the stored preferences, rejects with `field` on 422. */
  setPreferences(prefs: StaffPreferences): Promise<StaffPreferences>
  /** `GET /v1/me/categories`: every category of the user's notifications, sorted. */
  categories(): Promise<string[]>
  /** Closes the connection (another tab takes over if this one led). Final. */
  close(): void
}

export function connect(options: ConnectOptions): TidingsClient

/** The reconnect delay for `attempt` (0-based): full jitter. */
export function backoff(attempt: number, options?: { base?: number; max?: number }, random?: () => number): number
