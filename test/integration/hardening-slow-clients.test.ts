/**
 * Slow and dead clients against a real gateway process, beyond gateway-limits.test.ts (one slow
 * reader, one paused live socket): a slow-consumer attack (many sockets of several users that
 * never read, fed large events through Kafka, each event fanned out to every socket of its user)
 * is closed at the buffered-bytes cap with the gateway's memory bounded by the cap, not by what
 * was sent; and dead connections, live or not yet, are dropped by the heartbeat or the hello
 * deadline and give back their per-user and per-address slots. The peak memory goes to
 * docs/RELIABILITY.md.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type TestClient } from "../helpers/ws-client.ts";
import { eventually, gatewayStats, liveWs, mustUpgrade, processMemory, type Ws } from "../helpers/abuse.ts";
import { recordMeasurements } from "../helpers/reliability.ts";

const CAP = 64 * 1024;
/** Sockets per user: each event to a user is written to all of them, so the attack multiplies. */
const PER_USER = 32;
const VICTIM_USERS = 2;
const EVENTS_PER_USER = 400;
const EVENT_BYTES = 32 * 1024;
/** The gateway's resume window keeps recent records on purpose: a bound of its own, set small here. */
const WINDOW_MB = 8;

let t: TestKafka;
let gw: GatewayProc;
let bystander: { client: TestClient; user: string };
let sender: TestClient;
let seq = 0;

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_MAX_BUFFERED_BYTES: String(CAP),
      RT_MAX_CONNECTIONS_PER_USER: String(PER_USER),
      RT_SENDS_PER_S: "5000",
      RT_PING_INTERVAL_MS: "4000",
      RT_HELLO_TIMEOUT_MS: "3000",
      RT_RESUME_WINDOW_MB: String(WINDOW_MB),
    }),
  );
  await waitAllReady([gw]);
  const b = `bystander-${t.prefix}`;
  bystander = { client: (await connectUser(gw.url, await token(b))).client, user: b };
  sender = (await connectUser(gw.url, await token(`sender-${t.prefix}`))).client;
});

after(async () => {
  bystander.client.close();
  sender.close();
  await gw.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

async function bystanderStillServed(): Promise<void> {
  const id = `b${seq++}`;
  sender.send({ op: "send", id, to: `user:${bystander.user}`, type: "check", data: null });
  await bystander.client.waitFor((f) => f.op === "event" && f.id === id, 30_000);
}

type Paused = Ws & { raw: { pause(): void; resume(): void } };
function pause(c: Ws): Paused {
  const raw = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  raw.pause();
  return Object.assign(c, { raw });
}

async function settled(): Promise<void> {
  await eventually(
    () => gatewayStats(gw.http),
    (s) => s.admission.sockets === 2 && s.connections === 2 && s.admission.clientAddresses === 1,
    30_000,
  );
}

test("slow-consumer attack: every socket that never reads is closed at the cap, and memory stays bounded", async () => {
  const users = Array.from({ length: VICTIM_USERS }, (_, i) => `victim${i}-${t.prefix}`);
  const victims: Paused[] = [];
  for (const user of users) {
    const jwt = await token(user);
    for (let i = 0; i < PER_USER; i++) victims.push(pause(await liveWs(gw.url, jwt)));
  }
  const feeders = await Promise.all(
    users.map(async (u) => (await connectUser(gw.url, await token(`feed-${u}`))).client),
  );
  const baseline = processMemory(gw.proc.child.pid!);
  let peak = baseline.rssBytes;
  const sampler = setInterval(() => {
    peak = Math.max(peak, processMemory(gw.proc.child.pid!).rssBytes);
  }, 50);
  const blob = "x".repeat(EVENT_BYTES);
  try {
    for (let i = 0; i < EVENTS_PER_USER; i++) {
      users.forEach((u, k) =>
        feeders[k]!.send({ op: "send", id: `e${i}`, to: `user:${u}`, type: "bulk", data: blob }),
      );
      // Keep the senders' own sockets drained: they read their acks as they go.
      if (i % 50 === 49)
        await Promise.all(feeders.map((f) => f.waitForCount((x) => x.op === "ack", i + 1, 60_000)));
    }
    const acks = (
      await Promise.all(feeders.map((f) => f.waitForCount((x) => x.op === "ack", EVENTS_PER_USER, 120_000)))
    ).flat();
    assert.ok(
      acks.every((a) => a.ok === true),
      JSON.stringify(acks.find((a) => a.ok !== true)),
    );
    // Every victim is closed by the gateway while still not reading.
    await eventually(
      () => gatewayStats(gw.http),
      (s) => s.connections === 2 + feeders.length,
      120_000,
    );
  } finally {
    clearInterval(sampler);
  }
  const slowCloses = [...gw.proc.output().matchAll(/"msg":"closing slow consumer"/g)].length;
  assert.ok(slowCloses >= victims.length, `${slowCloses} slow closes for ${victims.length} victims`);
  // Read again: the close frame (4008) was queued behind the backlog, or the backlog could not
  // drain in time and the connection was dropped (1006).
  for (const v of victims) v.raw.resume();
  const closes = await Promise.all(victims.map((v) => v.closed));
  for (const c of closes) assert.ok(c.code === 4008 || c.code === 1006, JSON.stringify(c));
  const mem = processMemory(gw.proc.child.pid!);
  peak = Math.max(peak, mem.rssBytes);
  const kafkaBytes = VICTIM_USERS * EVENTS_PER_USER * EVENT_BYTES;
  const sentBytes = kafkaBytes * PER_USER;
  const growth = peak - baseline.rssBytes;
  recordMeasurements("hardening-slow-clients", {
    slowSockets: victims.length,
    slowUsers: VICTIM_USERS,
    slowSocketsPerUser: PER_USER,
    slowCapBytes: CAP,
    bytesAimedAtSlowSockets: sentBytes,
    bytesThroughKafka: kafkaBytes,
    gatewayRssBeforeAttackBytes: baseline.rssBytes,
    gatewayPeakRssDuringAttackBytes: peak,
    gatewayPeakRssGrowthBytes: growth,
    gatewayPeakRssSinceStartBytes: mem.peakRssBytes,
  });
  console.log(
    `# slow-consumer attack: ${victims.length} sockets, ${(sentBytes / 2 ** 20).toFixed(0)} MiB aimed at them, ` +
      `gateway RSS ${(baseline.rssBytes / 2 ** 20).toFixed(1)} -> peak ${(peak / 2 ** 20).toFixed(1)} MiB`,
  );
  // Unbounded buffering would hold most of what was sent (fanned out: hundreds of MiB, less what
  // the kernel's socket buffers take). The cap allows two caps per socket, plus what reading the
  // records from Kafka and encoding them costs before the garbage collector catches up (a few
  // copies of each record: Kafka's buffer, the decoded data, the frame), plus the resume window,
  // plus room for the runtime.
  const allowed = victims.length * 2 * CAP + 4 * kafkaBytes + WINDOW_MB * 2 ** 20 + 32 * 2 ** 20;
  assert.ok(
    growth < allowed,
    `grew ${(growth / 2 ** 20).toFixed(1)} MiB, allowed ${(allowed / 2 ** 20).toFixed(1)}`,
  );
  assert.ok(sentBytes > 4 * allowed, "the attack sends far more than the bound");
  for (const f of feeders) f.close();
  await settled();
  // The victims' users get their slots back: all eight connect again.
  const back = [];
  for (let i = 0; i < PER_USER; i++) back.push(await liveWs(gw.url, await token(users[0]!)));
  for (const c of back) c.ws.close();
  await bystanderStillServed();
});

test("dead connections: silent before hello and silent when live are dropped and free their slots", async () => {
  await settled();
  const user = `dead-${t.prefix}`;
  const jwt = await token(user);
  const live: Paused[] = [];
  for (let i = 0; i < PER_USER; i++) live.push(pause(await liveWs(gw.url, jwt)));
  const unwelcomed = await Promise.all(Array.from({ length: 5 }, () => mustUpgrade(gw.url).then(pause)));
  // The user's slots are all taken.
  await assert.rejects(
    connectUser(gw.url, jwt),
    (e: { closed?: { code: number } }) => e.closed?.code === 4012,
  );
  // The hello deadline (3 s) and the heartbeat (ping at 4 s, drop at 8 s) do the rest.
  await eventually(
    () => gatewayStats(gw.http),
    (s) => s.admission.sockets === 2 && s.connections === 2,
    30_000,
  );
  for (const c of [...live, ...unwelcomed]) c.raw.resume();
  const closes = await Promise.all(
    [...live, ...unwelcomed].map((c) => Promise.race([c.closed, sleep(10_000).then(() => null)])),
  );
  const liveCodes = closes.slice(0, PER_USER).map((c) => c?.code);
  const helloCodes = closes.slice(PER_USER).map((c) => c?.code);
  assert.deepEqual(
    liveCodes,
    live.map(() => 1006),
    "no pong, no close frame: dropped",
  );
  for (const code of helloCodes) assert.ok(code === 4011 || code === 1006, String(code));
  // The slots are free again.
  const again = await liveWs(gw.url, jwt);
  again.ws.close();
  await bystanderStillServed();
});
