/**
 * KafkaJS 2.2.4 against the real broker, through the project's Kafka port: idempotent
 * acks=all produce, group consume, and the admin calls the services rely on.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { InRecord } from "../../common/kafka/kafka.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";

let t: TestKafka;
before(async () => {
  t = await testKafka();
});
after(async () => {
  await t.cleanup();
});

test("ensureTopics creates the design's topics once, then reports them as existing", async () => {
  const config = readTopicsConfig({ RT_TOPIC_PREFIX: t.prefix, RT_DELIVERIES_PARTITIONS: "6" });
  const specs = topicSpecs(config);
  const first = await t.admin.ensureTopics(specs);
  assert.deepEqual(
    first.map((o) => [o.topic, o.action, o.partitions]),
    specs.map((s) => [s.name, "created", s.partitions]),
  );
  const second = await t.admin.ensureTopics(specs);
  assert.deepEqual(
    second.map((o) => o.action),
    specs.map(() => "exists"),
  );
  assert.equal(await t.admin.partitionCount(config.names.deliveries), 6);

  const other = topicSpecs(readTopicsConfig({ RT_TOPIC_PREFIX: t.prefix, RT_DELIVERIES_PARTITIONS: "8" }));
  const mismatch = await t.admin.ensureTopics(other);
  assert.deepEqual(mismatch[0], {
    topic: config.names.deliveries,
    action: "mismatch",
    partitions: 6,
    expectedPartitions: 8,
  });
  assert.equal(await t.admin.partitionCount(config.names.deliveries), 6, "a mismatch never alters the topic");
});

test("idempotent producer, group consumer and offset admin calls work end to end", async () => {
  const topic = t.uniq("smoke");
  await t.admin.ensureTopics([{ name: topic, partitions: 3, replicationFactor: -1, config: {} }]);
  const producer = await t.kafka.producer();
  const before = Date.now();
  const records = Array.from({ length: 30 }, (_, i) => ({
    key: `user-${i % 3}`,
    value: Buffer.from(`m${i}`),
    partition: i % 3,
    headers: { traceparent: `00-${"a".repeat(32)}-${"b".repeat(16)}-01` },
  }));
  const positions = await producer.send(topic, records);
  assert.equal(positions.length, 30);
  // Per partition, offsets of one call are consecutive and in call order.
  for (let p = 0; p < 3; p++) {
    const offs = positions.filter((x) => x.partition === p).map((x) => Number(x.offset));
    assert.deepEqual(
      offs,
      offs.map((_, i) => i),
    );
  }

  const groupId = t.uniq("group");
  const consumer = t.kafka.consumer({
    groupId,
    topics: [topic],
    fromBeginning: true,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
    autoCommit: true,
  });
  const got: InRecord[] = [];
  let assigned: Record<string, readonly number[]> = {};
  await consumer.run({
    eachBatch: async (b) => {
      got.push(...b.records);
    },
    onAssignment: (a) => {
      assigned = { ...a };
    },
  });
  const deadline = Date.now() + 30_000;
  while (got.length < 30 && Date.now() < deadline) await sleep(100);
  assert.equal(got.length, 30);
  assert.deepEqual([...(assigned[topic] ?? [])].sort(), [0, 1, 2]);
  for (let p = 0; p < 3; p++) {
    const values = got.filter((r) => r.partition === p).map((r) => r.value?.toString());
    assert.deepEqual(
      values,
      records.filter((r) => r.partition === p).map((r) => r.value.toString()),
    );
  }
  assert.equal(got[0]?.headers.traceparent, records[0]?.headers.traceparent);

  const group = await t.admin.describeGroup(groupId);
  assert.equal(group.state, "Stable");
  assert.equal(group.members.length, 1);
  await consumer.close();
  await consumer.close();

  const offsets = await t.admin.partitionOffsets(topic);
  assert.deepEqual(
    offsets.map((o) => [o.partition, o.low, o.high]),
    [
      [0, "0", "10"],
      [1, "0", "10"],
      [2, "0", "10"],
    ],
  );
  const fromStart = await t.admin.offsetsForTime(topic, before - 60_000);
  assert.deepEqual(
    fromStart.map((o) => o.offset),
    ["0", "0", "0"],
  );
  const fromFuture = await t.admin.offsetsForTime(topic, Date.now() + 60_000);
  assert.deepEqual(
    fromFuture.map((o) => o.offset),
    ["10", "10", "10"],
  );
  await producer.close();
  await producer.close();
});
