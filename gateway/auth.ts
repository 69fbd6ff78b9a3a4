/**
 * Client token verification for the gateway's `hello`. The header's `alg` is checked against the
 * allowlist before any crypto and then picks the one key source allowed to verify it: HS* the HMAC
 * secret, an asymmetric alg the static public key when it takes that alg, else the JWKS. So a token
 * can never choose its own key type (no `none`, no HS256 signed with a public key's bytes).
 * Outcomes are values: every failure is a reason from AUTH_FAILURES, and no message holds the token.
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import { webcrypto } from "node:crypto";
import type { AuthConfig, JwtAlgorithm } from "./auth-config.ts";
import { HmacFastPath } from "./auth-hmac.ts";

export { readAuthConfig, type AuthConfig } from "./auth-config.ts";

/**
 * Why a token was refused. `retriable`: the same token may pass later (the fault is on our side),
 * so the client should reconnect with backoff rather than fetch a new token.
 */
export const AUTH_FAILURES = {
  malformed: { retriable: false, description: "not a compact JWT, or a header or claim has the wrong type" },
  too_long: { retriable: false, description: "longer than the token length cap" },
  alg_not_allowed: { retriable: false, description: "header alg is not in the allowlist (`none` never is)" },
  bad_signature: { retriable: false, description: "signature does not verify with the selected key" },
  expired: { retriable: false, description: "`exp` is past, beyond the clock tolerance" },
  not_yet_valid: {
    retriable: false,
    description: "`nbf` or `iat` is in the future, beyond the clock tolerance",
  },
  missing_exp: { retriable: false, description: "no `exp` claim: tokens must expire" },
  missing_sub: { retriable: false, description: "no `sub` claim, or an empty one: it names the user" },
  bad_sub: { retriable: false, description: "`sub` is not 1-128 printable ASCII characters without spaces" },
  wrong_issuer: { retriable: false, description: "`iss` is not the configured issuer" },
  wrong_audience: { retriable: false, description: "`aud` does not contain the configured audience" },
  unknown_kid: { retriable: false, description: "no key in the JWKS matches the token's kid and alg" },
  jwks_unavailable: { retriable: true, description: "the JWKS endpoint failed, timed out or sent garbage" },
  closed: { retriable: true, description: "the verifier was closed: this gateway is shutting down" },
} as const;
export type AuthFailureReason = keyof typeof AUTH_FAILURES;

export type VerifyResult =
  | { ok: true; user: string; expiresAtMs: number; claims: JWTPayload }
  | { ok: false; reason: AuthFailureReason; message: string };

export interface Verifier {
  /** Never rejects; resolves within about the JWKS timeout even when the JWKS endpoint hangs. */
  verify(token: string): Promise<VerifyResult>;
  /** Later verify calls resolve with `closed`; calls in flight finish. Safe to call twice. */
  close(): void;
}

/** The user id: printable ASCII without spaces, bounded so it is safe as a Kafka key and in logs. */
const SUB_PATTERN = /^[\x21-\x7e]{1,128}$/;
/** jose aborts the JWKS fetch at the timeout; this backstop only matters if that ever fails to fire. */
const JWKS_DEADLINE_SLACK_MS = 500;

function fail(reason: AuthFailureReason, message: string): VerifyResult {
  return { ok: false, reason, message };
}

/** A header value quoted for a message: attacker-controlled, so short and printable only. */
function quote(value: unknown): string {
  const s = typeof value === "string" ? value : String(value);
  return JSON.stringify(s.replace(/[^\x20-\x7e]/g, "?").slice(0, 32));
}

/** Thrown by the JWKS key resolver for anything that is the endpoint's fault, not the token's. */
class JwksUnavailable extends Error {
  override readonly name = "JwksUnavailable";
}

function describeJwksError(err: unknown, timeoutMs: number): string {
  if (err instanceof errors.JWKSTimeout) return `JWKS request timed out after ${timeoutMs} ms`;
  if (err instanceof errors.JWKSInvalid) return "JWKS response is not a JSON Web Key Set";
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `JWKS unusable: ${err.message}${cause}`;
  }
  return "JWKS unusable";
}

/**
 * Wraps jose's remote JWKS (cache, cooldown-limited refetch on an unknown kid, abort at the timeout)
 * so that an endpoint failure surfaces as JwksUnavailable and a missing key as jose's own
 * JWKSNoMatchingKey, and so that no call can outlive the timeout by more than a little slack.
 */
function jwksResolver(config: AuthConfig, url: string): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), {
    timeoutDuration: config.jwksTimeoutMs,
    cacheMaxAge: config.jwksCacheMs,
    cooldownDuration: config.jwksCooldownMs,
  });
  const deadlineMs = config.jwksTimeoutMs + JWKS_DEADLINE_SLACK_MS;
  return async (header, token) => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new JwksUnavailable(`no JWKS answer within ${deadlineMs} ms`)),
        deadlineMs,
      );
      timer.unref();
    });
    try {
      return await Promise.race([remote(header, token), deadline]);
    } catch (err) {
      if (err instanceof JwksUnavailable) throw err;
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
        throw err;
      throw new JwksUnavailable(describeJwksError(err, config.jwksTimeoutMs), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  };
}

const CLAIM_FAILURES: Readonly<Record<string, AuthFailureReason>> = {
  iss: "wrong_issuer",
  aud: "wrong_audience",
  nbf: "not_yet_valid",
  iat: "not_yet_valid",
};

/** Maps what jose (or the JWKS resolver) threw to a reason; jose's messages never quote the token. */
function classify(err: unknown): VerifyResult {
  if (err instanceof JwksUnavailable) return fail("jwks_unavailable", err.message);
  if (err instanceof errors.JWTExpired) return fail("expired", "token has expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === "missing" && err.claim === "exp") return fail("missing_exp", "token has no exp claim");
    if (err.reason === "missing" && err.claim === "sub") return fail("missing_sub", "token has no sub claim");
    const reason = Object.hasOwn(CLAIM_FAILURES, err.claim) ? CLAIM_FAILURES[err.claim] : undefined;
    if (reason !== undefined && err.reason !== "invalid")
      return fail(reason, `${err.claim} claim check failed`);
    return fail("malformed", err.message);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return fail("bad_signature", "signature is invalid");
  if (err instanceof errors.JOSEAlgNotAllowed) return fail("alg_not_allowed", "alg is not allowed");
  if (err instanceof errors.JWKSNoMatchingKey)
    return fail("unknown_kid", "no JWKS key matches the token's kid");
  if (err instanceof errors.JWKSMultipleMatchingKeys)
    return fail("unknown_kid", "several JWKS keys match: the token needs a kid");
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid)
    return fail("jwks_unavailable", describeJwksError(err, 0));
  if (err instanceof errors.JOSEError) return fail("malformed", err.message);
  // Anything else comes from feeding jose odd input (e.g. a key/alg mismatch). It is not allowed to
  // crash the gateway, since a client could send it at will.
  return fail("malformed", `token could not be verified (${err instanceof Error ? err.name : "error"})`);
}

/** Checks jose leaves to us: sub's shape, and `iat` in the future (jose checks iat only with maxTokenAge). */
function accept(payload: JWTPayload, config: AuthConfig): VerifyResult {
  const { sub, exp, iat } = payload;
  if (sub === "") return fail("missing_sub", "token has an empty sub claim");
  if (typeof sub !== "string" || !SUB_PATTERN.test(sub))
    return fail("bad_sub", "sub must be 1-128 printable ASCII characters without spaces");
  if (typeof exp !== "number") return fail("missing_exp", "token has no exp claim");
  if (typeof iat === "number" && iat > Date.now() / 1000 + config.clockToleranceS)
    return fail("not_yet_valid", "iat claim is in the future");
  return { ok: true, user: sub, expiresAtMs: exp * 1000, claims: payload };
}

/**
 * Builds a verifier over the configured key sources. Synchronous: keys and JWKS load lazily.
 * `fastHmac: false` sends HS* tokens through jose only (tests compare the two paths).
 */
export function createVerifier(config: AuthConfig, paths: { fastHmac?: boolean } = {}): Verifier {
  const allowed = new Set<string>(config.algorithms);
  const isAllowed = (alg: unknown): alg is JwtAlgorithm => typeof alg === "string" && allowed.has(alg);
  const secret = config.hmacSecret === undefined ? undefined : new TextEncoder().encode(config.hmacSecret);
  // One CryptoKey per HS alg, imported once, for the HS* tokens the fast path leaves to jose
  // (refused or unusual ones): given raw bytes, jose would import a key on every verify, so a
  // flood of forged tokens would cost a WebCrypto importKey each.
  const hmacKeys = new Map<string, Promise<webcrypto.CryptoKey>>();
  const hmacKey = (bytes: Uint8Array, alg: JwtAlgorithm): Promise<webcrypto.CryptoKey> => {
    let key = hmacKeys.get(alg);
    if (key === undefined) {
      key = webcrypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: `SHA-${alg.slice(2)}` }, false, [
        "verify",
      ]);
      key.catch(() => hmacKeys.delete(alg));
      hmacKeys.set(alg, key);
    }
    return key;
  };
  const fast =
    secret === undefined || paths.fastHmac === false ? undefined : new HmacFastPath(secret, config);
  const jwks = config.jwksUrl === undefined ? undefined : jwksResolver(config, config.jwksUrl);
  let closed = false;

  const options = (alg: JwtAlgorithm): JWTVerifyOptions => ({
    // Exactly the one alg that picked the key: jose re-checks it against the signed header.
    algorithms: [alg],
    requiredClaims: ["exp", "sub"],
    clockTolerance: config.clockToleranceS,
    ...(config.issuer !== undefined && { issuer: config.issuer }),
    ...(config.audience !== undefined && { audience: [...config.audience] }),
  });

  async function verifyWith(token: string, alg: JwtAlgorithm): Promise<VerifyResult> {
    if (alg.startsWith("HS")) {
      if (secret === undefined) return fail("alg_not_allowed", `alg ${alg} has no key configured`);
      // A token the fast path does not vouch for goes to jose, which decides and says why.
      const payload = fast?.verify(token, alg);
      if (payload !== undefined && payload !== null) return accept(payload, config);
      return accept((await jwtVerify(token, await hmacKey(secret, alg), options(alg))).payload, config);
    }
    if (config.publicKey?.algorithms.includes(alg))
      return accept((await jwtVerify(token, config.publicKey.key, options(alg))).payload, config);
    if (jwks !== undefined) return accept((await jwtVerify(token, jwks, options(alg))).payload, config);
    return fail("alg_not_allowed", `alg ${alg} has no key configured`);
  }

  return {
    async verify(token) {
      if (closed) return fail("closed", "verifier is closed");
      if (typeof token !== "string" || token === "") return fail("malformed", "token is empty");
      if (token.length > config.maxTokenChars)
        return fail("too_long", `token is ${token.length} characters; the cap is ${config.maxTokenChars}`);
      let alg: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        return fail("malformed", "token header is not base64url-encoded JSON");
      }
      if (!isAllowed(alg)) return fail("alg_not_allowed", `alg ${quote(alg)} is not allowed`);
      try {
        return await verifyWith(token, alg);
      } catch (err) {
        return classify(err);
      }
    },
    close() {
      // jose's JWKS keeps no timers or sockets between calls; closing only refuses new work.
      closed = true;
    },
  };
}

/**
 * Mints an HS256 token for dev and tests (npm start's demo, unit tests). `claims` go in first, so
 * sub, iat, exp, iss and aud given here win. ttlS defaults to one hour.
 */
export async function mintDevToken(
  secret: string,
  sub: string,
  opts: { ttlS?: number; issuer?: string; audience?: string; claims?: Record<string, unknown> } = {},
): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...opts.claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + (opts.ttlS ?? 3600));
  if (opts.issuer !== undefined) jwt.setIssuer(opts.issuer);
  if (opts.audience !== undefined) jwt.setAudience(opts.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
