/**
 * Kafka faults under a live gateway process, on a Kafka of this test's own (it is stopped and
 * stalled here) reached only through a TCP proxy on loopback (the broker advertises the proxy's
 * port), with real clients: a sender sending steadily and a recipient that resumes with its cursor
 * whenever its socket closes.
 *
 * 1. The broker is stopped and started again, twice (once killed, once shut down cleanly).
 * 2. The gateway is killed (SIGKILL), twice, and a new one started.
 * 3. The network to the broker stalls: the proxy stops moving bytes, then moves them again.
 * 4. The deliveries topic is deleted and created again with the same partition count.
 *
 * In 1 and 3 the gateway stays up (/healthz 200), reports not ready (/readyz 503) while Kafka
 * cannot serve it, and is ready again by itself afterwards. In every case no ack is false (each
 * send acked ok is in Kafka afterwards) and no acked send is lost (the recipient gets each one).
 * In 4 the gateway restarts itself in the same process on the same port with a new epoch, and a
 * client resuming with a cursor of the old topic gets `recovered: false` (`epoch_changed`).
 */
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createKafka } from "../../common/kafka/kafkajs.ts";
import type { Admin } from "../../common/kafka/kafka.ts";
import { freePort, startLocalKafka, type LocalKafka } from "../../infra/kafka/local-kafka.ts";
import { tryDecodeDelivery } from "../../schemas/codec.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";
import { ensureTopics } from "../../common/kafka/ensure-topics.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testLogger } from "../helpers/kafka.ts";
import { recordMeasurements } from "../helpers/reliability.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { Recipient, Sender } from "../helpers/traffic.ts";
import { token } from "../helpers/ws-client.ts";

const PARTITIONS = 4;
const dataDir = mkdtempSync(join(tmpdir(), "rt-kafka-faults-"));
const prefix = `kf${randomBytes(3).toString("hex")}.`;
const topics = readTopicsConfig({ RT_TOPIC_PREFIX: prefix, RT_DELIVERIES_PARTITIONS: String(PARTITIONS) });
const deliveries = topics.names.deliveries;
const recipientUser = `recipient-${prefix}`;
const senderUser = `sender-${prefix}`;
let proxy: TcpProxy | undefined;
let kafka: LocalKafka | undefined;
let admin: Admin | undefined;
let gw: GatewayProc | undefined;
let env: Record<string, string>;
let recipient: Recipient | undefined;
const senders: Sender[] = [];
/** What this run measured (scripts/reliability-report.ts); a scenario that did not run records nothing. */
const measured: Record<string, number> = {};
const add = (key: string, n: number) => (measured[key] = (measured[key] ?? 0) + n);

const url = () => gw!.url;

before(async () => {
  const brokerPort = await freePort();
  proxy = await startTcpProxy({ upstreamPort: brokerPort });
  kafka = await startLocalKafka({
    port: brokerPort,
    controllerPort: await freePort(),
    advertisedPort: proxy.port,
    dataDir,
    nodes: 1,
    heapMb: 384,
    logger: testLogger(),
  });
  admin = await createKafka({
    brokers: kafka.brokers,
    clientId: "kafka-faults",
    logger: testLogger(),
  }).admin();
  env = gatewayEnv(kafka.brokers, prefix, {
    RT_DELIVERIES_PARTITIONS: String(PARTITIONS),
    RT_ROOM_PARTITIONS: "1",
    RT_CHANNELS_PARTITIONS: "1",
    // A port of its own, not 0: a gateway restarting in its process listens on it again, which
    // the kernel allows only if the first listen asked for that port too (SO_REUSEADDR).
    RT_GATEWAY_PORT: String(await freePort()),
    RT_SEND_TIMEOUT_MS: "2000",
    RT_KAFKA_PROBE_INTERVAL_MS: "500",
    RT_LOG_LEVEL: process.env.RT_TEST_LOG_LEVEL ?? "info",
  });
  gw = await startGatewayProc(env);
  await waitAllReady([gw]);
  recipient = new Recipient(await token(recipientUser, { ttlS: 3600 }), url);
});

after(async () => {
  recordMeasurements("kafka-faults", measured);
  for (const s of senders) s.close();
  await recipient?.stop();
  await gw?.proc.stop("SIGTERM", 20_000);
  await admin?.close().catch(() => {});
  await kafka?.stop();
  await proxy?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function readyz(): Promise<{ status: number; reason?: string }> {
  try {
    const res = await fetch(`${gw!.http}/readyz`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { reason?: string };
    return { status: res.status, ...(body.reason === undefined ? {} : { reason: body.reason }) };
  } catch {
    return { status: 0 };
  }
}

/** Polls /readyz until it answers `status`; returns the last answer. */
async function waitReadyz(status: number, timeoutMs: number): Promise<{ status: number; reason?: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await readyz();
    if (r.status === status) return r;
    if (Date.now() > deadline)
      throw new Error(`/readyz did not answer ${status} in ${timeoutMs} ms: ${JSON.stringify(r)}`);
    await sleep(100);
  }
}

/** The gateway's warnings and errors, for failure messages. */
function gatewayLog(): string {
  return gw!.proc
    .output()
    .split("\n")
    .filter((l) => !/"level":(10|20|30)\b/.test(l))
    .slice(-40)
    .join("\n");
}

async function stillUp(what: string): Promise<void> {
  const res = await fetch(`${gw!.http}/healthz`);
  assert.equal(res.status, 200, `${what}: the gateway stays up`);
  assert.equal(gw!.proc.child.exitCode, null, `${what}: the gateway process is running`);
}

/** Starts a sender and waits for its first ok ack (a topic created moments ago can be slow). */
async function startSender(label: string): Promise<Sender> {
  const s = new Sender(await token(senderUser, { ttlS: 3600 }), url, recipientUser, label);
  senders.push(s);
  s.start(25);
  await waitForOk(s, 1, 60_000);
  return s;
}

async function waitForOk(s: Sender, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (s.okIds().length < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} ok acks in ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Delivery ids in the deliveries topic, read from the beginning until `want` are all there. */
async function idsInKafka(want: readonly string[], timeoutMs: number): Promise<Set<string>> {
  const k = createKafka({ brokers: kafka!.brokers, clientId: "verify", logger: testLogger() });
  const consumer = k.consumer({
    groupId: `verify-${randomBytes(4).toString("hex")}`,
    topics: [deliveries],
    fromBeginning: true,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
    autoCommit: false,
  });
  const seen = new Set<string>();
  await consumer.run({
    eachBatch: async (batch) => {
      for (const r of batch.records) {
        const d = r.value === null ? null : tryDecodeDelivery(r.value);
        if (d?.ok) seen.add(d.delivery.id);
      }
    },
  });
  const deadline = Date.now() + timeoutMs;
  while (want.some((id) => !seen.has(id)) && Date.now() < deadline) await sleep(200);
  await consumer.close();
  return seen;
}

/**
 * Every send acked ok is in Kafka (no false ack) and reached the recipient (none lost). The counts
 * are recorded under `key` (`<key>Acked`, `<key>Lost`) before anything is asserted.
 */
async function verify(t: TestContext, what: string, s: Sender, key?: string): Promise<void> {
  await s.stop();
  const acks = s.acks();
  const acked = s.okIds();
  const errors = [...acks.values()].filter((f) => f.ok === false);
  const codes = [...new Set(errors.map((f) => f.error.code as string))].join(",");
  t.diagnostic(`${what}: ${acked.length} acked ok, ${errors.length} error acks (${codes})`);
  const inKafka = await idsInKafka(acked, 60_000);
  const falseAcks = acked.filter((id) => !inKafka.has(id));
  add("falseAcks", falseAcks.length);
  add("ackedChecked", acked.length);
  const lost = await recipient!.waitFor(acked, 60_000);
  if (key !== undefined) {
    add(`${key}Acked`, acked.length);
    add(`${key}Lost`, lost.length);
  }
  s.close();
  assert.deepEqual(falseAcks, [], `${what}: acked but not in Kafka`);
  assert.deepEqual(lost, [], `${what}: acked but never delivered`);
}

test("the broker stopped and started again under load, twice: not ready meanwhile, no false ack, nothing lost", async (t) => {
  const s = await startSender("broker");
  for (const how of ["crash", "clean"] as const) {
    await sleep(1_000);
    const okBefore = s.okIds().length;
    await kafka!.stopNode(1, how);
    const down = await waitReadyz(503, 30_000);
    assert.match(down.reason ?? "", /Kafka unreachable|no leader|does not exist/);
    t.diagnostic(`broker stopped (${how}): /readyz 503 "${down.reason}"`);
    await sleep(2_500);
    await stillUp(`broker down (${how})`);
    await kafka!.startNode(1);
    await waitReadyz(200, 90_000);
    // Sending recovers by itself.
    await waitForOk(s, okBefore + 20, 90_000);
    add("brokerRestarts", 1);
  }
  await verify(t, "broker restarts", s, "brokerRestart");
  const errors = [...s.acks().values()].filter((f) => f.ok === false);
  assert.ok(errors.length > 0, "sends while the broker was down got error acks");
  assert.ok(
    errors.every((f) => f.error.code === "unavailable"),
    JSON.stringify(errors.find((f) => f.error.code !== "unavailable")),
  );
});

test("the gateway killed (SIGKILL) under load, twice, and started again: no false ack, nothing lost", async (t) => {
  const s = await startSender("gwkill");
  for (let i = 0; i < 2; i++) {
    await sleep(1_500);
    await gw!.proc.stop("SIGKILL");
    gw = await startGatewayProc({ ...env, RT_GATEWAY_PORT: String(await freePort()) });
    await waitAllReady([gw], 60_000);
    const okBefore = s.okIds().length;
    await waitForOk(s, okBefore + 20, 60_000);
    add("gatewayKills", 1);
  }
  await verify(t, "gateway kills", s, "gatewayKill");
});

test("the network to the broker stalls and comes back: not ready meanwhile, no false ack, nothing lost", async (t) => {
  const s = await startSender("stall");
  await sleep(1_000);
  proxy!.pause();
  try {
    const down = await waitReadyz(503, 30_000);
    assert.match(down.reason ?? "", /Kafka unreachable/);
    t.diagnostic(`network stalled: /readyz 503 "${down.reason}"`);
    // Longer than the send timeout: sends meanwhile get error acks, not silence.
    await sleep(3_000);
    await stillUp("network stalled");
  } finally {
    proxy!.resume();
  }
  const okBefore = s.okIds().length;
  await waitReadyz(200, 90_000);
  await waitForOk(s, okBefore + 20, 90_000);
  add("networkStalls", 1);
  await verify(t, "network stall", s, "networkStall");
});

test("the deliveries topic deleted and created again with the same partition count: new epoch, recovered: false", async (t) => {
  // The recipient holds a cursor of the topic as it is.
  const first = await startSender("original");
  await waitForOk(first, 5, 60_000);
  await verify(t, "before recreation", first);
  const before = recipient!.cursor;
  assert.ok(before !== undefined, "the recipient holds a cursor");
  const oldEpoch = before.split(":")[0]!;
  const sessionsBefore = recipient!.sessions;
  const pid = gw!.proc.child.pid;
  await admin!.deleteTopics([deliveries]);
  const spec = topicSpecs(topics).find((x) => x.name === deliveries)!;
  for (let i = 0; ; i++) {
    try {
      const [outcome] = await admin!.ensureTopics([spec]);
      if (outcome?.action === "created") break;
    } catch (e) {
      // The deletion may not have finished yet.
      if (i > 100) throw e;
    }
    await sleep(200);
  }
  add("topicRecreations", 1);
  // The gateway notices, drains (sessions closed with restart), and starts again on the same port.
  const deadline = Date.now() + 60_000;
  while (!recipient!.welcomes.slice(sessionsBefore).some((w) => w.reason === "epoch_changed")) {
    assert.ok(
      Date.now() < deadline,
      `no epoch_changed welcome: ${JSON.stringify(recipient!.welcomes.slice(sessionsBefore))}\n${gatewayLog()}`,
    );
    await sleep(100);
  }
  const welcome = recipient!.welcomes.slice(sessionsBefore).find((w) => w.reason === "epoch_changed")!;
  assert.equal(welcome.recovered, false);
  const newEpoch = String(welcome.cursor).split(":")[0]!;
  assert.notEqual(newEpoch, oldEpoch, "a new epoch");
  assert.equal(newEpoch.split("t")[0], oldEpoch.split("t")[0], "the same partition count");
  add(
    "topicRecreationNotRecovered",
    recipient!.welcomes.slice(sessionsBefore).filter((w) => w.reason === "epoch_changed").length,
  );
  assert.ok(
    recipient!.closes.some((c) => c.code === 4005),
    `sessions were closed with restart: ${JSON.stringify(recipient!.closes)}`,
  );
  assert.equal(gw!.proc.child.pid, pid);
  assert.equal(gw!.proc.child.exitCode, null, "the same process");
  await waitReadyz(200, 60_000);
  t.diagnostic(`epoch ${oldEpoch} -> ${newEpoch}`);
  // Sends are acked with cursors of the new epoch and delivered.
  const s = await startSender("recreated");
  await waitForOk(s, 20, 60_000);
  await verify(t, "after recreation", s);
  for (const f of s.acks().values()) {
    if (f.ok === true) assert.equal(String(f.cursor).split(":")[0], newEpoch);
  }
});

test("a send whose answer was lost, then a send of other records: the broker never takes them for a duplicate", async () => {
  // The broker writes a batch but its answer is lost; KafkaJS then rolls its sequence numbers
  // back. A producer that went on with them would send the next batch (one record, like the lost
  // one) under the same sequence, and the broker would acknowledge it as a duplicate without
  // writing it: a false ack.
  const topic = `${prefix}producer-retire`;
  await ensureTopics(admin!, [{ name: topic, partitions: 1, replicationFactor: 1, config: {} }]);
  const producer = await createKafka({
    brokers: kafka!.brokers,
    clientId: "producer-retire",
    logger: testLogger(),
    requestTimeoutMs: 1_000,
    retries: 1,
  }).producer();
  const record = (value: string) => ({ key: "k", value: Buffer.from(value), partition: 0 });
  try {
    const [a] = await producer.send(topic, [record("A")]);
    proxy!.dropReplies(true);
    await assert.rejects(producer.send(topic, [record("B")]), "B's answer never came");
    proxy!.dropReplies(false);
    proxy!.cut();
    const [c] = await producer.send(topic, [record("C")]);
    assert.ok(BigInt(c!.offset) > BigInt(a!.offset), `C acked at ${c!.offset}, A at ${a!.offset}`);
    const written = await valuesIn(topic, BigInt(c!.offset) + 1n, 30_000);
    assert.equal(
      written.get(c!.offset),
      "C",
      `the record at C's acked offset: ${JSON.stringify([...written])}`,
    );
    assert.ok([...written.values()].includes("B"), "B was written although its send failed (at least once)");
  } finally {
    proxy!.dropReplies(false);
    await producer.close();
  }
});

/** offset -> value of `topic` partition 0, read from the start until `until` records are there. */
async function valuesIn(topic: string, until: bigint, timeoutMs: number): Promise<Map<string, string>> {
  const k = createKafka({ brokers: kafka!.brokers, clientId: "verify", logger: testLogger() });
  const consumer = k.consumer({
    groupId: `verify-${randomBytes(4).toString("hex")}`,
    topics: [topic],
    fromBeginning: true,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
    autoCommit: false,
  });
  const seen = new Map<string, string>();
  await consumer.run({
    eachBatch: async (batch) => {
      for (const r of batch.records) seen.set(r.offset, r.value?.toString() ?? "");
    },
  });
  const deadline = Date.now() + timeoutMs;
  while (BigInt(seen.size) < until && Date.now() < deadline) await sleep(100);
  await consumer.close();
  return seen;
}
