/**
 * `/v1/connect` as pure functions: where the token comes from, and how a verification result and
 * a placement lookup become an HTTP answer. The uWS shell (server.ts) only copies the request
 * and writes what these return.
 */
import type { AuthFailureReason } from "../gateway/auth.ts";
import { AUTH_FAILURES } from "../gateway/auth.ts";
import { ROUTER_ERRORS, type RouterErrorCode } from "./errors.ts";
import type { Lookup } from "./placement.ts";

export const CONNECT_PATH = "/v1/connect";

export type Header = readonly [name: string, value: string];

export interface Answer {
  readonly status: string;
  readonly headers: readonly Header[];
  /** Sent as JSON; null: no body. */
  readonly body: unknown;
}

export interface ConnectBody {
  /** The WebSocket URL of the gateway that owns the user's partition. */
  readonly url: string;
  readonly user: string;
  readonly partition: number;
}

export type TokenResult =
  | { readonly ok: true; readonly token: string }
  | { readonly ok: false; readonly missing: boolean; readonly message: string };

const BEARER = /^Bearer +([^\s]+) *$/i;

/**
 * The token of a request: the `Authorization: Bearer` header, else the `token` query parameter
 * (for clients that cannot set headers, e.g. some WebSocket-first SDKs). A header that is present
 * but not a Bearer credential is refused rather than ignored.
 */
export function extractToken(authorization: string, queryToken: string | undefined): TokenResult {
  if (authorization !== "") {
    const m = BEARER.exec(authorization);
    if (m === null) return { ok: false, missing: false, message: "Authorization must be: Bearer <token>" };
    return { ok: true, token: m[1]! };
  }
  if (queryToken !== undefined && queryToken !== "") return { ok: true, token: queryToken };
  return {
    ok: false,
    missing: true,
    message: "a token is required: Authorization: Bearer <token> (or ?token=<token>)",
  };
}

/** A uniform wait in the code's range; null for codes that carry none. */
export function retryAfterMs(code: RouterErrorCode, random: () => number = Math.random): number | null {
  const range = ROUTER_ERRORS[code].retryAfterMs;
  if (range === null) return null;
  const r = Math.min(Math.max(random(), 0), 0.999999);
  return range.min + Math.floor(r * (range.max - range.min + 1));
}

const JSON_HEADERS: readonly Header[] = [
  ["content-type", "application/json"],
  ["cache-control", "no-store"],
];

export function jsonAnswer(status: string, body: unknown, headers: readonly Header[] = []): Answer {
  return { status, headers: [...JSON_HEADERS, ...headers], body };
}

/** An error answer from the table: 503s carry a jittered `retry_after_ms` and `Retry-After`. */
export function errorAnswer(
  code: RouterErrorCode,
  message: string,
  opts: { random?: () => number; headers?: readonly Header[] } = {},
): Answer {
  const waitMs = retryAfterMs(code, opts.random);
  const headers: Header[] = [...(opts.headers ?? [])];
  if (waitMs !== null) headers.push(["retry-after", String(Math.ceil(waitMs / 1000))]);
  return jsonAnswer(
    ROUTER_ERRORS[code].status,
    { error: code, message, ...(waitMs === null ? {} : { retry_after_ms: waitMs }) },
    headers,
  );
}

/** 401 for a request without a usable token (RFC 6750: no error attribute when none was sent). */
export function tokenAnswer(result: Extract<TokenResult, { ok: false }>): Answer {
  return errorAnswer("unauthorized", result.message, {
    headers: [
      [
        "www-authenticate",
        result.missing ? 'Bearer realm="rt"' : 'Bearer realm="rt", error="invalid_request"',
      ],
    ],
  });
}

/**
 * A refused token: expired → 401 token_expired; a failure on our side (JWKS down, shutting down)
 * → 503 unavailable, since the same token may pass later; anything else → 401 unauthorized.
 */
export function authFailureAnswer(
  failure: { readonly reason: AuthFailureReason; readonly message: string },
  random?: () => number,
): Answer {
  if (AUTH_FAILURES[failure.reason].retriable) {
    return errorAnswer("unavailable", `tokens cannot be checked right now: ${failure.message}`, { random });
  }
  return errorAnswer(failure.reason === "expired" ? "token_expired" : "unauthorized", failure.message, {
    headers: [["www-authenticate", 'Bearer realm="rt", error="invalid_token"']],
  });
}

/** A lookup for a verified user: 200 with the owner's URL, or 503 with a retry hint. */
export function lookupAnswer(user: string, lookup: Lookup, random?: () => number): Answer {
  switch (lookup.kind) {
    case "owner": {
      const body: ConnectBody = { url: lookup.url, user, partition: lookup.partition };
      return jsonAnswer("200 OK", body);
    }
    case "no_owner":
      return errorAnswer("no_owner", `${lookup.reason}; retry`, { random });
    case "unavailable":
      return errorAnswer("unavailable", "ownership cannot be read from Kafka right now; retry", { random });
  }
}
