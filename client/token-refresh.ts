/**
 * When to refresh a token before it expires. Pure.
 *
 * The gateway ends a session at the token's `exp` (close 4010). A client with a token provider
 * avoids that gap by sending `auth` with a fresh token beforehand: once 80% of the token's
 * lifetime has passed, and at least 60 s before `exp`, but never before half of its lifetime
 * (so a short-lived token is not refreshed in a loop). The claims are read without checking the
 * signature: the client only schedules with them; the server decides.
 */

export interface TokenTimes {
  /** `exp` in ms since the epoch. */
  readonly expMs: number;
  /** `iat` in ms since the epoch, when the token has one. */
  readonly iatMs: number | undefined;
}

/** The fraction of the lifetime after which the token is refreshed. */
export const REFRESH_AT_FRACTION = 0.8;
/** Refresh at least this long before `exp`, when the lifetime allows it. */
export const REFRESH_MARGIN_MS = 60_000;

/** Reads `exp` (required) and `iat` from a compact JWT; undefined when it has no readable `exp`. */
export function tokenTimes(token: string): TokenTimes | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    return undefined;
  }
  if (typeof claims !== "object" || claims === null) return undefined;
  const { exp, iat } = claims as { exp?: unknown; iat?: unknown };
  if (typeof exp !== "number" || !Number.isFinite(exp)) return undefined;
  return {
    expMs: exp * 1000,
    iatMs: typeof iat === "number" && Number.isFinite(iat) ? iat * 1000 : undefined,
  };
}

/**
 * Milliseconds from `nowMs` until the token should be refreshed (0: now). `obtainedAtMs` stands
 * in for `iat` when the token has none.
 */
export function refreshDelayMs(times: TokenTimes, obtainedAtMs: number, nowMs: number): number {
  const issued = Math.min(times.iatMs ?? obtainedAtMs, times.expMs);
  const life = times.expMs - issued;
  const at = Math.max(
    issued + life / 2,
    Math.min(issued + REFRESH_AT_FRACTION * life, times.expMs - REFRESH_MARGIN_MS),
  );
  return Math.max(0, Math.floor(at - nowMs));
}

/** base64url (no padding) to a UTF-8 string, with the globals browsers and Node 20 share. */
function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}
