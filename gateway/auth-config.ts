/**
 * Gateway auth configuration: which keys may sign client tokens, which algorithms each may use,
 * and the claim checks. Read once at start; any inconsistency is a ConfigError naming the variable,
 * so a gateway never runs with an allowlist that a configured key cannot honour (or the reverse).
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { ConfigError, readInt, readList, readString, readUrl, type Env } from "../common/env.ts";

/**
 * The algorithms a token may use, and the key kind that verifies each. `none` is not here and cannot
 * be configured; HS* tokens only ever meet the HMAC secret, asymmetric ones only public keys.
 */
export const JWT_ALGORITHMS = {
  HS256: { key: "secret", description: "HMAC SHA-256 with RT_JWT_SECRET" },
  RS256: { key: "rsa", description: "RSASSA-PKCS1-v1_5 SHA-256, RSA key of 2048 bits or more" },
  PS256: { key: "rsa", description: "RSASSA-PSS SHA-256, RSA key of 2048 bits or more" },
  ES256: { key: "ec-p256", description: "ECDSA P-256 SHA-256" },
  EdDSA: { key: "ed25519", description: "Ed25519" },
} as const;
export type JwtAlgorithm = keyof typeof JWT_ALGORITHMS;
type KeyKind = (typeof JWT_ALGORITHMS)[JwtAlgorithm]["key"];
export type PublicKeyKind = Exclude<KeyKind, "secret">;

/** The algorithm a static public key of each kind signs with unless RT_JWT_ALGORITHMS says more. */
const DEFAULT_ALGORITHM: Readonly<Record<PublicKeyKind, JwtAlgorithm>> = {
  rsa: "RS256",
  "ec-p256": "ES256",
  ed25519: "EdDSA",
};

const MIN_SECRET_BYTES = 32;
/** Tokens ride in the hello frame; this bounds the work one frame can ask of the verifier. */
export const MAX_TOKEN_CHARS = 8192;

export interface AuthConfig {
  /** Every algorithm a token may carry in its header; anything else is refused before any crypto. */
  readonly algorithms: readonly JwtAlgorithm[];
  /** HMAC key for HS256 (RT_JWT_SECRET). A secret: never log this config whole. */
  readonly hmacSecret: string | undefined;
  /** Static public key (RT_JWT_PUBLIC_KEY) and the algorithms it verifies. */
  readonly publicKey:
    | { readonly key: KeyObject; readonly kind: PublicKeyKind; readonly algorithms: readonly JwtAlgorithm[] }
    | undefined;
  /** JWKS endpoint (RT_JWKS_URL): asymmetric tokens whose alg the static key does not take go here. */
  readonly jwksUrl: string | undefined;
  /** Required `iss` when set. */
  readonly issuer: string | undefined;
  /** When set, the token's `aud` must contain at least one of these. */
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceS: number;
  readonly jwksTimeoutMs: number;
  readonly jwksCacheMs: number;
  /** Minimum time between JWKS refetches triggered by an unknown `kid` (bounds refetch storms). */
  readonly jwksCooldownMs: number;
  readonly maxTokenChars: number;
}

function readSecret(env: Env): string | undefined {
  const secret = readString(env, "RT_JWT_SECRET");
  if (secret === undefined) return undefined;
  const bytes = Buffer.byteLength(secret, "utf8");
  // The value is a secret: the error says how long it was, never what it was.
  if (bytes < MIN_SECRET_BYTES)
    throw new ConfigError("RT_JWT_SECRET", `at least ${MIN_SECRET_BYTES} bytes`, `<hidden, ${bytes} bytes>`);
  return secret;
}

function readPublicKey(env: Env): { key: KeyObject; kind: PublicKeyKind } | undefined {
  const name = "RT_JWT_PUBLIC_KEY";
  const raw = readString(env, name);
  if (raw === undefined) return undefined;
  // Env values are often single-line: accept a literal backslash-n as a line break.
  const pem = raw.replace(/\\n/g, "\n");
  // Never echo the value: it may be a private key or a secret pasted into the wrong variable.
  const got = `<${raw.length} characters>`;
  const expected =
    "a PEM SPKI public key (-----BEGIN PUBLIC KEY-----): RSA >= 2048 bits, EC P-256 or Ed25519";
  // createPublicKey would happily derive the public half of a private key; refuse instead, since a
  // private key in the gateway's environment is a leak waiting to happen.
  if (/PRIVATE KEY-----/.test(pem)) throw new ConfigError(name, `${expected}, not a private key`, got);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch {
    throw new ConfigError(name, expected, got);
  }
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case "rsa":
      if ((details?.modulusLength ?? 0) < 2048)
        throw new ConfigError(name, expected, "<RSA key under 2048 bits>");
      return { key, kind: "rsa" };
    case "ec":
      if (details?.namedCurve !== "prime256v1")
        throw new ConfigError(name, expected, `<EC key on ${details?.namedCurve ?? "unknown curve"}>`);
      return { key, kind: "ec-p256" };
    case "ed25519":
      return { key, kind: "ed25519" };
    default:
      throw new ConfigError(name, expected, `<${key.asymmetricKeyType ?? "unknown"} key>`);
  }
}

function isJwtAlgorithm(s: string): s is JwtAlgorithm {
  return Object.hasOwn(JWT_ALGORITHMS, s);
}

/**
 * The allowlist: RT_JWT_ALGORITHMS when set, otherwise what the configured keys imply (HS256 for a
 * secret, the static key's own algorithm, every asymmetric algorithm for a JWKS). Either way each
 * algorithm has a key that can verify it, and each configured key has at least one algorithm.
 */
function readAlgorithms(
  env: Env,
  sources: { secret: boolean; publicKind: PublicKeyKind | undefined; jwks: boolean },
): JwtAlgorithm[] {
  const name = "RT_JWT_ALGORITHMS";
  const listed = readList(env, name);
  if (listed === undefined) {
    const out = new Set<JwtAlgorithm>();
    if (sources.secret) out.add("HS256");
    if (sources.publicKind !== undefined) out.add(DEFAULT_ALGORITHM[sources.publicKind]);
    if (sources.jwks) for (const alg of ["RS256", "PS256", "ES256", "EdDSA"] as const) out.add(alg);
    return [...out];
  }
  const got = readString(env, name);
  const out = new Set<JwtAlgorithm>();
  for (const alg of listed) {
    if (!isJwtAlgorithm(alg))
      throw new ConfigError(name, `a comma list from ${Object.keys(JWT_ALGORITHMS).join(", ")}`, got);
    const kind = JWT_ALGORITHMS[alg].key;
    const usable = kind === "secret" ? sources.secret : sources.jwks || sources.publicKind === kind;
    if (!usable) {
      const needs = kind === "secret" ? "RT_JWT_SECRET" : `an ${kind} RT_JWT_PUBLIC_KEY or RT_JWKS_URL`;
      throw new ConfigError(
        name,
        `only algorithms the configured keys can verify (${alg} needs ${needs})`,
        got,
      );
    }
    out.add(alg);
  }
  const algs = [...out];
  const unused = (kind: KeyKind) => !algs.some((a) => JWT_ALGORITHMS[a].key === kind);
  if (sources.secret && unused("secret"))
    throw new ConfigError(name, "HS256 listed, since RT_JWT_SECRET is set", got);
  if (sources.publicKind !== undefined && unused(sources.publicKind))
    throw new ConfigError(name, `an algorithm for the ${sources.publicKind} RT_JWT_PUBLIC_KEY`, got);
  if (sources.jwks && algs.every((a) => JWT_ALGORITHMS[a].key === "secret"))
    throw new ConfigError(name, "an asymmetric algorithm, since RT_JWKS_URL is set", got);
  return algs;
}

/** Builds the frozen auth config from the environment; throws ConfigError naming the bad variable. */
export function readAuthConfig(env: Env): AuthConfig {
  const hmacSecret = readSecret(env);
  const publicKey = readPublicKey(env);
  const jwksUrl = readUrl(env, "RT_JWKS_URL", ["http:", "https:"]);
  if (hmacSecret === undefined && publicKey === undefined && jwksUrl === undefined) {
    throw new ConfigError(
      "RT_JWT_SECRET",
      "one of RT_JWT_SECRET, RT_JWT_PUBLIC_KEY or RT_JWKS_URL, to verify client tokens",
      undefined,
    );
  }
  const overridden = readList(env, "RT_JWT_ALGORITHMS") !== undefined;
  const algorithms = readAlgorithms(env, {
    secret: hmacSecret !== undefined,
    publicKind: publicKey?.kind,
    jwks: jwksUrl !== undefined,
  });
  return Object.freeze({
    algorithms: Object.freeze(algorithms),
    hmacSecret,
    publicKey:
      publicKey === undefined
        ? undefined
        : Object.freeze({
            ...publicKey,
            // Without an override the static key takes only its default algorithm (an RSA key
            // does PS256 only when asked), so the rest of the allowlist falls through to the JWKS.
            algorithms: Object.freeze(
              overridden
                ? algorithms.filter((a) => JWT_ALGORITHMS[a].key === publicKey.kind)
                : [DEFAULT_ALGORITHM[publicKey.kind]],
            ),
          }),
    jwksUrl,
    issuer: readString(env, "RT_JWT_ISSUER"),
    audience: readList(env, "RT_JWT_AUDIENCE"),
    clockToleranceS: readInt(env, "RT_JWT_CLOCK_TOLERANCE_S", 5, { min: 0, max: 300 }),
    jwksTimeoutMs: readInt(env, "RT_JWKS_TIMEOUT_MS", 3000, { min: 10, max: 60_000 }),
    jwksCacheMs: readInt(env, "RT_JWKS_CACHE_MS", 600_000, { min: 1000, max: 86_400_000 }),
    jwksCooldownMs: readInt(env, "RT_JWKS_COOLDOWN_MS", 30_000, { min: 0, max: 3_600_000 }),
    maxTokenChars: MAX_TOKEN_CHARS,
  });
}
