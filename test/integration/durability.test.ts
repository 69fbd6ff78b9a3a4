/**
 * Durability on a real three-broker Kafka (KRaft, replication factor 3, min.insync.replicas=2,
 * unclean leader election off), started here on free ports, with two real gateway processes
 * and real WebSocket clients holding real signed tokens:
 *
 * 1. One broker (the leader of the recipient's partition) is killed (SIGKILL) while a sender
 *    sends steadily: every acknowledged send reaches the recipient, and sends are acknowledged
 *    again once Kafka has moved the leadership.
 * 2. Two brokers are killed at once: sends get error acks, never a false ack; when one broker
 *    returns, sends are acknowledged again, and every send ever acknowledged reaches the
 *    recipient.
 *
 * The recipient reconnects with its cursor whenever its socket closes (a broker loss can make
 * the gateways' group rebalance), as a real client would.
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
import { startLocalKafka, type LocalKafka } from "../../infra/kafka/local-kafka.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { topicNames } from "../../schemas/topics.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testLogger } from "../helpers/kafka.ts";
import { connectUser, token, type Frame, type TestClient } from "../helpers/ws-client.ts";

const PARTITIONS = 4;
const SEND_TIMEOUT_MS = 4_000;
const dataDir = mkdtempSync(join(tmpdir(), "rt-durability-"));
const prefix = `dur${randomBytes(3).toString("hex")}.`;
const deliveries = topicNames(prefix).deliveries;
const sender = `sender-${prefix}`;
const recipient = `recipient-${prefix}`;
let kafka: LocalKafka;
let admin: Admin;
const gateways: GatewayProc[] = [];
let inbox: Inbox;
let outbox: Outbox;

/** The recipient: stays connected, reconnecting with its cursor; collects event ids. */
class Inbox {
  readonly ids = new Set<string>();
  /** Welcomes of resumes (with a cursor) that did not say recovered: true. */
  readonly unrecovered: Frame[] = [];
  sessions = 0;
  #cursor: string | undefined;
  #stopped = false;
  #client: TestClient | null = null;
  readonly #loop: Promise<void>;
  readonly welcomed: Promise<void>;

  constructor(jwt: string, via: () => string) {
    let welcomed = () => {};
    this.welcomed = new Promise((done) => (welcomed = done));
    this.#loop = (async () => {
      while (!this.#stopped) {
        let client: TestClient;
        try {
          const r = await connectUser(via(), jwt, this.#cursor === undefined ? {} : { cursor: this.#cursor });
          client = r.client;
          if (this.#cursor !== undefined && r.welcome.recovered !== true) this.unrecovered.push(r.welcome);
        } catch {
          await sleep(300);
          continue;
        }
        this.#client = client;
        this.sessions += 1;
        welcomed();
        let seen = 0;
        const take = () => {
          for (; seen < client.frames.length; seen++) {
            const f = client.frames[seen]!;
            if (f.op !== "event") continue;
            this.ids.add(f.id as string);
            this.#cursor = f.cursor as string;
          }
        };
        while (!this.#stopped && client.isClosed === null) {
          take();
          await sleep(20);
        }
        take();
      }
    })();
  }

  async waitFor(ids: readonly string[], timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const missing = ids.filter((id) => !this.ids.has(id));
      if (missing.length === 0 || Date.now() > deadline) return missing;
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#client?.close();
    await this.#loop;
  }
}

/** The sender: numbered sends to the recipient; a closed socket is reopened for the next send. */
class Outbox {
  readonly sessions: TestClient[] = [];
  #n = 0;

  constructor(
    readonly jwt: string,
    readonly via: () => string,
  ) {}

  async #open(): Promise<TestClient> {
    const last = this.sessions[this.sessions.length - 1];
    if (last !== undefined && last.isClosed === null) return last;
    for (let i = 0; ; i++) {
      try {
        const { client } = await connectUser(this.via(), this.jwt);
        this.sessions.push(client);
        return client;
      } catch (e) {
        if (i > 100) throw e;
        await sleep(300);
      }
    }
  }

  /** Sends one event; returns its id. */
  async send(label: string): Promise<string> {
    const client = await this.#open();
    const id = `${label}-${this.#n++}`;
    client.send({ op: "send", id, to: `user:${recipient}`, type: "t", data: { id } });
    return id;
  }

  acks(): Map<string, Frame> {
    const out = new Map<string, Frame>();
    for (const c of this.sessions) for (const f of c.frames) if (f.op === "ack") out.set(f.id as string, f);
    return out;
  }

  /** Waits until each id has an ack or its socket closed (no ack: neither ok nor an error). */
  async settle(ids: readonly string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const acks = this.acks();
      const open = this.sessions[this.sessions.length - 1]?.isClosed === null;
      if (ids.every((id) => acks.has(id)) || !open) return;
      await sleep(50);
    }
  }

  close(): void {
    for (const c of this.sessions) c.close();
  }
}

async function partitionState(): Promise<{ leader: number; isr: readonly number[] }[]> {
  const [d] = await admin.describeTopics([deliveries]);
  assert.ok(d !== undefined, "the deliveries topic exists");
  return d.partitions.map((p) => ({ leader: p.leader, isr: p.isr }));
}

/** Waits until every partition of the deliveries topic has a leader and all three replicas in sync. */
async function waitFullIsr(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const state = await partitionState();
      if (state.every((p) => p.leader > 0 && p.isr.length === 3)) return;
      last = JSON.stringify(state);
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(500);
  }
  throw new Error(`partitions not fully in sync after ${timeoutMs} ms: ${last}`);
}

/** Sends one every `intervalMs` for `durationMs`; returns the ids. */
async function sendFor(label: string, durationMs: number, intervalMs: number): Promise<string[]> {
  const ids: string[] = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    ids.push(await outbox.send(label));
    await sleep(intervalMs);
  }
  return ids;
}

function okIds(ids: readonly string[]): string[] {
  const acks = outbox.acks();
  return ids.filter((id) => acks.get(id)?.ok === true);
}

before(async () => {
  kafka = await startLocalKafka({
    port: 0,
    controllerPort: 0,
    dataDir,
    nodes: 3,
    heapMb: 384,
    logger: testLogger(),
  });
  admin = await createKafka({ brokers: kafka.brokers, clientId: "durability", logger: testLogger() }).admin();
  const env = gatewayEnv(kafka.brokers, prefix, {
    RT_DELIVERIES_PARTITIONS: String(PARTITIONS),
    RT_ROOM_PARTITIONS: "2",
    RT_CHANNELS_PARTITIONS: "1",
    RT_TOPIC_REPLICATION_FACTOR: "3",
    RT_SEND_TIMEOUT_MS: String(SEND_TIMEOUT_MS),
    // Long enough to ride out a group coordinator moving to another broker.
    RT_GATEWAY_SESSION_TIMEOUT_MS: "10000",
    RT_SENDS_PER_S: "200",
  });
  gateways.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "dur-a" }));
  gateways.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "dur-b" }));
  await waitAllReady(gateways);
  await waitFullIsr(60_000);
  const [describeDeliveries] = await admin.describeTopics([deliveries]);
  assert.equal(describeDeliveries?.configs["min.insync.replicas"], "2");
  assert.equal(describeDeliveries?.configs["unclean.leader.election.enable"], "false");
  assert.ok(describeDeliveries?.partitions.every((p) => p.replicas.length === 3));
  let turn = 0;
  const via = () => gateways[turn++ % gateways.length]!.url;
  inbox = new Inbox(await token(recipient), via);
  await inbox.welcomed;
  outbox = new Outbox(await token(sender), via);
});

after(async () => {
  outbox?.close();
  await inbox?.stop();
  await Promise.all(gateways.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await admin?.close().catch(() => {});
  await kafka?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

function report(t: TestContext, what: string, ids: readonly string[]): void {
  const acks = outbox.acks();
  const ok = ids.filter((id) => acks.get(id)?.ok === true).length;
  const failed = ids.filter((id) => acks.get(id)?.ok === false);
  const codes = [...new Set(failed.map((id) => acks.get(id)?.error?.code as string))].join(",");
  const none = ids.filter((id) => !acks.has(id)).length;
  t.diagnostic(
    `${what}: ${ids.length} sent, ${ok} ok, ${failed.length} error acks (${codes}), ${none} unacked`,
  );
}

test("one broker killed under load: every acked send is delivered, and sends are acked again", async (t) => {
  const userPartition = partitionForKey(recipient, PARTITIONS);
  const leader = (await partitionState())[userPartition]!.leader;
  const before = await sendFor("one", 3_000, 40);
  await kafka.stopNode(leader, "crash");
  t.diagnostic(`killed broker ${leader}, the leader of partition ${userPartition}`);
  const killedAt = Date.now();
  const during = await sendFor("one", 15_000, 40);
  const all = [...before, ...during];
  await outbox.settle(all, SEND_TIMEOUT_MS + 5_000);
  report(t, "one broker down", all);

  assert.ok(okIds(before).length > 0, "sends were acked before the kill");
  const acks = outbox.acks();
  assert.ok(okIds(during).length > 0, "sends are acked while one broker is down");
  const last = during.slice(-5);
  assert.deepEqual(
    last.filter((id) => acks.get(id)?.ok !== true),
    [],
    `the last sends, ${Math.round((Date.now() - killedAt) / 1000)} s after the kill, are all acked`,
  );
  const [state] = await admin.describeTopics([deliveries]);
  assert.ok(
    state?.partitions.every((p) => p.leader !== leader && !p.isr.includes(leader)),
    `the dead broker leads nothing and is out of every ISR: ${JSON.stringify(state?.partitions)}`,
  );

  const missing = await inbox.waitFor(okIds(all), 30_000);
  assert.deepEqual(missing, [], "every acknowledged send reached the recipient");
  assert.deepEqual(inbox.unrecovered, [], "every resume of the recipient recovered");
  t.diagnostic(`recipient sessions so far: ${inbox.sessions}`);

  await kafka.startNode(leader);
  await waitFullIsr(90_000);
});

test("two brokers killed: error acks and never a false ack; sends recover when a broker returns", async (t) => {
  const warm = await sendFor("warm", 1_000, 50);
  await outbox.settle(warm, SEND_TIMEOUT_MS + 5_000);
  assert.ok(okIds(warm).length > 0, "sends are acked with three brokers");
  const survivor = (await partitionState())[partitionForKey(recipient, PARTITIONS)]!.leader;
  const victims = kafka.nodes.map((n) => n.id).filter((id) => id !== survivor);
  await Promise.all(victims.map((id) => kafka.stopNode(id, "crash")));
  t.diagnostic(`killed brokers ${victims.join(", ")}; broker ${survivor} (the partition's leader) is left`);

  const down = await sendFor("down", 3_000, 300);
  await outbox.settle(down, SEND_TIMEOUT_MS + 10_000);
  report(t, "two brokers down", down);
  const acks = outbox.acks();
  const falseAcks = down.filter((id) => acks.get(id)?.ok === true);
  assert.deepEqual(falseAcks, [], "no send is acknowledged while only one of three brokers is up");
  const errors = down.filter((id) => acks.get(id)?.ok === false);
  assert.ok(errors.length > 0, "sends get error acks");
  for (const id of errors) assert.equal(acks.get(id)?.error?.code, "unavailable");

  const back = victims[0]!;
  await kafka.startNode(back);
  t.diagnostic(`broker ${back} is back`);
  const deadline = Date.now() + 120_000;
  const after: string[] = [];
  let recovered = false;
  while (!recovered && Date.now() < deadline) {
    const id = await outbox.send("after");
    after.push(id);
    await outbox.settle([id], SEND_TIMEOUT_MS + 5_000);
    recovered = outbox.acks().get(id)?.ok === true;
    if (!recovered) await sleep(500);
  }
  report(t, "after one broker returned", after);
  assert.ok(recovered, "sends are acked again once two of three brokers are up");

  // Every send acknowledged in this test, and in the one before, reached the recipient.
  const everAcked = [...outbox.acks()].filter(([, f]) => f.ok === true).map(([id]) => id);
  const missing = await inbox.waitFor(everAcked, 60_000);
  assert.deepEqual(missing, [], `every acknowledged send (${everAcked.length}) reached the recipient`);
  assert.deepEqual(inbox.unrecovered, [], "every resume of the recipient recovered");
  t.diagnostic(`${everAcked.length} acknowledged sends delivered; recipient sessions: ${inbox.sessions}`);
});
