/**
 * CORS for /v1/connect, so browser apps on other origins can ask for their gateway. Pure: the
 * configured origins and the request's Origin in, response headers out. No credentials mode:
 * the token travels in the Authorization header, never in cookies.
 */
import type { Header } from "./connect.ts";
import type { CorsOrigins } from "./config.ts";

export const PREFLIGHT_MAX_AGE_S = 600;

/**
 * Headers for an answer to a request from `origin` (the Origin header, "" when absent). With a
 * list, only a listed origin is echoed, and `Vary: Origin` tells caches the answer depends on it.
 * A preflight also gets the allowed method and headers.
 */
export function corsHeaders(allowed: CorsOrigins, origin: string, preflight: boolean): Header[] {
  if (allowed === null) return [];
  const headers: Header[] = [];
  let allowOrigin: string | null = null;
  if (allowed === "*") allowOrigin = "*";
  else {
    headers.push(["vary", "Origin"]);
    if (origin !== "" && allowed.includes(origin)) allowOrigin = origin;
  }
  if (allowOrigin === null) return headers;
  headers.push(["access-control-allow-origin", allowOrigin]);
  if (preflight) {
    headers.push(
      ["access-control-allow-methods", "GET, OPTIONS"],
      ["access-control-allow-headers", "Authorization"],
      ["access-control-max-age", String(PREFLIGHT_MAX_AGE_S)],
    );
  } else {
    // So a browser app can read the 503's retry hint from the header too.
    headers.push(["access-control-expose-headers", "Retry-After"]);
  }
  return headers;
}
