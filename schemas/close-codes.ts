/**
 * WebSocket close codes of protocol v1, all in the application range 4000–4999, each with what
 * the client must do next. One table: the gateway closes with it, the SDK obeys it, the docs list
 * it.
 *
 * - `reconnect`: "no" (stop and surface the error to the application), "immediately",
 *   "backoff" (full-jitter exponential backoff), or "after_hint" (wait the `retry_after_ms` the
 *   close reason carries, which the server has already jittered; fall back to backoff without one).
 * - `refreshToken`: get a new token before reconnecting.
 * - `viaRouter`: ask the router (`/v1/connect`) for the URL again instead of reusing the old one,
 *   because the user's partition has moved or the node is going away.
 *
 * Every reconnect resumes with the last cursor the client holds. Standard codes (1000–1015) keep
 * their WebSocket meaning; an SDK treats unexpected ones like `server_error`.
 */
export const CLOSE_CODES = {
  unauthorized: {
    code: 4001,
    reconnect: "no",
    refreshToken: false,
    viaRouter: false,
    description: "The token is missing, malformed or badly signed.",
  },
  bad_frame: {
    code: 4002,
    reconnect: "no",
    refreshToken: false,
    viaRouter: false,
    description: "The client broke the protocol (bad JSON, bad frame, unknown op): a client bug.",
  },
  forbidden: {
    code: 4003,
    reconnect: "no",
    refreshToken: false,
    viaRouter: false,
    description: "Authenticated, but this user may not connect (banned, revoked).",
  },
  moved: {
    code: 4004,
    reconnect: "immediately",
    refreshToken: false,
    viaRouter: true,
    description: "The user's partition now belongs to another gateway.",
  },
  restart: {
    code: 4005,
    reconnect: "after_hint",
    refreshToken: false,
    viaRouter: true,
    description: "The gateway is shutting down (deploy, scale-in).",
  },
  slow: {
    code: 4008,
    reconnect: "backoff",
    refreshToken: false,
    viaRouter: false,
    description: "The client read too slowly and its buffer passed the cap; the log keeps its events.",
  },
  too_big: {
    code: 4009,
    reconnect: "backoff",
    refreshToken: false,
    viaRouter: false,
    description: "A frame was over the size limit; the SDK must not resend it.",
  },
  token_expired: {
    code: 4010,
    reconnect: "immediately",
    refreshToken: true,
    viaRouter: false,
    description: "The session's token expired and was not refreshed with auth in time.",
  },
  hello_timeout: {
    code: 4011,
    reconnect: "backoff",
    refreshToken: false,
    viaRouter: false,
    description: "No hello arrived in time after the socket opened.",
  },
  too_many_connections: {
    code: 4012,
    reconnect: "backoff",
    refreshToken: false,
    viaRouter: false,
    description: "The user (or the gateway) has too many open connections.",
  },
  revoked: {
    code: 4013,
    reconnect: "no",
    refreshToken: false,
    viaRouter: false,
    description:
      "The user's sessions were revoked (sign-out everywhere, ban): the same token is refused; sign in again.",
  },
  rate_limited: {
    code: 4029,
    reconnect: "backoff",
    refreshToken: false,
    viaRouter: false,
    description: "The client kept sending past its rate limit.",
  },
  server_error: {
    code: 4500,
    reconnect: "backoff",
    refreshToken: false,
    viaRouter: true,
    description: "An unexpected server failure.",
  },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;
export type CloseCode = (typeof CLOSE_CODES)[CloseName]["code"];
export type ReconnectPolicy = "no" | "immediately" | "backoff" | "after_hint";

export interface CloseCodeInfo {
  readonly name: CloseName;
  readonly code: CloseCode;
  readonly reconnect: ReconnectPolicy;
  readonly refreshToken: boolean;
  readonly viaRouter: boolean;
  readonly description: string;
}

const BY_NAME = new Map<CloseName, CloseCodeInfo>();
const BY_CODE = new Map<number, CloseCodeInfo>();
for (const [name, entry] of Object.entries(CLOSE_CODES) as [CloseName, (typeof CLOSE_CODES)[CloseName]][]) {
  const info: CloseCodeInfo = Object.freeze({ name, ...entry });
  BY_NAME.set(name, info);
  BY_CODE.set(entry.code, info);
}

/** Every close code, in table order. */
export const CLOSE_CODE_LIST: readonly CloseCodeInfo[] = Object.freeze([...BY_NAME.values()]);

export function closeCodeByName(name: CloseName): CloseCodeInfo {
  return BY_NAME.get(name)!;
}

/** The entry for a received close code; undefined for codes outside this table. */
export function closeCodeByNumber(code: number): CloseCodeInfo | undefined {
  return BY_CODE.get(code);
}

/** Close reasons must fit in a close frame: 123 bytes of UTF-8. */
export const CLOSE_REASON_MAX_BYTES = 123;

/**
 * The close reason text: the code's name, then ` retry_after_ms=<n>` when the server hints a
 * delay (used with "after_hint"). ASCII only, well under the 123-byte cap.
 */
export function formatCloseReason(name: CloseName, retryAfterMs?: number): string {
  if (retryAfterMs === undefined) return name;
  if (!Number.isSafeInteger(retryAfterMs) || retryAfterMs < 0) {
    throw new RangeError(`retryAfterMs must be a non-negative integer, got ${retryAfterMs}`);
  }
  return `${name} retry_after_ms=${retryAfterMs}`;
}

/** The delay hint in a close reason, if it has a well-formed one. Never throws. */
export function parseRetryAfterMs(reason: string): number | undefined {
  const m = /(?:^| )retry_after_ms=(0|[1-9][0-9]{0,8})(?: |$)/.exec(reason.slice(0, CLOSE_REASON_MAX_BYTES));
  return m === null ? undefined : Number(m[1]);
}
