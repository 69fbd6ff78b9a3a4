/**
 * The client's public types: its options and defaults, and what its listeners receive.
 */
import type { EventFrame, SessionLimits } from "../schemas/frames.ts";
import { DEFAULT_STABLE_AFTER_MS, type BackoffOptions } from "./backoff.ts";
import type { WebSocketCtor } from "./connection.ts";
import type { RealtimeError } from "./errors.ts";
import type { FetchLike } from "./router.ts";

/**
 * - `connecting`: no session yet: asking the router, opening a socket, waiting for the welcome.
 * - `open`: welcomed; events flow, sends go out.
 * - `reconnecting`: the session's socket ended; waiting (backoff or hint) or looking for the
 *   user's gateway again.
 * - `resuming`: a new socket is open and its hello carries the cursor; the welcome is awaited
 *   (then the events missed, then live ones). Also on a first connect with a stored cursor.
 * - `closed`: stopped for good (a "stop" close code, or close()).
 */
export type ClientState = "connecting" | "open" | "reconnecting" | "resuming" | "closed";
export type TokenProvider = () => string | Promise<string>;

export interface ClientOptions {
  /** The router's base URL (`https://rt.example.com`): it says which gateway holds the user. */
  readonly routerUrl?: string;
  /** A gateway's WebSocket URL, used when there is no router; it redirects as needed. */
  readonly gatewayUrl?: string;
  /** The token, or a function giving a fresh one (called again when the server says it expired). */
  readonly token: string | TokenProvider;
  /** A cursor the application stored: the session resumes after it. */
  readonly cursor?: string;
  /** Default `globalThis.WebSocket`; on Node 20 pass the `ws` package's. */
  readonly WebSocket?: WebSocketCtor;
  /** Default `globalThis.fetch`; used only with `routerUrl`. */
  readonly fetch?: FetchLike;
  readonly backoff?: Partial<BackoffOptions>;
  /** A send not acked this long after `send()` fails with `ack_timeout`. */
  readonly ackTimeoutMs?: number;
  /** For one router request, and from opening a socket to its welcome. */
  readonly connectTimeoutMs?: number;
  /** Sends waiting for their ack (queued or in flight); past it, `send` fails with `queue_full`. */
  readonly maxPendingSends?: number;
  /** Redirects followed in a row before going back to the router (with backoff). */
  readonly maxRedirects?: number;
  /** A session live this long resets the backoff. */
  readonly stableAfterMs?: number;
  /** App-level ping period; 0: off; default: the welcome's heartbeat_s. */
  readonly pingIntervalMs?: number;
  /**
   * How many recent (from, to, id) triples are remembered to drop re-sent copies of an event
   * (see RecentIds in dedupe.ts); 0 turns it off. Default 1000.
   */
  readonly dedupeWindow?: number;
  /**
   * With a token provider: send `auth` with a fresh token before the current one expires (at
   * 80% of its lifetime, at least 60 s before `exp`), so the session never hits 4010. Default true.
   */
  readonly refreshBeforeExpiry?: boolean;
  /** A number in [0, 1), for jitter and ids. Default Math.random. */
  readonly random?: () => number;
}

export interface Tunables {
  readonly ackTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxPendingSends: number;
  readonly maxRedirects: number;
  readonly stableAfterMs: number;
  readonly dedupeWindow: number;
}

export const CLIENT_DEFAULTS: Tunables = Object.freeze({
  ackTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxPendingSends: 1000,
  maxRedirects: 3,
  stableAfterMs: DEFAULT_STABLE_AFTER_MS,
  dedupeWindow: 1000,
});

export interface WelcomeInfo {
  readonly user: string;
  /** The gateway this session is on. */
  readonly url: string;
  /** False: events after the hello's cursor may be missing; a `resync` event follows. */
  readonly recovered: boolean;
  /** Why not recovered, as the server put it (`no_cursor`, `retention`, `scan_limit`...). */
  readonly reason: string | undefined;
  /** The client's cursor after the welcome (see CursorTracker.welcome). */
  readonly cursor: string | undefined;
  /** The welcome's own cursor: where the session starts (offset -1 before any event). */
  readonly serverCursor: string;
  readonly session: string;
  readonly node: string;
  readonly heartbeatS: number;
  readonly limits: SessionLimits;
}

/** One delivery, as the event frame carries it. */
export type RealtimeEvent = Omit<EventFrame, "op">;

export interface ResyncInfo {
  /** `not_recovered`: the welcome said so; `log_changed`: the events moved to another log. */
  readonly reason: "not_recovered" | "log_changed";
  /** The welcome's reason, for `not_recovered`: `no_cursor` on a first connect without one. */
  readonly detail: string | undefined;
  readonly cursor: string | undefined;
}

export interface ClosedInfo {
  /** `client_closed` after close(); otherwise the name of what ended it (`unauthorized`...). */
  readonly reason: string;
  /** The WebSocket close code, when a close ended it. */
  readonly code?: number;
  readonly error?: RealtimeError;
}

export interface SendResult {
  readonly id: string;
  /** Where the event landed in the recipient's log. */
  readonly cursor: string | undefined;
}

/** A token refresh over the live session: `auth` was acked. */
export interface TokenRefreshedInfo {
  /** The new token's `exp`, in ms since the epoch. */
  readonly expMs: number | undefined;
}

export type ClientEvents = {
  token: (info: TokenRefreshedInfo) => void;
  state: (state: ClientState) => void;
  welcome: (info: WelcomeInfo) => void;
  event: (event: RealtimeEvent) => void;
  resync: (info: ResyncInfo) => void;
  error: (error: RealtimeError) => void;
  closed: (info: ClosedInfo) => void;
};
