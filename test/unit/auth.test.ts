import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  base64url,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from "jose";
import { ConfigError, type Env } from "../../common/env.ts";
import {
  AUTH_FAILURES,
  createVerifier,
  mintDevToken,
  readAuthConfig,
  type AuthFailureReason,
  type VerifyResult,
} from "../../gateway/auth.ts";
import { MAX_TOKEN_CHARS } from "../../gateway/auth-config.ts";

const SECRET = randomBytes(32).toString("base64url");
const nowS = () => Math.floor(Date.now() / 1000);

function verifierFor(env: Env) {
  return createVerifier(readAuthConfig(env));
}

function assertOk(r: VerifyResult, user: string): asserts r is Extract<VerifyResult, { ok: true }> {
  assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
  assert.equal(r.user, user);
}

function assertFails(
  r: VerifyResult,
  reason: AuthFailureReason,
  token?: string,
): asserts r is Extract<VerifyResult, { ok: false }> {
  assert.ok(!r.ok, `expected ${reason}, got ok`);
  assert.equal(r.reason, reason, r.message);
  assert.ok(r.message.length > 0);
  if (token !== undefined) assert.ok(!r.message.includes(token), "message must not contain the token");
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a ConfigError");
}

/** Signs an arbitrary claims set (no defaults), so tests can leave out exp or sub. */
async function sign(
  payload: JWTPayload,
  key: CryptoKey | Uint8Array,
  header: { alg: string; kid?: string } = { alg: "HS256" },
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

const hmac = (s: string) => new TextEncoder().encode(s);

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server on 127.0.0.1:0. close() also drops connections a hanging handler holds. */
async function serve(handler: Handler): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function keyPair(alg: "RS256" | "ES256" | "EdDSA", kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicKey, jwk, pem: await exportSPKI(publicKey) };
}

test("the failure table describes every reason", () => {
  for (const [reason, entry] of Object.entries(AUTH_FAILURES)) {
    assert.ok(entry.description.length > 0, reason);
    assert.equal(typeof entry.retriable, "boolean");
  }
  assert.equal(AUTH_FAILURES.jwks_unavailable.retriable, true);
  assert.equal(AUTH_FAILURES.expired.retriable, false);
});

test("HS256: a dev token verifies, with its user, expiry and claims", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET });
  const token = await mintDevToken(SECRET, "alice", { ttlS: 120, claims: { role: "admin" } });
  const r = await v.verify(token);
  assertOk(r, "alice");
  assert.equal(r.claims.role, "admin");
  assert.ok(Math.abs(r.expiresAtMs - (Date.now() + 120_000)) < 5000);
  assert.equal(r.expiresAtMs % 1000, 0);
  // Signed with another secret.
  const forged = await mintDevToken(randomBytes(32).toString("hex"), "alice");
  assertFails(await v.verify(forged), "bad_signature", forged);
  // Payload swapped after signing.
  const [h, , s] = token.split(".");
  const other = base64url.encode(JSON.stringify({ sub: "mallory", exp: nowS() + 60 }));
  assertFails(await v.verify(`${h}.${other}.${s}`), "bad_signature");
});

test("RS256, ES256 and EdDSA via RT_JWT_PUBLIC_KEY (multi-line and single-line \\n PEM)", async () => {
  for (const alg of ["RS256", "ES256", "EdDSA"] as const) {
    const k = await keyPair(alg, "k1");
    for (const pem of [k.pem, k.pem.trim().replace(/\n/g, "\\n")]) {
      const config = readAuthConfig({ RT_JWT_PUBLIC_KEY: pem });
      assert.deepEqual(config.algorithms, [alg]);
      const v = createVerifier(config);
      const token = await sign({ sub: `user-${alg}`, exp: nowS() + 60 }, k.privateKey, { alg });
      assertOk(await v.verify(token), `user-${alg}`);
      const other = await keyPair(alg, "k2");
      const forged = await sign({ sub: "x", exp: nowS() + 60 }, other.privateKey, { alg });
      assertFails(await v.verify(forged), "bad_signature", forged);
    }
  }
});

test("alg none is refused, whatever keys are configured", async () => {
  const rsa = await keyPair("RS256", "k1");
  const enc = (o: object) => base64url.encode(JSON.stringify(o));
  const payload = enc({ sub: "alice", exp: nowS() + 60 });
  for (const env of [{ RT_JWT_SECRET: SECRET }, { RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWT_SECRET: SECRET }]) {
    const v = verifierFor(env);
    for (const alg of ["none", "None", "NONE"]) {
      const token = `${enc({ alg, typ: "JWT" })}.${payload}.`;
      assertFails(await v.verify(token), "alg_not_allowed", token);
    }
    assertFails(await v.verify(`${enc({ typ: "JWT" })}.${payload}.`), "alg_not_allowed");
    assertFails(await v.verify(`${enc({ alg: "HS512" })}.${payload}.abc`), "alg_not_allowed");
  }
});

test("algorithm confusion: HS256 signed with the RSA public key's PEM is refused", async () => {
  const rsa = await keyPair("RS256", "k1");
  const claims = { sub: "mallory", exp: nowS() + 60 };
  const token = await sign(claims, hmac(rsa.pem));
  assertFails(await verifierFor({ RT_JWT_PUBLIC_KEY: rsa.pem }).verify(token), "alg_not_allowed", token);
  // With a secret configured too, HS256 meets the secret only, never the public key.
  const both = verifierFor({ RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWT_SECRET: SECRET });
  assertFails(await both.verify(token), "bad_signature", token);
  // And an RS256 token is never checked with the HMAC secret.
  const rs = await sign(claims, rsa.privateKey, { alg: "RS256" });
  assertOk(await both.verify(rs), "mallory");
  assertFails(await verifierFor({ RT_JWT_SECRET: SECRET }).verify(rs), "alg_not_allowed", rs);
});

test("exp: required, and expired past the tolerance", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET, RT_JWT_CLOCK_TOLERANCE_S: "5" });
  const key = hmac(SECRET);
  const expired = await sign({ sub: "alice", exp: nowS() - 60 }, key);
  assertFails(await v.verify(expired), "expired", expired);
  assertOk(await v.verify(await sign({ sub: "alice", exp: nowS() - 2 }, key)), "alice");
  const noExp = await sign({ sub: "alice" }, key);
  assertFails(await v.verify(noExp), "missing_exp", noExp);
  assertFails(
    await v.verify(await sign({ sub: "alice", exp: "tomorrow" } as unknown as JWTPayload, key)),
    "malformed",
  );
});

test("nbf and iat in the future: refused past the tolerance, accepted within it", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET, RT_JWT_CLOCK_TOLERANCE_S: "5" });
  const key = hmac(SECRET);
  const exp = nowS() + 600;
  const early = await sign({ sub: "alice", exp, nbf: nowS() + 60 }, key);
  assertFails(await v.verify(early), "not_yet_valid", early);
  assertOk(await v.verify(await sign({ sub: "alice", exp, nbf: nowS() + 2 }, key)), "alice");
  assertFails(await v.verify(await sign({ sub: "alice", exp, iat: nowS() + 60 }, key)), "not_yet_valid");
  assertOk(await v.verify(await sign({ sub: "alice", exp, iat: nowS() + 2 }, key)), "alice");
});

test("sub: required, non-empty, bounded printable ASCII", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET });
  const key = hmac(SECRET);
  const exp = nowS() + 60;
  assertFails(await v.verify(await sign({ exp }, key)), "missing_sub");
  assertFails(await v.verify(await sign({ sub: "", exp }, key)), "missing_sub");
  for (const sub of ["a b", "x".repeat(129), "zoë", "tab\there", 42, ["a"]]) {
    assertFails(await v.verify(await sign({ sub, exp } as JWTPayload, key)), "bad_sub");
  }
  assertOk(await v.verify(await sign({ sub: "x".repeat(128), exp }, key)), "x".repeat(128));
  assertOk(await v.verify(await sign({ sub: "user:42|tenant@acme", exp }, key)), "user:42|tenant@acme");
});

test("issuer and audience are checked when configured", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET, RT_JWT_ISSUER: "https://idp", RT_JWT_AUDIENCE: "rt,other" });
  const ok = await mintDevToken(SECRET, "alice", { issuer: "https://idp", audience: "rt" });
  assertOk(await v.verify(ok), "alice");
  const badIss = await mintDevToken(SECRET, "alice", { issuer: "https://evil", audience: "rt" });
  assertFails(await v.verify(badIss), "wrong_issuer", badIss);
  assertFails(await v.verify(await mintDevToken(SECRET, "alice", { audience: "rt" })), "wrong_issuer");
  const badAud = await mintDevToken(SECRET, "alice", { issuer: "https://idp", audience: "billing" });
  assertFails(await v.verify(badAud), "wrong_audience", badAud);
  assertFails(
    await v.verify(await mintDevToken(SECRET, "alice", { issuer: "https://idp" })),
    "wrong_audience",
  );
  // Not configured: not checked.
  assertOk(await verifierFor({ RT_JWT_SECRET: SECRET }).verify(badIss), "alice");
});

test("malformed and too-long tokens fail fast", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET });
  for (const bad of ["", "abc", "a.b.c", "a.b", "....", "%%%.e30.x"])
    assertFails(await v.verify(bad), "malformed");
  const valid = await mintDevToken(SECRET, "alice");
  assertFails(await v.verify(valid.split(".").slice(0, 2).join(".")), "malformed");
  const pad = { pad: "x".repeat(MAX_TOKEN_CHARS) };
  const long = await mintDevToken(SECRET, "alice", { claims: pad });
  assert.ok(long.length > MAX_TOKEN_CHARS);
  const r = await v.verify(long);
  assertFails(r, "too_long", long);
  assertFails(await v.verify("x".repeat(MAX_TOKEN_CHARS + 1)), "too_long");
});

test("JWKS: kid selection, unknown kid, and rotation without a new verifier", async (t) => {
  const a = await keyPair("ES256", "key-a");
  const b = await keyPair("EdDSA", "key-b");
  let keys: JWK[] = [a.jwk];
  let fetches = 0;
  const srv = await serve((_req, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
  });
  t.after(() => srv.close());
  const v = verifierFor({ RT_JWKS_URL: srv.url, RT_JWKS_COOLDOWN_MS: "100" });
  t.after(() => v.close());
  const claims = { sub: "alice", exp: nowS() + 600 };
  assertOk(await v.verify(await sign(claims, a.privateKey, { alg: "ES256", kid: "key-a" })), "alice");
  assertOk(await v.verify(await sign(claims, a.privateKey, { alg: "ES256", kid: "key-a" })), "alice");
  assert.equal(fetches, 1, "keys are cached");

  const tokenB = await sign(claims, b.privateKey, { alg: "EdDSA", kid: "key-b" });
  assertFails(await v.verify(tokenB), "unknown_kid", tokenB);

  keys = [a.jwk, b.jwk]; // the issuer publishes B
  await new Promise((r) => setTimeout(r, 150)); // past the cooldown
  assertOk(await v.verify(tokenB), "alice");
  const forged = await sign(claims, (await keyPair("EdDSA", "x")).privateKey, { alg: "EdDSA", kid: "key-b" });
  assertFails(await v.verify(forged), "bad_signature", forged);
});

test("JWKS within the cooldown: an unknown kid does not refetch", async (t) => {
  const a = await keyPair("RS256", "key-a");
  let fetches = 0;
  const srv = await serve((_req, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [a.jwk] }));
  });
  t.after(() => srv.close());
  const v = verifierFor({ RT_JWKS_URL: srv.url }); // default cooldown, 30 s
  const claims = { sub: "alice", exp: nowS() + 600 };
  assertOk(await v.verify(await sign(claims, a.privateKey, { alg: "RS256", kid: "key-a" })), "alice");
  for (let i = 0; i < 5; i++) {
    const token = await sign(claims, a.privateKey, { alg: "RS256", kid: `random-${i}` });
    assertFails(await v.verify(token), "unknown_kid", token);
  }
  assert.equal(fetches, 1);
});

test("JWKS that never answers: jwks_unavailable, within about the timeout", async (t) => {
  const a = await keyPair("ES256", "key-a");
  const srv = await serve(() => {}); // accepts, never responds
  t.after(() => srv.close());
  const v = verifierFor({ RT_JWKS_URL: srv.url, RT_JWKS_TIMEOUT_MS: "300" });
  const token = await sign({ sub: "alice", exp: nowS() + 60 }, a.privateKey, { alg: "ES256", kid: "key-a" });
  const started = Date.now();
  const [r1, r2] = await Promise.all([v.verify(token), v.verify(token)]);
  assertFails(r1, "jwks_unavailable", token);
  assertFails(r2, "jwks_unavailable", token);
  assert.match(r1.message, /timed out|no JWKS answer/);
  assert.ok(Date.now() - started < 20_000, "bounded by the timeout, not hanging");
});

test("JWKS garbage, errors and a dead endpoint: jwks_unavailable", async (t) => {
  const a = await keyPair("ES256", "key-a");
  const token = await sign({ sub: "alice", exp: nowS() + 60 }, a.privateKey, { alg: "ES256", kid: "key-a" });
  const bodies: Array<[number, string]> = [
    [200, "this is not json"],
    [200, JSON.stringify({ hello: "world" })],
    [200, JSON.stringify({ keys: [{ kty: "EC", crv: "P-256", kid: "key-a", x: "AAAA", y: "AAAA" }] })],
    [500, JSON.stringify({ keys: [a.jwk] })],
    [302, ""],
  ];
  for (const [status, body] of bodies) {
    const srv = await serve((_req, res) => res.writeHead(status, { location: "/elsewhere" }).end(body));
    t.after(() => srv.close());
    const r = await verifierFor({ RT_JWKS_URL: srv.url, RT_JWKS_TIMEOUT_MS: "300" }).verify(token);
    assertFails(r, "jwks_unavailable", token);
  }
  const dead = await serve(() => {});
  await dead.close(); // nothing listens on that port now
  const r = await verifierFor({ RT_JWKS_URL: dead.url, RT_JWKS_TIMEOUT_MS: "300" }).verify(token);
  assertFails(r, "jwks_unavailable", token);
});

test("several sources: HS256 to the secret, RS256 to the static key, the rest to the JWKS", async (t) => {
  const rsa = await keyPair("RS256", "static");
  const ed = await keyPair("EdDSA", "key-ed");
  const srv = await serve((_req, res) => res.writeHead(200).end(JSON.stringify({ keys: [ed.jwk] })));
  t.after(() => srv.close());
  const config = readAuthConfig({ RT_JWT_SECRET: SECRET, RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWKS_URL: srv.url });
  assert.deepEqual([...config.algorithms].sort(), ["ES256", "EdDSA", "HS256", "PS256", "RS256"]);
  assert.deepEqual(config.publicKey?.algorithms, ["RS256"]);
  const v = createVerifier(config);
  const claims = { sub: "alice", exp: nowS() + 60 };
  assertOk(await v.verify(await mintDevToken(SECRET, "alice")), "alice");
  assertOk(await v.verify(await sign(claims, rsa.privateKey, { alg: "RS256" })), "alice");
  assertOk(await v.verify(await sign(claims, ed.privateKey, { alg: "EdDSA", kid: "key-ed" })), "alice");
});

test("close: later calls resolve with closed; safe twice", async () => {
  const v = verifierFor({ RT_JWT_SECRET: SECRET });
  const token = await mintDevToken(SECRET, "alice");
  v.close();
  v.close();
  assertFails(await v.verify(token), "closed", token);
});

test("config: defaults, frozen, algorithm override", async () => {
  const c = readAuthConfig({ RT_JWT_SECRET: SECRET });
  assert.deepEqual(c.algorithms, ["HS256"]);
  assert.equal(c.clockToleranceS, 5);
  assert.equal(c.jwksTimeoutMs, 3000);
  assert.equal(c.jwksCacheMs, 600_000);
  assert.equal(c.jwksCooldownMs, 30_000);
  assert.equal(c.maxTokenChars, 8192);
  assert.equal(c.issuer, undefined);
  assert.equal(c.audience, undefined);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.algorithms));

  const rsa = await keyPair("RS256", "k");
  const ps = readAuthConfig({ RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWT_ALGORITHMS: "PS256, RS256" });
  assert.deepEqual(ps.publicKey?.algorithms, ["PS256", "RS256"]);
  // The same RSA key signs PS256 (a KeyObject, since a WebCrypto key is bound to one scheme).
  const rsaKeyObject = createPrivateKey(await exportPKCS8(rsa.privateKey));
  const token = await new SignJWT({ sub: "alice", exp: nowS() + 60 })
    .setProtectedHeader({ alg: "PS256" })
    .sign(rsaKeyObject);
  assertOk(await createVerifier(ps).verify(token), "alice");
  const rsOnly = readAuthConfig({ RT_JWT_PUBLIC_KEY: rsa.pem });
  assertFails(await createVerifier(rsOnly).verify(token), "alg_not_allowed", token);
});

test("config errors name the variable and never echo secrets", async () => {
  let e = configError(() => readAuthConfig({}));
  assert.equal(e.variable, "RT_JWT_SECRET");
  assert.match(e.message, /RT_JWT_SECRET, RT_JWT_PUBLIC_KEY or RT_JWKS_URL/);

  const short = "too-short-secret";
  e = configError(() => readAuthConfig({ RT_JWT_SECRET: short }));
  assert.equal(e.variable, "RT_JWT_SECRET");
  assert.ok(!e.message.includes(short));

  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const privatePem = await exportPKCS8(privateKey);
  const p384 = await generateKeyPair("ES384", { extractable: true });
  const smallRsa = await generateKeyPair("RS256", { extractable: true, modulusLength: 1024 }).catch(
    () => null,
  );
  const badKeys = ["not a pem", privatePem, await exportSPKI(p384.publicKey)];
  if (smallRsa !== null) badKeys.push(await exportSPKI(smallRsa.publicKey));
  for (const bad of badKeys) {
    e = configError(() => readAuthConfig({ RT_JWT_PUBLIC_KEY: bad }));
    assert.equal(e.variable, "RT_JWT_PUBLIC_KEY");
    assert.ok(!e.message.includes("PRIVATE"));
    if (bad.length > 60) assert.ok(!e.message.includes(bad.slice(30, 60)));
  }

  for (const url of ["ftp://idp/jwks", "not a url"]) {
    assert.equal(configError(() => readAuthConfig({ RT_JWKS_URL: url })).variable, "RT_JWKS_URL");
  }

  const rsa = await keyPair("RS256", "k");
  const badAlgs: Env[] = [
    { RT_JWT_SECRET: SECRET, RT_JWT_ALGORITHMS: "none" },
    { RT_JWT_SECRET: SECRET, RT_JWT_ALGORITHMS: "HS256,HS512" },
    { RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWT_ALGORITHMS: "HS256" }, // no secret for HS256
    { RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWT_ALGORITHMS: "ES256" }, // no EC key, no JWKS
    { RT_JWT_SECRET: SECRET, RT_JWT_PUBLIC_KEY: rsa.pem, RT_JWT_ALGORITHMS: "HS256" }, // key unused
    { RT_JWT_SECRET: SECRET, RT_JWKS_URL: "https://idp/jwks", RT_JWT_ALGORITHMS: "HS256" }, // JWKS unused
  ];
  for (const env of badAlgs) {
    assert.equal(configError(() => readAuthConfig(env)).variable, "RT_JWT_ALGORITHMS", JSON.stringify(env));
  }

  const numbers: Array<[string, string]> = [
    ["RT_JWT_CLOCK_TOLERANCE_S", "301"],
    ["RT_JWT_CLOCK_TOLERANCE_S", "-1"],
    ["RT_JWKS_TIMEOUT_MS", "soon"],
    ["RT_JWKS_CACHE_MS", "0"],
    ["RT_JWKS_COOLDOWN_MS", "1.5"],
  ];
  for (const [name, value] of numbers) {
    assert.equal(configError(() => readAuthConfig({ RT_JWT_SECRET: SECRET, [name]: value })).variable, name);
  }
});
