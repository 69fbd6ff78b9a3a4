/**
 * The router's HTTP errors: one table with the status, whether the client should retry, and the
 * jittered wait the 503s carry (in `retry_after_ms` and, rounded up to seconds, `Retry-After`).
 * Bodies are `{"error": <code>, "message": <text>, "retry_after_ms"?: <n>}`.
 */
export const ROUTER_ERRORS = {
  unauthorized: {
    status: "401 Unauthorized",
    retryAfterMs: null,
    description:
      "The token is missing, malformed, badly signed or fails a claim check: stop, get a valid token.",
  },
  token_expired: {
    status: "401 Unauthorized",
    retryAfterMs: null,
    description: "The token has expired: get a new one, then ask again.",
  },
  forbidden: {
    status: "403 Forbidden",
    retryAfterMs: null,
    description: "The token is valid but lacks the scope this endpoint needs (rt:publish, rt:revoke).",
  },
  bad_request: {
    status: "400 Bad Request",
    retryAfterMs: null,
    description: "The body is not valid JSON, or a field is missing, unknown, malformed or too deep.",
  },
  too_big: {
    status: "413 Content Too Large",
    retryAfterMs: null,
    description: "The body is over RT_MAX_PUBLISH_BYTES.",
  },
  unsupported_media_type: {
    status: "415 Unsupported Media Type",
    retryAfterMs: null,
    description: "The body must be application/json.",
  },
  not_found: {
    status: "404 Not Found",
    retryAfterMs: null,
    description: "No such endpoint.",
  },
  method_not_allowed: {
    status: "405 Method Not Allowed",
    retryAfterMs: null,
    description: "The endpoint exists but not for this method (see the Allow header).",
  },
  internal: {
    status: "500 Internal Server Error",
    retryAfterMs: null,
    description: "A bug in the router; it was logged. Retry with backoff.",
  },
  no_owner: {
    status: "503 Service Unavailable",
    retryAfterMs: { min: 500, max: 2_000 },
    description:
      "No gateway owns the user's partition right now (none running, or a rebalance is moving it): " +
      "ask again after retry_after_ms.",
  },
  unavailable: {
    status: "503 Service Unavailable",
    retryAfterMs: { min: 1_000, max: 5_000 },
    description:
      "The router cannot read ownership from Kafka (or cannot check tokens, e.g. the JWKS endpoint is " +
      "down): ask again after retry_after_ms.",
  },
} as const;

export type RouterErrorCode = keyof typeof ROUTER_ERRORS;
