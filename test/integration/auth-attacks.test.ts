/**
 * Authentication attacks against a real gateway process whose keys come from a real JWKS server
 * on loopback (and an HS256 secret, so algorithm confusion has a secret to confuse with): forged,
 * expired, misaddressed and malformed tokens are refused with the documented code and never
 * welcomed; keys rotate without a restart; a JWKS endpoint that hangs or answers garbage fails
 * the handshake with `unavailable` (4500, not the hello deadline) while sessions and tokens with
 * cached keys carry on; no token ever reaches the gateway's log.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  base64url,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from "jose";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token as hsToken, type TestClient } from "../helpers/ws-client.ts";
import { liveWs, mustUpgrade, upgrade } from "../helpers/abuse.ts";
import { recordMeasurements } from "../helpers/reliability.ts";

const ISSUER = "https://issuer.test";
const AUDIENCE = "rt-test";
const COOLDOWN_MS = 2000;

type Mode = "ok" | "hang" | "html" | "not_a_set" | "status_500" | "redirect";
interface SigningKey {
  readonly kid: string;
  readonly alg: "RS256" | "ES256";
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
  readonly pem: string;
}

let t: TestKafka;
let gw: GatewayProc;
let jwks: { url: string; requests: number; mode: Mode; keys: JWK[]; close(): Promise<void> };
let k1: SigningKey;
let ec: SigningKey;
let bystander: { client: TestClient; user: string };
let sender: TestClient;
let seq = 0;
/** Every token this file sends: none may appear in the gateway's log. */
const usedTokens: string[] = [];
const tally = { tried: 0, acceptedWrongly: 0 };

async function signingKey(kid: string, alg: "RS256" | "ES256" = "RS256"): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, jwk, pem: await exportSPKI(publicKey) };
}

async function startJwks(): Promise<typeof jwks> {
  const hanging = new Set<ServerResponse>();
  const state = {
    url: "",
    requests: 0,
    mode: "ok" as Mode,
    keys: [] as JWK[],
    close: async () => {},
  };
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => {
    state.requests += 1;
    switch (state.mode) {
      case "ok":
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: state.keys }));
        return;
      case "hang":
        hanging.add(res);
        return;
      case "html":
        res.writeHead(200, { "content-type": "text/html" }).end("<html>login</html>");
        return;
      case "not_a_set":
        res.writeHead(200, { "content-type": "application/json" }).end('{"keys":"everything"}');
        return;
      case "status_500":
        res.writeHead(500).end();
        return;
      case "redirect":
        res.writeHead(302, { location: "http://127.0.0.1:1/evil.json" }).end();
        return;
    }
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  state.close = () =>
    new Promise<void>((done) => {
      for (const res of hanging) res.destroy();
      server.close(() => done());
      server.closeAllConnections();
    });
  return state;
}

const nowS = () => Math.floor(Date.now() / 1000);
const claims = (sub: string, extra: JWTPayload = {}): JWTPayload => ({
  sub,
  iss: ISSUER,
  aud: AUDIENCE,
  iat: nowS(),
  exp: nowS() + 600,
  ...extra,
});

async function signed(
  key: SigningKey,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const jwt = await new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
  usedTokens.push(jwt);
  return jwt;
}

function raw(header: object, payload: object, signature = ""): string {
  const enc = (o: object) => base64url.encode(JSON.stringify(o));
  const jwt = `${enc(header)}.${enc(payload)}.${signature}`;
  usedTokens.push(jwt);
  return jwt;
}

async function hmacWith(keyBytes: string, payload: JWTPayload, kid?: string): Promise<string> {
  const jwt = await new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", ...(kid === undefined ? {} : { kid }) })
    .sign(new TextEncoder().encode(keyBytes));
  usedTokens.push(jwt);
  return jwt;
}

before(async () => {
  t = await testKafka();
  jwks = await startJwks();
  k1 = await signingKey("k1");
  ec = await signingKey("ec1", "ES256");
  jwks.keys = [k1.jwk, ec.jwk];
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_JWKS_URL: jwks.url,
      RT_JWT_ISSUER: ISSUER,
      RT_JWT_AUDIENCE: AUDIENCE,
      RT_JWKS_TIMEOUT_MS: "500",
      RT_JWKS_COOLDOWN_MS: String(COOLDOWN_MS),
      // Far beyond the JWKS timeout: a handshake that ends in 4011 waited for the deadline instead.
      RT_HELLO_TIMEOUT_MS: "15000",
      // Debug logging, so a token that leaked into any log line would be seen.
      RT_LOG_LEVEL: "debug",
    }),
  );
  await waitAllReady([gw]);
  const b = `bystander-${t.prefix}`;
  const bTok = await hsToken(b, { issuer: ISSUER, audience: AUDIENCE });
  const sTok = await hsToken(`sender-${t.prefix}`, { issuer: ISSUER, audience: AUDIENCE });
  usedTokens.push(bTok, sTok);
  bystander = { client: (await connectUser(gw.url, bTok)).client, user: b };
  sender = (await connectUser(gw.url, sTok)).client;
});

after(async () => {
  recordMeasurements("auth-attacks", {
    authCasesTried: tally.tried,
    authCasesAcceptedWrongly: tally.acceptedWrongly,
  });
  bystander.client.close();
  sender.close();
  await gw.proc.stop("SIGTERM", 20_000);
  await jwks.close();
  await t.cleanup();
});

async function bystanderStillServed(): Promise<void> {
  const id = `b${seq++}`;
  sender.send({ op: "send", id, to: `user:${bystander.user}`, type: "check", data: null });
  await bystander.client.waitFor((f) => f.op === "event" && f.id === id);
}

/** hello with `jwt` must end in `close` with error `code`, never a welcome. */
async function helloRefused(jwt: string, close: number, code: string, what: string): Promise<void> {
  tally.tried += 1;
  const c = await mustUpgrade(gw.url);
  c.send({ op: "hello", token: jwt });
  const closed = await c.closed;
  if (c.frames.some((f) => f.op === "welcome")) tally.acceptedWrongly += 1;
  assert.equal(closed.code, close, `${what}: ${JSON.stringify(closed)} ${JSON.stringify(c.frames)}`);
  assert.equal(c.frames.find((f) => f.op === "error")?.code, code, what);
}

/** The same token on the upgrade's Authorization header must get HTTP `status` with `error`. */
async function upgradeRefused(jwt: string, status: number, error: string, what: string): Promise<void> {
  tally.tried += 1;
  const r = await upgrade(gw.url, { headers: { authorization: `Bearer ${jwt}` } });
  if (r.ok) {
    tally.acceptedWrongly += 1;
    r.c.ws.terminate();
    assert.fail(`${what}: the upgrade was accepted`);
  }
  assert.equal(r.status, status, `${what}: ${r.body}`);
  assert.equal((JSON.parse(r.body) as { error: string }).error, error, what);
}

test("control: a good RS256 token from the JWKS, and a good HS256 token, are welcomed", async () => {
  const c = await liveWs(gw.url, await signed(k1, claims(`good-${t.prefix}`)));
  c.ws.close();
  const e = await liveWs(gw.url, await signed(ec, claims(`good-ec-${t.prefix}`)));
  e.ws.close();
});

test("forged and confused tokens: alg none, HS256 keyed with the public key, stripped and swapped signatures, embedded keys", async () => {
  const user = `victim-${t.prefix}`;
  const good = await signed(k1, claims(user));
  const [h, p, s] = good.split(".") as [string, string, string];
  const cases: [string, string][] = [];
  for (const alg of ["none", "None", "NONE", "nOnE"]) {
    cases.push([`alg ${alg}`, raw({ alg, typ: "JWT" }, claims(user))]);
    cases.push([`alg ${alg} with a signature`, raw({ alg, kid: "k1" }, claims(user), s)]);
  }
  cases.push(["no alg at all", raw({ kid: "k1" }, claims(user), s)]);
  cases.push(["alg HS512 (not allowed)", raw({ alg: "HS512" }, claims(user), s)]);
  cases.push(["HS256 keyed with the RS public key PEM", await hmacWith(k1.pem, claims(user), "k1")]);
  cases.push([
    "HS256 keyed with the RS public JWK",
    await hmacWith(JSON.stringify(k1.jwk), claims(user), "k1"),
  ]);
  cases.push(["HS256 keyed with the RS modulus", await hmacWith(k1.jwk.n!, claims(user), "k1")]);
  cases.push(["HS256 keyed with the EC public key PEM", await hmacWith(ec.pem, claims(user), "ec1")]);
  cases.push(["signature stripped", `${h}.${p}.`]);
  cases.push([
    "payload swapped after signing",
    `${h}.${base64url.encode(JSON.stringify(claims("mallory")))}.${s}`,
  ]);
  cases.push([
    "header swapped to another kid",
    `${base64url.encode(JSON.stringify({ alg: "RS256", kid: "ec1" }))}.${p}.${s}`,
  ]);
  const attacker = await signingKey("k1");
  cases.push(["signed by another key under a known kid", await signed(attacker, claims(user))]);
  cases.push([
    "attacker key embedded in the header (jwk)",
    await signed(attacker, claims(user), { kid: undefined, jwk: attacker.jwk }),
  ]);
  cases.push([
    "attacker JWKS by reference (jku)",
    await signed(attacker, claims(user), { jku: "http://127.0.0.1:1/evil.json" }),
  ]);
  cases.push(["kid path traversal", raw({ alg: "RS256", kid: "../../../../etc/passwd" }, claims(user), s)]);
  cases.push(["kid of 4000 characters", raw({ alg: "RS256", kid: "k".repeat(4000) }, claims(user), s)]);
  cases.push(["not a JWT", "not.a.jwt"]);
  cases.push(["two parts", `${h}.${p}`]);
  cases.push(["header not JSON", `${base64url.encode("{alg")}.${p}.${s}`]);
  for (const [what, jwt] of cases) await helloRefused(jwt, 4001, "unauthorized", what);
  for (const [what, jwt] of cases.slice(0, 12)) await upgradeRefused(jwt, 401, "unauthorized", what);
  await bystanderStillServed();
});

test("claims: expired, not yet valid, wrong or missing issuer and audience, missing exp, bad sub", async () => {
  const user = `claims-${t.prefix}`;
  await helloRefused(await signed(k1, claims(user, { exp: nowS() - 60 })), 4010, "token_expired", "expired");
  await upgradeRefused(await signed(k1, claims(user, { exp: nowS() - 60 })), 401, "token_expired", "expired");
  const refused: [string, JWTPayload][] = [
    ["nbf in the future", claims(user, { nbf: nowS() + 600 })],
    ["iat in the future", claims(user, { iat: nowS() + 600 })],
    ["wrong issuer", claims(user, { iss: "https://evil.test" })],
    ["no issuer", { ...claims(user), iss: undefined }],
    ["wrong audience", claims(user, { aud: "another-service" })],
    ["audience list without ours", claims(user, { aud: ["a", "b"] })],
    ["no audience", { ...claims(user), aud: undefined }],
    ["no exp", { ...claims(user), exp: undefined }],
    ["exp as a string", claims(user, { exp: String(nowS() + 600) as unknown as number })],
    ["no sub", { ...claims(user), sub: undefined }],
    ["empty sub", claims("")],
    ["sub with a space", claims("alice bob")],
    ["sub of 129 characters", claims("u".repeat(129))],
    ["sub with a newline", claims("alice\nbob")],
  ];
  for (const [what, payload] of refused) {
    await helloRefused(
      await signed(k1, JSON.parse(JSON.stringify(payload)) as JWTPayload),
      4001,
      "unauthorized",
      what,
    );
  }
  // Within the clock tolerance (5 s) is fine.
  (await liveWs(gw.url, await signed(k1, claims(`skew-${t.prefix}`, { nbf: nowS() + 2 })))).ws.close();
  await bystanderStillServed();
});

test("unknown kid: refused, and a flood of them costs the JWKS endpoint at most one fetch per cooldown", async () => {
  const stranger = await signingKey("nobody-knows");
  // Right after a successful fetch the cooldown is in force: no refetch at all.
  await sleep(COOLDOWN_MS + 100);
  await helloRefused(await signed(stranger, claims(`s-${t.prefix}`)), 4001, "unauthorized", "unknown kid");
  const before = jwks.requests;
  assert.ok(before >= 2, "the refetch after the cooldown happened");
  const flood = [];
  for (let i = 0; i < 20; i++)
    flood.push(
      helloRefused(
        await signed(stranger, claims(`s${i}-${t.prefix}`)),
        4001,
        "unauthorized",
        "unknown kid flood",
      ),
    );
  await Promise.all(flood);
  assert.ok(jwks.requests - before <= 1, `${jwks.requests - before} JWKS fetches for 20 unknown kids`);
  await bystanderStillServed();
});

test("rotation: a key added to the JWKS is accepted without a restart", async () => {
  const k2 = await signingKey("k2");
  jwks.keys = [k1.jwk, ec.jwk, k2.jwk];
  await sleep(COOLDOWN_MS + 100);
  const c = await liveWs(gw.url, await signed(k2, claims(`rotated-${t.prefix}`)));
  c.send({ op: "ping", id: "r" });
  await c.waitFor((f) => f.op === "pong");
  c.ws.close();
  // Retiring k1: once the JWKS is refetched (a new kid after the cooldown), k1 tokens stop working.
  jwks.keys = [ec.jwk, k2.jwk];
  const k3 = await signingKey("k3");
  jwks.keys = [ec.jwk, k2.jwk, k3.jwk];
  await sleep(COOLDOWN_MS + 100);
  (await liveWs(gw.url, await signed(k3, claims(`rotated3-${t.prefix}`)))).ws.close();
  await helloRefused(await signed(k1, claims(`retired-${t.prefix}`)), 4001, "unauthorized", "retired key");
});

test("a JWKS endpoint that hangs or answers garbage: 4500 unavailable within the JWKS timeout; cached keys and live sessions carry on", async () => {
  // A kid no earlier test used, so the cache cannot hold an older key under it.
  const k2 = await signingKey("k5");
  jwks.keys = [ec.jwk, k2.jwk];
  await sleep(COOLDOWN_MS + 100);
  (await liveWs(gw.url, await signed(k2, claims(`warm-${t.prefix}`)))).ws.close();
  const newcomer = await signingKey("k-new");
  for (const mode of ["hang", "html", "not_a_set", "status_500", "redirect"] as const) {
    jwks.mode = mode;
    // A failed fetch does not start the cooldown, so every unknown kid tries the endpoint again.
    await sleep(COOLDOWN_MS + 100);
    const requests = jwks.requests;
    await helloRefused(await signed(newcomer, claims(`n-${t.prefix}`)), 4500, "unavailable", `JWKS ${mode}`);
    assert.ok(jwks.requests > requests, `${mode}: the endpoint was asked`);
    await upgradeRefused(
      await signed(newcomer, claims(`n2-${t.prefix}`)),
      503,
      "unavailable",
      `JWKS ${mode}`,
    );
    // A token whose key is cached is still accepted, and live sessions are still served.
    const cached = await liveWs(gw.url, await signed(k2, claims(`cached-${mode}-${t.prefix}`)));
    cached.ws.close();
    await bystanderStillServed();
  }
  jwks.mode = "ok";
  jwks.keys = [ec.jwk, k2.jwk, newcomer.jwk];
  (await liveWs(gw.url, await signed(newcomer, claims(`recovered-${t.prefix}`)))).ws.close();
});

test("a token refresh (auth) while the JWKS endpoint is down gets unavailable, not unauthorized", async () => {
  const k4 = await signingKey("k4");
  const user = `refresh-${t.prefix}`;
  const c = await liveWs(gw.url, await signed(ec, claims(user)));
  jwks.mode = "hang";
  // Past the cooldown, the unknown kid makes the verifier fetch the (hanging) JWKS.
  await sleep(COOLDOWN_MS + 100);
  try {
    c.send({ op: "auth", id: "r1", token: await signed(k4, claims(user)) });
    const ack = await c.waitFor((f) => f.op === "ack" && f.id === "r1", 10_000);
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, "unavailable");
  } finally {
    jwks.mode = "ok";
    c.ws.close();
  }
});

test("a token over 8192 characters is refused for good: hello 4001, not a retriable close; upgrade 401; auth a failed ack", async () => {
  const long = await signed(ec, claims(`long-${t.prefix}`, { pad: "x".repeat(9000) }));
  await helloRefused(long, 4001, "unauthorized", "token over 8192 characters");
  await upgradeRefused(long, 401, "unauthorized", "token over 8192 characters");
  // As a refresh: refused, and the session keeps its current token.
  const user = `long-refresh-${t.prefix}`;
  const c = await liveWs(gw.url, await signed(ec, claims(user)));
  try {
    tally.tried += 1;
    c.send({ op: "auth", id: "long1", token: await signed(ec, claims(user, { pad: "x".repeat(9000) })) });
    const ack = await c.waitFor((f) => f.op === "ack" && f.id === "long1");
    if (ack.ok === true) tally.acceptedWrongly += 1;
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, "unauthorized");
    c.send({ op: "ping", id: "still-live" });
    await c.waitFor((f) => f.op === "pong" && f.id === "still-live");
  } finally {
    c.ws.close();
  }
});

test("tokens are never logged: not from hello, not from the Authorization header, not from the URL", async () => {
  const inUrl = await signed(k1, claims(`url-${t.prefix}`));
  const c = await mustUpgrade(`${gw.url}?token=${inUrl}&access_token=${inUrl}`);
  c.send({ op: "hello", token: "x.y.z" });
  await c.closed;
  usedTokens.push(inUrl);
  // Give the log a moment to flush what the last cases wrote.
  await sleep(200);
  const log = gw.proc.output();
  assert.ok(/"level":"debug"/.test(log), "debug lines were written");
  for (const jwt of usedTokens) {
    const [, payload, signature] = jwt.split(".");
    assert.ok(!log.includes(jwt), "a whole token is in the log");
    if (payload !== undefined && payload.length > 20)
      assert.ok(!log.includes(payload), "a token payload is in the log");
    if (signature !== undefined && signature.length > 20)
      assert.ok(!log.includes(signature), "a token signature is in the log");
  }
});
