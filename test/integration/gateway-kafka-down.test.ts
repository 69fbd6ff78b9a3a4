/**
 * Kafka stops under a live gateway: sends get error acks (never a false ack), the gateway
 * stays up, nothing acknowledged is lost when Kafka returns, and sending recovers by itself.
 * Uses its own Kafka (this test stops it), on fixed ports so it can come back.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createKafka } from "../../common/kafka/kafkajs.ts";
import { tryDecodeDelivery } from "../../schemas/codec.ts";
import { topicNames } from "../../schemas/topics.ts";
import { freePort, startLocalKafka, type LocalKafka } from "../../infra/kafka/local-kafka.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testLogger } from "../helpers/kafka.ts";
import { connectUser, token, type TestClient } from "../helpers/ws-client.ts";

const dataDir = mkdtempSync(join(tmpdir(), "rt-kafka-down-"));
let ports: { port: number; controllerPort: number };
let kafka: LocalKafka;
let gw: GatewayProc;
const prefix = "down.";

async function startKafka(): Promise<LocalKafka> {
  return startLocalKafka({ ...ports, dataDir, nodes: 1, logger: testLogger() });
}

before(async () => {
  ports = { port: await freePort(), controllerPort: await freePort() };
  kafka = await startKafka();
  gw = await startGatewayProc(gatewayEnv(kafka.brokers, prefix, { RT_SEND_TIMEOUT_MS: "1500" }));
  await waitAllReady([gw]);
});

after(async () => {
  await gw.proc.stop("SIGTERM", 20_000);
  await kafka.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test("sends while Kafka is down get error acks, and nothing acked is lost", async () => {
  const alice = await connectUser(gw.url, await token("alice"));
  const bob = await connectUser(gw.url, await token("bob"));
  const a: TestClient = alice.client;
  // The first produce to a topic created moments ago can outlast the short send timeout
  // used here (leader election, metadata): wait until one send is acked.
  for (let i = 0; ; i++) {
    a.send({ op: "send", id: `warm${i}`, to: "user:bob", type: "t", data: null });
    const ack = await a.waitFor((f) => f.op === "ack" && f.id === `warm${i}`, 30_000);
    if (ack.ok === true) break;
    assert.ok(i < 20, "the gateway never managed a first send");
    await sleep(500);
  }
  for (let i = 0; i < 20; i++) a.send({ op: "send", id: `before${i}`, to: "user:bob", type: "t", data: i });
  const acksBefore = await a.waitForCount((f) => f.op === "ack" && String(f.id).startsWith("before"), 20);
  const okBefore = acksBefore.filter((f) => f.ok === true);
  assert.equal(okBefore.length, 20, JSON.stringify(acksBefore.filter((f) => f.ok !== true)));
  assert.equal(okBefore.length, 20);
  await bob.client.waitForCount((f) => f.op === "event" && String(f.id).startsWith("before"), 20);

  await kafka.stop();
  for (let i = 0; i < 10; i++) a.send({ op: "send", id: `during${i}`, to: "user:bob", type: "t", data: i });
  const during = await a.waitForCount((f) => f.op === "ack" && String(f.id).startsWith("during"), 10, 30_000);
  assert.ok(
    during.every((f) => f.ok === false && f.error.code === "unavailable"),
    `no false ack while Kafka is down: ${JSON.stringify(during)}`,
  );
  assert.equal((await fetch(`${gw.http}/healthz`)).status, 200, "the gateway stays up");
  assert.equal(a.isClosed, null, "the session stays open");

  kafka = await startKafka();
  // Sending recovers by itself once Kafka is back.
  const deadline = Date.now() + 90_000;
  let recovered = false;
  for (let i = 0; !recovered && Date.now() < deadline; i++) {
    a.send({ op: "send", id: `after${i}`, to: "user:bob", type: "t", data: i });
    const ack = await a.waitFor((f) => f.op === "ack" && f.id === `after${i}`, 30_000);
    recovered = ack.ok === true;
    if (!recovered) await sleep(500);
  }
  assert.ok(recovered, "sends are acked again after Kafka returns");

  // Every acknowledged send is in the log.
  const acked = new Set(a.frames.filter((f) => f.op === "ack" && f.ok === true).map((f) => f.id as string));
  const k = createKafka({ brokers: kafka.brokers, clientId: "verify", logger: testLogger() });
  const consumer = k.consumer({
    groupId: `verify-${Date.now()}`,
    topics: [topicNames(prefix).deliveries],
    fromBeginning: true,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
    autoCommit: false,
  });
  const inLog = new Set<string>();
  await consumer.run({
    eachBatch: async (batch) => {
      for (const r of batch.records) {
        const d = r.value === null ? null : tryDecodeDelivery(r.value);
        if (d?.ok) inLog.add(d.delivery.id);
      }
    },
  });
  const until = Date.now() + 30_000;
  while ([...acked].some((id) => !inLog.has(id)) && Date.now() < until) await sleep(200);
  await consumer.close();
  const missing = [...acked].filter((id) => !inLog.has(id));
  assert.deepEqual(missing, [], "every acked send is in Kafka");
  a.close();
  bob.client.close();
});
