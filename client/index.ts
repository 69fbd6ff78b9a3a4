/**
 * The realtime client SDK: `createClient` / `RealtimeClient`, plus its pure parts for
 * applications that want them (backoff, close policy, cursor dedupe).
 */
export {
  CLIENT_DEFAULTS,
  RealtimeClient,
  createClient,
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type ClosedInfo,
  type RealtimeEvent,
  type ResyncInfo,
  type SendResult,
  type TokenProvider,
  type TokenRefreshedInfo,
  type WelcomeInfo,
} from "./client.ts";
export { Backoff, DEFAULT_BACKOFF, backoffWindowMs, fullJitterMs, type BackoffOptions } from "./backoff.ts";
export type { SocketEventMap, WebSocketCtor, WebSocketLike } from "./connection.ts";
export { CursorTracker, RecentIds, type OfferResult, type WelcomeResult } from "./dedupe.ts";
export { CLIENT_ERROR_CODES, RealtimeError, type ClientErrorCode, type RealtimeErrorCode } from "./errors.ts";
export { closeName, decideOnClose, type CloseDecision, type Wait } from "./policy.ts";
export type { FetchLike } from "./router.ts";
export { RETRY_CODES } from "./outbox.ts";
export { refreshDelayMs, tokenTimes, type TokenTimes } from "./token-refresh.ts";
