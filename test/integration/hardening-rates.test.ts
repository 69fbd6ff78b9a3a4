/**
 * Rate limits against a real gateway process: writes per user across the user's connections,
 * control frames (ping, auth refreshes, subscribe) per connection, and requests refused as
 * malformed; each past its limit gets `ack rate_limited` (a ping: no pong), and a client that keeps
 * going is closed with 4029. Assertions count frames against the bucket sizes; where the refill
 * matters, the bound is computed from the time the test actually took.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type Frame, type TestClient } from "../helpers/ws-client.ts";

const USER_RATE = 2;
const USER_BURST = 10;
const CONTROL_RATE = 5;
const SENDS_RATE = 100;

let t: TestKafka;
let gw: GatewayProc;
const open: TestClient[] = [];

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_SENDS_PER_S: String(SENDS_RATE),
      RT_SENDS_BURST: String(SENDS_RATE),
      RT_USER_SENDS_PER_S: String(USER_RATE),
      RT_USER_SENDS_BURST: String(USER_BURST),
      RT_CONTROL_FRAMES_PER_S: String(CONTROL_RATE),
    }),
  );
  await waitAllReady([gw]);
});

after(async () => {
  for (const c of open) c.close();
  await gw.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

async function live(user: string): Promise<TestClient> {
  const { client } = await connectUser(gw.url, await token(user));
  open.push(client);
  return client;
}

/** Most tokens a bucket can have granted over `ms`: its burst plus the refill (one more for rounding). */
const most = (burst: number, ratePerS: number, ms: number) => burst + Math.ceil((ratePerS * ms) / 1000) + 1;

const acksOf = (c: TestClient, prefix: string): Frame[] =>
  c.frames.filter((f) => f.op === "ack" && String(f.id).startsWith(prefix));

test("writes are limited per user across the user's connections; other users are not affected", async () => {
  const me = `multi-${t.prefix}`;
  const other = `other-${t.prefix}`;
  const [a, b, c] = [await live(me), await live(me), await live(other)];
  // The first send through Kafka on a new topic can be slow; wait for it before timing anything.
  c.send({ op: "send", id: "warm", to: `user:${other}`, type: "t", data: 0 });
  assert.equal((await c.waitFor((f) => f.op === "ack" && f.id === "warm", 30_000)).ok, true);
  const started = Date.now();
  for (let i = 0; i < 15; i++) {
    a.send({ op: "send", id: `ua${i}`, to: `user:${other}`, type: "t", data: i });
    b.send({ op: "send", id: `ub${i}`, to: `user:${other}`, type: "t", data: i });
  }
  await a.waitForCount((f) => f.op === "ack" && String(f.id).startsWith("ua"), 15, 30_000);
  await b.waitForCount((f) => f.op === "ack" && String(f.id).startsWith("ub"), 15, 30_000);
  const elapsedMs = Date.now() - started;
  const acks = [...acksOf(a, "ua"), ...acksOf(b, "ub")];
  const ok = acks.filter((f) => f.ok === true);
  const limited = acks.filter((f) => f.ok === false && f.error.code === "rate_limited");
  assert.equal(ok.length + limited.length, 30, JSON.stringify(acks.filter((f) => f.ok !== true)));
  assert.ok(ok.length >= USER_BURST, `the user's burst goes through: ${ok.length} ok`);
  assert.ok(
    ok.length <= most(USER_BURST, USER_RATE, elapsedMs),
    `${ok.length} ok in ${elapsedMs} ms is more than the user's bucket allows`,
  );
  // Each connection alone is far below its own limit: the refusals are the user's.
  assert.ok(
    limited.every((f) => /across connections/.test(f.error.message)),
    limited[0]?.error.message,
  );
  assert.ok(acksOf(a, "ua").some((f) => f.ok === false) || acksOf(b, "ub").some((f) => f.ok === false));
  // Another user has a bucket of its own (less the warm-up send).
  for (let i = 0; i < USER_BURST - 1; i++)
    c.send({ op: "send", id: `uc${i}`, to: `user:${me}`, type: "t", data: i });
  const mine = await c.waitForCount((f) => f.op === "ack" && String(f.id).startsWith("uc"), USER_BURST - 1);
  assert.ok(
    mine.every((f) => f.ok === true),
    JSON.stringify(mine.filter((f) => f.ok !== true)),
  );
  assert.equal(a.isClosed, null);
  assert.equal(b.isClosed, null);
});

test("auth refreshes past the control-frame limit get ack rate_limited; the session carries on", async () => {
  const me = `refresher-${t.prefix}`;
  const c = await live(me);
  const fresh = await token(me);
  const started = Date.now();
  for (let i = 0; i < 40; i++) c.send({ op: "auth", id: `a${i}`, token: fresh });
  const acks = await c.waitForCount((f) => f.op === "ack" && String(f.id).startsWith("a"), 40);
  const elapsedMs = Date.now() - started;
  const ok = acks.filter((f) => f.ok === true);
  const limited = acks.filter((f) => f.ok === false && f.error.code === "rate_limited");
  assert.equal(ok.length + limited.length, 40);
  assert.ok(ok.length >= 2 * CONTROL_RATE, `the burst is verified: ${ok.length}`);
  assert.ok(ok.length <= most(2 * CONTROL_RATE, CONTROL_RATE, elapsedMs), `${ok.length} refreshes verified`);
  assert.equal(c.isClosed, null);
  // Writes have a budget of their own.
  c.send({ op: "send", id: "after-auth", to: `user:${me}`, type: "t", data: 1 });
  assert.equal((await c.waitFor((f) => f.op === "ack" && f.id === "after-auth")).ok, true);
});

test("a ping flood gets a bounded number of pongs and is closed with 4029", async () => {
  const c = await live(`pinger-${t.prefix}`);
  const started = Date.now();
  for (let i = 0; i < 20_000 && c.isClosed === null; i++) {
    c.send({ op: "ping", id: `p${i}` });
    if (i % 500 === 499) await sleep(1);
  }
  const closed = await Promise.race([c.closed, sleep(30_000).then(() => null)]);
  const elapsedMs = Date.now() - started;
  assert.equal(closed?.code, 4029, `closed ${JSON.stringify(closed)}`);
  const pongs = c.frames.filter((f) => f.op === "pong").length;
  assert.ok(pongs >= 2 * CONTROL_RATE, `${pongs} pongs`);
  assert.ok(pongs <= most(2 * CONTROL_RATE, CONTROL_RATE, elapsedMs), `${pongs} pongs in ${elapsedMs} ms`);
  const error = c.frames.find((f) => f.op === "error");
  assert.equal(error?.code, "rate_limited");
});

test("refused requests (here: bad targets) are charged too: a flood of them is closed with 4029", async () => {
  const c = await live(`refused-${t.prefix}`);
  let sent = 0;
  for (; sent < 20_000 && c.isClosed === null; sent++) {
    c.send({ op: "send", id: `x${sent}`, to: "user:", type: "t", data: 1 });
    if (sent % 500 === 499) await sleep(1);
  }
  const closed = await Promise.race([c.closed, sleep(30_000).then(() => null)]);
  assert.equal(closed?.code, 4029, `closed ${JSON.stringify(closed)} after ${sent} refused sends`);
  const refused = c.frames.filter((f) => f.op === "ack" && f.error?.code === "bad_target").length;
  assert.ok(refused >= SENDS_RATE, `the abuse bucket's burst is answered: ${refused}`);
  assert.ok(refused < sent, `not every one of ${sent} refused sends was answered`);
});
