/**
 * Error codes of wire protocol v1: the `code` of an `error` frame and of a failed `ack`.
 *
 * One table, so clients, docs and gateways agree. `retriable` says whether sending the same
 * request again later can succeed (after a backoff, or once the cause is fixed, e.g. a refreshed
 * token); it is advice for SDKs, never a promise. Codes are stable: add new ones, never rename.
 */
export const ERROR_CODES = {
  bad_json: { retriable: false, description: "The frame is not valid JSON." },
  bad_frame: {
    retriable: false,
    description: "The frame is JSON but not a valid v1 frame: missing, extra or wrong-typed field.",
  },
  unknown_op: { retriable: false, description: "The frame's op is not a client operation of protocol v1." },
  bad_target: { retriable: false, description: "The target (user, room or channel) is malformed." },
  too_big: { retriable: false, description: "A frame or payload is over its limit (size or depth)." },
  bad_cursor: { retriable: false, description: "The cursor is not a valid epoch:partition:offset string." },
  not_authenticated: { retriable: false, description: "The first frame must be hello." },
  already_authenticated: { retriable: false, description: "hello was sent twice on one connection." },
  unauthorized: {
    retriable: false,
    description: "The token is missing, malformed, over 8192 characters, or its signature is bad.",
  },
  token_expired: { retriable: true, description: "The token has expired: refresh it, then retry." },
  forbidden: { retriable: false, description: "Authenticated, but not allowed to do this." },
  rate_limited: { retriable: true, description: "Too many requests: slow down, then retry." },
  limit_reached: {
    retriable: false,
    description: "A size limit is reached: channels per session, members per room.",
  },
  not_member: { retriable: false, description: "Only members may send to a room: join it first." },
  queue_full: {
    retriable: true,
    description: "The gateway's outgoing queue is full: retry after a backoff.",
  },
  unavailable: { retriable: true, description: "Kafka (or another dependency) is unavailable: retry later." },
  internal: { retriable: true, description: "An unexpected server error." },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Every code, in table order. */
export const ERROR_CODE_LIST = Object.freeze(Object.keys(ERROR_CODES) as ErrorCode[]);

/** The `{code, message}` object of error frames and failed acks. */
export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}
