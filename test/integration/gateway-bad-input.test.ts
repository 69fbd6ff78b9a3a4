/**
 * Bad input against a real gateway process: each case gets a typed error frame or a
 * documented close code, and a bystander session keeps receiving its messages.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { SignJWT, generateKeyPair, exportSPKI } from "jose";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { TEST_SECRET, TestClient, connectUser, token, type Frame } from "../helpers/ws-client.ts";

let t: TestKafka;
let gw: GatewayProc;
let bystander: { client: TestClient; user: string };
let sender: { client: TestClient; user: string };
let seq = 0;

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_JWT_AUDIENCE: "rt-test",
      RT_HELLO_TIMEOUT_MS: "600",
      RT_MAX_FRAME_BYTES: "4096",
      RT_SENDS_PER_S: "1000",
    }),
  );
  await waitAllReady([gw]);
  const b = `bystander-${t.prefix}`;
  const s = `sender-${t.prefix}`;
  bystander = {
    client: (await connectUser(gw.url, await token(b, { audience: "rt-test" }))).client,
    user: b,
  };
  sender = { client: (await connectUser(gw.url, await token(s, { audience: "rt-test" }))).client, user: s };
});

after(async () => {
  bystander.client.close();
  sender.client.close();
  await gw.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

/** After every bad case: the bystander still gets a message, in order. */
async function bystanderStillServed(): Promise<void> {
  const id = `b${seq++}`;
  sender.client.send({ op: "send", id, to: `user:${bystander.user}`, type: "check", data: null });
  await bystander.client.waitFor((f) => f.op === "event" && f.id === id);
}

async function expectClose(client: TestClient, code: number, errorCode?: string): Promise<Frame | undefined> {
  const closed = await client.closed;
  assert.equal(closed.code, code, `close ${JSON.stringify(closed)} frames ${JSON.stringify(client.frames)}`);
  const error = client.frames.find((f) => f.op === "error");
  if (errorCode !== undefined) assert.equal(error?.code, errorCode);
  await bystanderStillServed();
  return error;
}

async function raw(first: string | Buffer, asBinary = false): Promise<TestClient> {
  const c = await TestClient.open(gw.url);
  c.ws.send(first, { binary: asBinary });
  return c;
}

const good = () => token(`u-${seq++}`, { audience: "rt-test" });

test("malformed JSON: error bad_json, close 4002", async () => {
  await expectClose(await raw("{not json"), 4002, "bad_json");
});

test("unknown op, wrong field types, extra fields: close 4002 with the reason", async () => {
  await expectClose(await raw(JSON.stringify({ op: "shout" })), 4002, "unknown_op");
  const e1 = await expectClose(await raw(JSON.stringify({ op: "hello", token: 42 })), 4002, "bad_frame");
  assert.match(e1?.message, /hello\.token/);
  const e2 = await expectClose(
    await raw(JSON.stringify({ op: "hello", token: await good(), admin: true })),
    4002,
    "bad_frame",
  );
  assert.match(e2?.message, /unexpected field "admin"/);
});

test("binary frames on the JSON protocol: close 4002", async () => {
  await expectClose(await raw(Buffer.from([1, 2, 3]), true), 4002, "bad_frame");
});

test("a frame over the size limit: close 4009 too_big", async () => {
  const c = await raw(JSON.stringify({ op: "hello", token: "x".repeat(5000) }));
  await expectClose(c, 4009, "too_big");
});

test("frames before hello and no hello at all", async () => {
  await expectClose(await raw(JSON.stringify({ op: "ping" })), 4002, "not_authenticated");
  const idle = await TestClient.open(gw.url);
  await expectClose(idle, 4011);
});

test("bad tokens: garbage, wrong secret, alg none, expired, wrong audience", async () => {
  const hello = async (tok: string) => raw(JSON.stringify({ op: "hello", token: tok }));
  await expectClose(await hello("not.a.jwt"), 4001, "unauthorized");
  await expectClose(
    await hello(
      await token("eve", { secret: "another-secret-another-secret-32bytes!!", audience: "rt-test" }),
    ),
    4001,
    "unauthorized",
  );
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const none = `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "eve", aud: "rt-test", exp: Math.floor(Date.now() / 1000) + 60 })}.`;
  await expectClose(await hello(none), 4001, "unauthorized");
  await expectClose(
    await hello(await token("eve", { ttlS: -60, audience: "rt-test" })),
    4010,
    "token_expired",
  );
  await expectClose(await hello(await token("eve", { audience: "someone-else" })), 4001, "unauthorized");
  // An RS256 token when only an HS256 secret is configured: algorithm not allowed.
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  assert.ok((await exportSPKI(publicKey)).startsWith("-----BEGIN PUBLIC KEY-----"));
  const rs = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256" })
    .setSubject("eve")
    .setAudience("rt-test")
    .setExpirationTime("1h")
    .sign(privateKey);
  await expectClose(await hello(rs), 4001, "unauthorized");
  // The error frame never echoes the token.
  const c = await hello(`${"e".repeat(20)}.${"f".repeat(20)}.${"g".repeat(20)}`);
  await c.closed;
  assert.ok(!JSON.stringify(c.frames).includes("e".repeat(20)));
});

test("Authorization: Bearer on the upgrade: 401 when bad, a live session when good", async () => {
  await assert.rejects(TestClient.open(gw.url, { headers: { authorization: "Bearer nope" } }), /HTTP 401/);
  await assert.rejects(TestClient.open(gw.url, { headers: { authorization: "Basic abc" } }), /HTTP 401/);
  const user = `bearer-${t.prefix}`;
  const c = await TestClient.open(gw.url, {
    headers: { authorization: `Bearer ${await token(user, { audience: "rt-test" })}` },
  });
  const first = await c.waitFor((f) => f.op === "welcome" || f.op === "redirect");
  assert.equal(first.op, "welcome");
  assert.equal(first.user, user);
  c.close();
});

test("an unsupported subprotocol is refused with 400", async () => {
  await assert.rejects(TestClient.open(gw.url, { protocols: ["mqtt"] }), /HTTP 400.*unsupported_subprotocol/);
});

test("inside a session: invalid targets and oversized data get failed acks, the session lives on", async () => {
  const me = `live-${t.prefix}`;
  const { client } = await connectUser(gw.url, await token(me, { audience: "rt-test" }));
  client.send({ op: "send", id: "x1", to: "user:", type: "t", data: 1 });
  client.send({ op: "send", id: "x2", to: "mailbox:bob", type: "t", data: 1 });
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  client.send({ op: "send", id: "x3", to: `user:${me}`, type: "t", data: deep });
  client.send({ op: "send", id: "x4", to: "room:lobby", type: "t", data: 1 });
  const acks = await client.waitForCount((f) => f.op === "ack", 4);
  assert.deepEqual(
    acks.map((a) => [a.id, a.ok, a.error?.code]),
    [
      ["x1", false, "bad_target"],
      ["x2", false, "bad_target"],
      ["x3", false, "too_big"],
      ["x4", false, "forbidden"],
    ],
  );
  client.send({ op: "send", id: "ok1", to: `user:${me}`, type: "t", data: 1 });
  await client.waitFor((f) => f.op === "event" && f.id === "ok1");
  assert.equal(client.isClosed, null);
  client.close();
  await bystanderStillServed();
});

test("token expiry closes the session with 4010 unless refreshed with auth", async () => {
  const u1 = `exp1-${t.prefix}`;
  const u2 = `exp2-${t.prefix}`;
  const short1 = await connectUser(gw.url, await token(u1, { ttlS: 2, audience: "rt-test" }));
  const short2 = await connectUser(gw.url, await token(u2, { ttlS: 2, audience: "rt-test" }));
  short2.client.send({ op: "auth", id: "r1", token: await token(u2, { ttlS: 600, audience: "rt-test" }) });
  assert.equal((await short2.client.waitFor((f) => f.op === "ack" && f.id === "r1")).ok, true);
  short2.client.send({ op: "auth", id: "r2", token: await token("someone-else", { audience: "rt-test" }) });
  assert.equal(
    (await short2.client.waitFor((f) => f.op === "ack" && f.id === "r2")).error?.code,
    "forbidden",
  );
  const closed = await short1.client.closed;
  assert.equal(closed.code, 4010);
  assert.equal(short1.client.frames.find((f) => f.op === "error")?.code, "token_expired");
  // The refreshed session outlives the first token.
  short2.client.send({ op: "ping", id: "alive" });
  await short2.client.waitFor((f) => f.op === "pong" && f.id === "alive");
  short2.client.close();
});

test("HTTP endpoints: /healthz, /readyz, unknown paths", async () => {
  const h = await fetch(`${gw.http}/healthz`);
  assert.equal(h.status, 200);
  assert.equal(((await h.json()) as { status: string }).status, "ok");
  assert.equal((await fetch(`${gw.http}/readyz`)).status, 200);
  const nf = await fetch(`${gw.http}/nope`);
  assert.equal(nf.status, 404);
  assert.match(await nf.text(), /WebSocket endpoint is \/v1\/ws/);
  void TEST_SECRET;
});
