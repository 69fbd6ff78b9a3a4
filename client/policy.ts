/**
 * What the client does when its socket closes: the protocol's close-code table
 * (schemas/close-codes.ts) turned into one decision, plus the standard WebSocket codes. Pure.
 *
 * - A code of the table is obeyed as written: "no" stops and surfaces the error; "immediately",
 *   "backoff" and "after_hint" reconnect; `refreshToken` asks the token provider again;
 *   `viaRouter` asks the router (or goes back to the configured gateway) instead of reusing the
 *   URL of the socket that closed.
 * - 1000 sent by this client is the end of a `close()`: stop.
 * - Every other code (1001 going away, 1006 dropped, 1011, 1012, 1013, a 1000 the server chose,
 *   codes this version does not know) is treated like `server_error`: backoff, via the router.
 */
import { closeCodeByName, closeCodeByNumber, parseRetryAfterMs } from "../schemas/close-codes.ts";

/** How long to wait before the next attempt. */
export type Wait =
  | { readonly kind: "now" }
  | { readonly kind: "backoff" }
  | { readonly kind: "hint"; readonly ms: number };

export type CloseDecision =
  | {
      readonly action: "stop";
      /** The close's name: a table name (`unauthorized`), or `normal`. */
      readonly name: string;
      readonly code: number;
    }
  | {
      readonly action: "reconnect";
      readonly name: string;
      readonly code: number;
      readonly wait: Wait;
      readonly viaRouter: boolean;
      readonly refreshToken: boolean;
    };

/** A server's delay hint is obeyed up to this; past it the hint is taken as this. */
export const MAX_HINT_MS = 5 * 60_000;

/** Names for the standard codes, for logs and `closed` events. */
const STANDARD_NAMES: Readonly<Record<number, string>> = {
  1000: "normal",
  1001: "going_away",
  1002: "protocol_error",
  1003: "unsupported_data",
  1005: "no_status",
  1006: "abnormal",
  1007: "invalid_data",
  1008: "policy_violation",
  1009: "message_too_big",
  1010: "missing_extension",
  1011: "internal_error",
  1012: "service_restart",
  1013: "try_again_later",
  1014: "bad_gateway",
  1015: "tls_handshake",
};

/** The name of a close code: the table's, a standard one, or `close_<code>`. */
export function closeName(code: number): string {
  return closeCodeByNumber(code)?.name ?? STANDARD_NAMES[code] ?? `close_${code}`;
}

/**
 * The decision for a socket that closed with `code` and `reason`. `closedByUs` is true when
 * this client called close(): only then does 1000 mean "stop".
 */
export function decideOnClose(code: number, reason: string, closedByUs = false): CloseDecision {
  if (code === 1000 && closedByUs) return { action: "stop", name: "normal", code };
  const info = closeCodeByNumber(code) ?? closeCodeByName("server_error");
  const name = closeName(code);
  switch (info.reconnect) {
    case "no":
      return { action: "stop", name, code };
    case "immediately":
      return reconnect(name, code, { kind: "now" }, info.viaRouter, info.refreshToken);
    case "backoff":
      return reconnect(name, code, { kind: "backoff" }, info.viaRouter, info.refreshToken);
    case "after_hint": {
      const ms = parseRetryAfterMs(reason);
      const wait: Wait =
        ms === undefined ? { kind: "backoff" } : { kind: "hint", ms: Math.min(ms, MAX_HINT_MS) };
      return reconnect(name, code, wait, info.viaRouter, info.refreshToken);
    }
  }
}

function reconnect(
  name: string,
  code: number,
  wait: Wait,
  viaRouter: boolean,
  refreshToken: boolean,
): CloseDecision {
  return { action: "reconnect", name, code, wait, viaRouter, refreshToken };
}

/**
 * The delay in ms for `wait`. "now" is honoured once per outage: when the previous attempt
 * already went out at once and failed again (a `moved` loop during a rebalance, a refreshed
 * token that is expired too), the retry backs off instead, so no close code can make a
 * client spin. `failuresSinceOpen` counts the attempts since the last welcome.
 */
export function delayMs(wait: Wait, failuresSinceOpen: number, nextBackoffMs: () => number): number {
  switch (wait.kind) {
    case "now":
      return failuresSinceOpen === 0 ? 0 : nextBackoffMs();
    case "hint":
      return wait.ms;
    case "backoff":
      return nextBackoffMs();
  }
}
