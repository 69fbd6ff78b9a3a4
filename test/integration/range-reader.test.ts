/**
 * The range reader (common/kafka/kafkajs-range.ts) against real Kafka: exact ranges, each offset
 * once, ranges that end on transaction markers or aborted records (the router writes with
 * transactions) finish instead of waiting forever, and a failing handler or an abort stops it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Kafka as KafkaJs, logLevel } from "kafkajs";
import type { InRecord } from "../../common/kafka/kafka.ts";
import { createRangeReader } from "../../common/kafka/kafkajs-range.ts";
import { testKafka, testLogger, type TestKafka } from "../helpers/kafka.ts";

let t: TestKafka;
let topic: string;
const reader = () => createRangeReader({ brokers: t.brokers, clientId: "range-test", logger: testLogger() });

before(async () => {
  t = await testKafka();
  topic = t.uniq("range");
  await t.admin.ensureTopics([{ name: topic, partitions: 2, replicationFactor: -1, config: {} }]);
});
after(async () => {
  await t.cleanup();
});

async function readAll(from: string[], to: string[]): Promise<InRecord[]> {
  const out: InRecord[] = [];
  const done: number[] = [];
  const r = await reader().read(
    topic,
    [0, 1].map((p) => ({ partition: p, from: from[p]!, to: to[p]! })),
    { eachBatch: async (b) => void out.push(...b.records), onPartitionDone: (p) => done.push(p) },
  );
  assert.equal(r.aborted, false);
  assert.deepEqual(done.sort(), [0, 1]);
  return out;
}

test("exact ranges, each offset once, in offset order per partition", async () => {
  const producer = await t.kafka.producer();
  try {
    await producer.send(
      topic,
      Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition: i % 2 })),
    );
  } finally {
    await producer.close();
  }
  const all = await readAll(["0", "0"], ["20", "20"]);
  assert.equal(all.length, 40);
  const some = await readAll(["3", "19"], ["7", "20"]);
  assert.deepEqual(some.map((r) => `${r.partition}:${r.offset}`).sort(), [
    "0:3",
    "0:4",
    "0:5",
    "0:6",
    "1:19",
  ]);
  assert.deepEqual(await readAll(["5", "20"], ["5", "20"]), [], "empty ranges end at once");
});

test("a range that ends on aborted records and transaction markers finishes", async () => {
  const kafka = new KafkaJs({ brokers: t.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({
    transactionalId: t.uniq("tx"),
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    const committed = await producer.transaction();
    await committed.send({
      topic,
      messages: [
        { value: "c0", partition: 0 },
        { value: "c1", partition: 1 },
      ],
    });
    await committed.commit();
    const aborted = await producer.transaction();
    await aborted.send({
      topic,
      messages: [
        { value: "a0", partition: 0 },
        { value: "a1", partition: 1 },
      ],
    });
    await aborted.abort();
  } finally {
    await producer.disconnect();
  }
  const offsets = await t.admin.partitionOffsets(topic);
  const started = Date.now();
  const read = await readAll(
    ["20", "20"],
    offsets.map((o) => o.high),
  );
  assert.deepEqual(
    read.map((r) => r.value?.toString()).sort(),
    ["c0", "c1"],
    "read-committed, markers skipped",
  );
  assert.ok(Date.now() - started < 4_000, "done by the markers, not by the idle timeout");
});

test("a failing handler stops the read with its error; an abort stops it too", async () => {
  const boom = new Error("disk full");
  await assert.rejects(
    reader().read(topic, [{ partition: 0, from: "0", to: "20" }], {
      eachBatch: async () => {
        throw boom;
      },
    }),
    (e: unknown) => e === boom,
  );
  const abort = new AbortController();
  const r = await reader().read(
    topic,
    [{ partition: 0, from: "0", to: "1000000" }],
    {
      eachBatch: async () => {
        abort.abort();
      },
    },
    { signal: abort.signal },
  );
  assert.equal(r.aborted, true);
});
