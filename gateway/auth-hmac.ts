/**
 * HS* tokens checked synchronously with node:crypto: the path every HMAC-signed hello takes.
 *
 * jose verifies through WebCrypto, which is asynchronous: a job on the thread pool and several
 * promise hops, about 120 µs of gateway CPU per token. In a reconnect storm that is the largest
 * single item of a reconnect. This check does the same work inline in a few µs, and it is
 * deliberately narrower than jose: it accepts only a token that jose would accept too (canonical
 * base64url, a header of alg/typ/kid only, every claim check passed). Anything else returns null
 * and the caller asks jose, which then decides, with its own error for the refusal. So this path
 * can only make a valid token cheaper; it cannot accept one jose refuses, nor change any error.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";
import type { JWTPayload } from "jose";
import type { AuthConfig, JwtAlgorithm } from "./auth-config.ts";

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const HEADER_KEYS = new Set(["alg", "typ", "kid"]);
const utf8 = new TextDecoder("utf-8", { fatal: true });

type Claims = Pick<AuthConfig, "issuer" | "audience" | "clockToleranceS">;

export class HmacFastPath {
  readonly #key: KeyObject;

  constructor(
    secret: Uint8Array,
    private readonly claims: Claims,
  ) {
    this.#key = createSecretKey(secret);
  }

  /** The payload of a token jose would accept with this secret and these checks; null: ask jose. */
  verify(token: string, alg: JwtAlgorithm, nowS = Math.floor(Date.now() / 1000)): JWTPayload | null {
    if (!alg.startsWith("HS")) return null;
    const parts = token.split(".");
    if (parts.length !== 3) return null;
    const [h, p, s] = parts as [string, string, string];
    if (!canonicalShape(h) || !canonicalShape(p) || !BASE64URL.test(s)) return null;
    const header = parseObject(h);
    if (header === null || header["alg"] !== alg) return null;
    for (const k of Object.keys(header)) if (!HEADER_KEYS.has(k)) return null;
    const expected = createHmac(`sha${alg.slice(2)}`, this.#key)
      .update(`${h}.${p}`)
      .digest("base64url");
    if (expected.length !== s.length || !timingSafeEqual(Buffer.from(expected), Buffer.from(s))) return null;
    const payload = parseObject(p);
    if (payload === null || !this.#claimsPass(payload, nowS)) return null;
    return payload as JWTPayload;
  }

  /** jose's claim checks for our options (requiredClaims exp and sub, iss, aud, clock tolerance). */
  #claimsPass(c: Record<string, unknown>, nowS: number): boolean {
    const { issuer, audience, clockToleranceS: tol } = this.claims;
    if (!Object.hasOwn(c, "sub") || !Object.hasOwn(c, "exp")) return false;
    if (issuer !== undefined && c["iss"] !== issuer) return false;
    if (audience !== undefined && !audienceMatches(c["aud"], audience)) return false;
    const { iat, nbf, exp } = c;
    if (iat !== undefined && typeof iat !== "number") return false;
    if (nbf !== undefined && (typeof nbf !== "number" || nbf > nowS + tol)) return false;
    return typeof exp === "number" && exp > nowS - tol;
  }
}

/** Base64url that decodes to whole bytes the only way (no length of 4n+1). */
function canonicalShape(part: string): boolean {
  return part.length % 4 !== 1 && BASE64URL.test(part);
}

function parseObject(part: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(utf8.decode(Buffer.from(part, "base64url")));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function audienceMatches(aud: unknown, wanted: readonly string[]): boolean {
  if (typeof aud === "string") return wanted.includes(aud);
  return Array.isArray(aud) && wanted.some((a) => aud.includes(a));
}
