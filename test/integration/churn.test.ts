/**
 * Churn: Kafka, a router and three gateway processes; a few hundred reference clients
 * exchange numbered messages while one gateway is drained (SIGTERM), one is killed
 * (SIGKILL) and a new one starts. Every acknowledged message reaches its recipient, in order
 * per sender after dedupe; every affected client resumes with `recovered: true`. The
 * schedule comes from a printed seed (RT_TEST_SEED replays it).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { RealtimeClient, type WebSocketCtor } from "../../client/index.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { routerEnv, startRouterProc, type RouterProc } from "../helpers/router-proc.ts";
import { token } from "../helpers/ws-client.ts";

const CLIENTS = 150;
const SEND_EVERY_MS = 400;
const RUN_MS = 20_000;

let t: TestKafka;
let router: RouterProc;
const gateways: GatewayProc[] = [];
const clients: RealtimeClient[] = [];

function rng(seed: number): () => number {
  // mulberry32: small, seedable, good enough for a schedule.
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const env = () =>
  gatewayEnv(t.brokers, t.prefix, {
    RT_SENDS_PER_S: "1000",
    RT_GATEWAY_SESSION_TIMEOUT_MS: "3000",
    RT_RECONNECT_HINT_MAX_MS: "1000",
    RT_DELIVERIES_PARTITIONS: "12",
  });

before(async () => {
  t = await testKafka();
  for (let i = 0; i < 3; i++)
    gateways.push(await startGatewayProc({ ...env(), RT_GATEWAY_NODE_ID: `churn-${i}` }));
  await waitAllReady(gateways);
  router = await startRouterProc(routerEnv(t.brokers, t.prefix, { RT_DELIVERIES_PARTITIONS: "12" }));
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all([
    ...gateways.map((g) => g.proc.stop("SIGTERM", 20_000)),
    router?.proc.stop("SIGTERM", 10_000),
  ]);
  await t.cleanup();
});

test("no acknowledged message is lost while gateways are drained, killed and added", async () => {
  const seed = Number(process.env.RT_TEST_SEED ?? Date.now());
  console.log(`# churn seed: ${seed}`);
  const random = rng(seed);
  const users = Array.from({ length: CLIENTS }, (_, i) => `churn-${t.prefix}${i}`);
  const received = new Map<string, { from: string; seq: number }[]>(users.map((u) => [u, []]));
  const acked = new Map<string, number[]>(); // "from>to" -> acked sequence numbers
  const reconnects: number[] = [];
  let notRecovered = 0;
  let welcomes = 0;

  for (const user of users) {
    const c = new RealtimeClient({
      routerUrl: router.url,
      token: () => token(user),
      WebSocket: WebSocket as unknown as WebSocketCtor,
      backoff: { baseMs: 200, capMs: 2_000 },
      random,
    });
    let droppedAt: number | null = null;
    c.on("event", (e) => {
      const d = e.data as { seq: number };
      received.get(user)!.push({ from: e.from, seq: d.seq });
    });
    c.on("state", (s) => {
      if (s === "reconnecting" && droppedAt === null) droppedAt = Date.now();
    });
    c.on("welcome", (w) => {
      welcomes += 1;
      if (droppedAt !== null) {
        reconnects.push(Date.now() - droppedAt);
        droppedAt = null;
        if (!w.recovered) notRecovered += 1;
      }
    });
    clients.push(c);
  }
  await Promise.all(clients.map((c) => c.connect()));

  // Each client sends numbered messages to the next one.
  let sending = true;
  const senders = clients.map(async (c, i) => {
    const to = users[(i + 1) % CLIENTS]!;
    const key = `${users[i]}>${to}`;
    acked.set(key, []);
    await sleep(random() * SEND_EVERY_MS);
    for (let seq = 0; sending; seq++) {
      c.send(`user:${to}`, "churn", { seq }).then(
        () => acked.get(key)!.push(seq),
        () => {},
      );
      await sleep(SEND_EVERY_MS);
    }
  });

  const at = (ms: number) => sleep(ms);
  const start = Date.now();
  await at(3_000 + random() * 2_000);
  console.log(`# ${Date.now() - start} ms: SIGTERM ${gateways[0]!.url}`);
  const drained = gateways.shift()!;
  assert.equal(await drained.proc.stop("SIGTERM", 30_000), 0);
  await at(2_000 + random() * 2_000);
  console.log(`# ${Date.now() - start} ms: SIGKILL ${gateways[0]!.url}`);
  const killed = gateways.shift()!;
  await killed.proc.stop("SIGKILL");
  await at(1_000 + random() * 2_000);
  gateways.push(await startGatewayProc({ ...env(), RT_GATEWAY_NODE_ID: "churn-new" }));
  console.log(`# ${Date.now() - start} ms: started ${gateways[gateways.length - 1]!.url}`);
  await sleep(Math.max(0, RUN_MS - (Date.now() - start)));
  sending = false;
  await Promise.all(senders);

  // Every acked message arrives (clients deliver each cursor once; resends may repeat an id).
  const deadline = Date.now() + 60_000;
  const missing = () => {
    const out: string[] = [];
    for (const [key, seqs] of acked) {
      const [from, to] = key.split(">") as [string, string];
      const got = new Set(
        received
          .get(to)!
          .filter((r) => r.from === from)
          .map((r) => r.seq),
      );
      for (const s of seqs) if (!got.has(s)) out.push(`${key}#${s}`);
    }
    return out;
  };
  while (missing().length > 0 && Date.now() < deadline) await sleep(250);
  const totalAcked = [...acked.values()].reduce((n, s) => n + s.length, 0);
  reconnects.sort((a, b) => a - b);
  const pct = (q: number) => reconnects[Math.min(reconnects.length - 1, Math.floor(q * reconnects.length))];
  console.log(
    `# acked ${totalAcked}, reconnects ${reconnects.length}, reconnect-to-welcome ms p50 ${pct(0.5)} p99 ${pct(0.99)} max ${reconnects.at(-1)}`,
  );
  assert.deepEqual(missing().slice(0, 20), [], "every acked message was delivered");
  assert.ok(totalAcked > CLIENTS * 10, `traffic flowed (${totalAcked} acked)`);
  assert.ok(reconnects.length > 0, "gateways going away made clients reconnect");
  assert.equal(notRecovered, 0, "every reconnecting client resumed with recovered: true");
  assert.ok(welcomes >= CLIENTS + reconnects.length);

  // In order per sender once repeats of the same message are dropped.
  for (const [to, got] of received) {
    const bySender = new Map<string, number>();
    for (const r of got) {
      const last = bySender.get(r.from) ?? -1;
      if (r.seq === last) continue;
      assert.ok(r.seq > last, `${to} got ${r.from}#${r.seq} after #${last}`);
      bySender.set(r.from, r.seq);
    }
  }
});
