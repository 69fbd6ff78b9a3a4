/**
 * The gateway's limits against a real process: connections per user, the send rate limit,
 * the slow-consumer cap, and server heartbeats that close dead connections.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type TestClient } from "../helpers/ws-client.ts";

let t: TestKafka;
let gw: GatewayProc;
const open: TestClient[] = [];

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_PING_INTERVAL_MS: "4000",
      RT_MAX_CONNECTIONS_PER_USER: "2",
      RT_SENDS_PER_S: "200",
      RT_SENDS_BURST: "200",
      RT_MAX_BUFFERED_BYTES: "65536",
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

test("a user past the connection limit is refused with 4012; the others stay", async () => {
  const user = `many-${t.prefix}`;
  const first = await live(user);
  await live(user);
  await assert.rejects(
    connectUser(gw.url, await token(user)),
    (e: { closed?: { code: number }; frame?: { code: string } }) => {
      assert.equal(e.closed?.code, 4012);
      assert.equal(e.frame?.code, "forbidden");
      return true;
    },
  );
  first.send({ op: "ping", id: "still" });
  await first.waitFor((f) => f.op === "pong" && f.id === "still");
});

test("sends past the rate limit get rate_limited acks, and a client that keeps going is closed with 4029", async () => {
  const me = `spammer-${t.prefix}`;
  const c = await live(me);
  for (let i = 0; i < 300; i++) c.send({ op: "send", id: `r${i}`, to: `user:${me}`, type: "t", data: i });
  const acks = await c.waitForCount((f) => f.op === "ack", 300);
  const limited = acks.filter((a) => a.ok === false && a.error.code === "rate_limited");
  assert.ok(limited.length >= 50, `got ${limited.length} rate_limited acks`);
  assert.ok(acks.filter((a) => a.ok === true).length >= 200, "the burst goes through");
  assert.match(limited[0]?.error.message, /retry in \d+ ms/);
  // Keep flooding: once rejections outpace the refill by a burst, the socket is closed.
  for (let i = 0; i < 2000 && c.isClosed === null; i++) {
    c.send({ op: "send", id: `f${i}`, to: `user:${me}`, type: "t", data: i });
  }
  const closed = await Promise.race([c.closed, sleep(30_000).then(() => null)]);
  assert.equal(closed?.code, 4029);
});

test("a client that stops reading is closed with 4008 slow once its buffer passes the cap", async () => {
  const reader = `slow-${t.prefix}`;
  const victim = await live(reader);
  const senders = await Promise.all([0, 1, 2].map((i) => live(`fast-${t.prefix}${i}`)));
  const raw = victim.ws as unknown as { _socket: { pause(): void; resume(): void } };
  raw._socket.pause();
  const blob = "x".repeat(50_000);
  // Enough to fill the kernel's socket buffers on both ends and pass the 64 KiB cap.
  for (const s of senders) {
    for (let i = 0; i < 100; i++)
      s.send({ op: "send", id: `s${i}`, to: `user:${reader}`, type: "bulk", data: blob });
  }
  await Promise.all(senders.map((s) => s.waitForCount((f) => f.op === "ack", 100, 60_000)));
  const acks = senders.flatMap((s) => s.frames.filter((f) => f.op === "ack"));
  assert.ok(
    acks.every((a) => a.ok === true),
    JSON.stringify(acks.find((a) => a.ok !== true)),
  );
  await gw.proc.waitFor(/"msg":"closing slow consumer"/, 30_000);
  // The close frame queues behind the backlog: a client that reads again soon gets 4008.
  raw._socket.resume();
  const closed = await Promise.race([victim.closed, sleep(30_000).then(() => null)]);
  assert.ok(closed !== null, "the slow client was closed");
  assert.equal(closed.code, 4008);
  // The senders were not affected.
  senders[0]!.send({ op: "ping", id: "fine" });
  await senders[0]!.waitFor((f) => f.op === "pong" && f.id === "fine");
});

test("server pings keep live sockets open and close sockets that stop answering", async () => {
  const alive = await live(`alive-${t.prefix}`);
  let pings = 0;
  alive.ws.on("ping", () => (pings += 1));
  const dead = await live(`dead-${t.prefix}`);
  const raw = dead.ws as unknown as { _socket: { pause(): void; resume(): void } };
  raw._socket.pause();
  // Three ping intervals: the paused socket cannot answer the server's pings.
  await sleep(13_000);
  assert.ok(pings >= 2, `the live socket saw ${pings} server pings`);
  assert.equal(alive.isClosed, null, "a socket that answers pings stays open");
  raw._socket.resume();
  const closed = await Promise.race([dead.closed, sleep(5_000).then(() => null)]);
  assert.ok(closed !== null, "the server had closed the unresponsive socket");
  // A dead connection gets no close frame: the client sees an abnormal closure.
  assert.equal(closed.code, 1006);
});
