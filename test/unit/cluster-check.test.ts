/**
 * The start-up cluster check (common/kafka/cluster-check.ts) on facts made here: a healthy
 * three-broker cluster and a one-broker dev Kafka pass clean; each misconfiguration yields its
 * finding with the severity of the table, naming the topic and the fix; the I/O shell refuses
 * with one message naming every error, and only logs warnings.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CLUSTER_CHECKS,
  checkCluster,
  runClusterCheck,
  type ClusterExpectations,
  type ClusterFacts,
} from "../../common/kafka/cluster-check.ts";
import { KafkaError } from "../../common/kafka/errors.ts";
import type { Admin, TopicDescription } from "../../common/kafka/kafka.ts";
import { createLogger } from "../../common/log.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";

const topics = readTopicsConfig({ RT_DELIVERIES_PARTITIONS: "6", RT_ROOM_PARTITIONS: "4" });
const specs = topicSpecs(topics);
const { names } = topics;

function describe(
  rf: number,
  overrides: Partial<Record<string, Record<string, string>>> = {},
  brokers = [1, 2, 3],
): TopicDescription[] {
  return specs.map((s) => ({
    topic: s.name,
    partitions: Array.from({ length: s.partitions }, (_, p) => {
      const replicas = Array.from({ length: rf }, (_, i) => brokers[(p + i) % brokers.length]!);
      return { partition: p, leader: replicas[0]!, replicas, isr: replicas };
    }),
    configs: {
      "min.insync.replicas": rf >= 3 ? "2" : "1",
      "unclean.leader.election.enable": "false",
      "max.message.bytes": "1048588",
      ...s.config,
      ...overrides[s.name],
    },
  }));
}

function healthy(): ClusterFacts {
  return {
    brokers: [1, 2, 3],
    topics: describe(3),
    brokerConfigs: { "group.min.session.timeout.ms": "6000", "group.max.session.timeout.ms": "1800000" },
    groupMembers: 2,
  };
}

const gateway: ClusterExpectations = {
  specs,
  replicationFactor: 3,
  deliveriesTopic: names.deliveries,
  joiningGroup: true,
  sessionTimeoutMs: 10_000,
  maxBatchBytes: 524_288,
  resumeMaxAgeMs: 24 * 3_600_000,
};

const codes = (facts: ClusterFacts, expect = gateway) => checkCluster(facts, expect).map((f) => f.code);

test("a healthy three-broker cluster (RF 3, min ISR 2) and a one-broker dev Kafka pass clean", () => {
  assert.deepEqual(checkCluster(healthy(), gateway), []);
  const dev: ClusterFacts = {
    brokers: [1],
    topics: describe(1, {}, [1]),
    brokerConfigs: { "group.min.session.timeout.ms": "1000", "group.max.session.timeout.ms": "1800000" },
    groupMembers: 0,
  };
  assert.deepEqual(checkCluster(dev, { ...gateway, replicationFactor: -1 }), []);
});

test("every finding's severity is the table's", () => {
  const facts: ClusterFacts = {
    brokers: [1, 2],
    topics: describe(3, {
      [names.deliveries]: {
        "cleanup.policy": "compact",
        "max.message.bytes": "1000",
        "retention.ms": "60000",
      },
      [names.roomMembers]: { "cleanup.policy": "delete", "unclean.leader.election.enable": "true" },
    }),
    brokerConfigs: { "group.min.session.timeout.ms": "20000" },
    groupMembers: 9,
  };
  const found = checkCluster(facts, gateway);
  assert.ok(found.length >= 7, JSON.stringify(found));
  for (const f of found) assert.equal(f.severity, CLUSTER_CHECKS[f.code], f.code);
});

const cases: {
  name: string;
  facts: () => ClusterFacts;
  expect?: ClusterExpectations;
  code: keyof typeof CLUSTER_CHECKS;
  topic?: string;
  message: RegExp;
}[] = [
  {
    name: "deliveries compacted",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "cleanup.policy": "compact" } }),
    }),
    code: "cleanup_policy",
    topic: names.deliveries,
    message: /cleanup\.policy=compact, it must be delete.*--add-config cleanup\.policy=delete/,
  },
  {
    name: "deliveries compact,delete",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "cleanup.policy": "compact,delete" } }),
    }),
    code: "cleanup_policy",
    topic: names.deliveries,
    message: /must be delete/,
  },
  {
    name: "room members not compacted",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.roomMembers]: { "cleanup.policy": "delete" } }),
    }),
    code: "cleanup_policy",
    topic: names.roomMembers,
    message: /rt\.room-members has cleanup\.policy=delete, it must be compact/,
  },
  {
    name: "fewer replicas than min ISR",
    facts: () => ({
      ...healthy(),
      topics: describe(1, { [names.channels]: { "min.insync.replicas": "2" } }),
    }),
    expect: { ...gateway, replicationFactor: -1 },
    code: "replication_below_min_isr",
    topic: names.channels,
    message: /1 replica\(s\) per partition but min\.insync\.replicas=2: every send/,
  },
  {
    name: "unclean leader election",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "unclean.leader.election.enable": "true" } }),
    }),
    code: "unclean_leader_election",
    topic: names.deliveries,
    message: /unclean\.leader\.election\.enable=true/,
  },
  {
    name: "batches larger than the topic accepts",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "max.message.bytes": "100000" } }),
    }),
    code: "message_too_large",
    message: /max\.message\.bytes=100000, below RT_PRODUCE_MAX_BATCH_BYTES=524288/,
  },
  {
    name: "session timeout below the brokers' minimum",
    facts: () => ({ ...healthy(), brokerConfigs: { "group.min.session.timeout.ms": "6000" } }),
    expect: { ...gateway, sessionTimeoutMs: 3000 },
    code: "session_timeout_out_of_range",
    message: /RT_GATEWAY_SESSION_TIMEOUT_MS=3000 is outside .*group\.min\.session\.timeout\.ms=6000/,
  },
  {
    name: "fewer brokers than replicas",
    facts: () => ({ ...healthy(), brokers: [1, 2] }),
    code: "brokers_missing",
    topic: names.deliveries,
    message: /replicas on broker\(s\) 3, which the cluster does not list \(its brokers: 1, 2\)/,
  },
  {
    name: "one in-sync replica left under min ISR 2",
    facts: () => {
      const f = healthy();
      const t = f.topics.map((d) =>
        d.topic === names.deliveries
          ? { ...d, partitions: d.partitions.map((p) => ({ ...p, isr: [p.leader] })) }
          : d,
      );
      return { ...f, topics: t };
    },
    code: "below_min_isr_now",
    topic: names.deliveries,
    message: /partition\(s\) 0, 1, 2, 3, 4, 5 have fewer in-sync replicas than min\.insync\.replicas=2/,
  },
  {
    name: "a partition without leader",
    facts: () => {
      const f = healthy();
      const t = f.topics.map((d) =>
        d.topic === names.channels
          ? { ...d, partitions: d.partitions.map((p) => (p.partition === 1 ? { ...p, leader: -1 } : p)) }
          : d,
      );
      return { ...f, topics: t };
    },
    code: "no_leader",
    topic: names.channels,
    message: /partition\(s\) 1 have no leader/,
  },
  {
    name: "min ISR 1 with three replicas",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "min.insync.replicas": "1" } }),
    }),
    code: "min_isr_too_low",
    message: /min\.insync\.replicas=1: an acknowledged send may be on one broker only/,
  },
  {
    name: "min ISR equal to the replication factor",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "min.insync.replicas": "3" } }),
    }),
    code: "min_isr_equals_replication",
    message: /losing any one broker stops all sends/,
  },
  {
    name: "one replica on three brokers",
    facts: () => ({ ...healthy(), topics: describe(1) }),
    expect: { ...gateway, replicationFactor: -1 },
    code: "single_replica",
    message: /1 replica on a cluster of 3 brokers/,
  },
  {
    name: "replication factor other than configured",
    facts: () => ({ ...healthy(), topics: describe(2, {}) }),
    code: "replication_differs",
    message: /2 replica\(s\) per partition, RT_TOPIC_REPLICATION_FACTOR says 3/,
  },
  {
    name: "more gateways than partitions",
    facts: () => ({ ...healthy(), groupMembers: 6 }),
    code: "partitions_fewer_than_gateways",
    topic: names.deliveries,
    message: /7 gateways for 6 partitions of rt\.deliveries: .* 1 gateway\(s\) stay idle/,
  },
  {
    name: "retention shorter than the resume window",
    facts: () => ({
      ...healthy(),
      topics: describe(3, { [names.deliveries]: { "retention.ms": "3600000" } }),
    }),
    code: "retention_below_resume_age",
    message: /keeps events for 1 h \(retention\.ms\), less than RT_RESUME_MAX_AGE_MS=1 d/,
  },
];

for (const c of cases) {
  test(`finds: ${c.name} -> ${c.code} (${CLUSTER_CHECKS[c.code]})`, () => {
    const found = checkCluster(c.facts(), c.expect ?? gateway);
    const f = found.find((x) => x.code === c.code);
    assert.ok(f !== undefined, `expected ${c.code}, got ${JSON.stringify(found)}`);
    assert.equal(f.severity, CLUSTER_CHECKS[c.code]);
    if (c.topic !== undefined) assert.equal(f.topic, c.topic);
    assert.match(f.message, c.message);
  });
}

test("the gateway counts itself as joining; a router (no group facts) never warns about partitions", () => {
  assert.deepEqual(codes({ ...healthy(), groupMembers: 5 }), []);
  assert.deepEqual(codes({ ...healthy(), groupMembers: 6 }), ["partitions_fewer_than_gateways"]);
  assert.deepEqual(codes({ ...healthy(), groupMembers: 6 }, { ...gateway, joiningGroup: false }), []);
  assert.deepEqual(codes({ ...healthy(), groupMembers: null }), []);
});

test("topics that do not exist and topics outside the specs are not judged", () => {
  const only = healthy().topics.filter((t) => t.topic === names.deliveries);
  const stranger: TopicDescription = {
    topic: "someone.else",
    partitions: [{ partition: 0, leader: 1, replicas: [1], isr: [1] }],
    configs: { "cleanup.policy": "compact", "unclean.leader.election.enable": "true" },
  };
  assert.deepEqual(codes({ ...healthy(), topics: [...only, stranger] }), []);
});

function fakeAdmin(facts: ClusterFacts): Admin {
  const admin: Partial<Admin> = {
    describeCluster: async () => ({
      clusterId: "c",
      brokers: facts.brokers.map((nodeId) => ({ nodeId, host: "127.0.0.1", port: 9092 })),
      controllerId: facts.brokers[0] ?? null,
    }),
    describeTopics: async (ts) => facts.topics.filter((t) => ts.includes(t.topic)),
    describeBrokerConfigs: async () => facts.brokerConfigs ?? {},
    describeGroup: async (groupId) => ({
      groupId,
      state: "Stable",
      protocol: "rt-sticky",
      members: Array.from({ length: facts.groupMembers ?? 0 }, (_, i) => ({
        memberId: `m${i}`,
        clientId: "c",
        host: "h",
        metadata: Buffer.alloc(0),
        assignment: Buffer.alloc(0),
      })),
    }),
  };
  return admin as Admin;
}

function capturingLogger() {
  const lines: { level: string; check?: string; msg: string }[] = [];
  const destination = {
    write: (s: string) => {
      lines.push(JSON.parse(s) as (typeof lines)[number]);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  const log = createLogger({ service: "test", level: "warn", destination });
  return { log, lines };
}

test("runClusterCheck refuses with one message naming every error, and logs each finding", async () => {
  const facts: ClusterFacts = {
    ...healthy(),
    brokers: [1, 2],
    topics: describe(3, {
      [names.deliveries]: { "cleanup.policy": "compact" },
      [names.roomMembers]: { "cleanup.policy": "delete" },
    }),
  };
  const { log, lines } = capturingLogger();
  await assert.rejects(
    runClusterCheck(fakeAdmin(facts), gateway, { log, groupId: "g", refuse: true }),
    (e: unknown) => {
      assert.ok(e instanceof KafkaError);
      assert.equal(e.code, "cluster_misconfigured");
      assert.equal(e.retriable, false);
      assert.match(
        e.message,
        /^the Kafka cluster does not fit the backbone's guarantees: \(1\) rt\.deliveries/,
      );
      assert.match(e.message, /\(2\) rt\.room-members has cleanup\.policy=delete/);
      assert.match(e.message, /see docs\/OPERATIONS\.md#start-up-cluster-check\)$/);
      return true;
    },
  );
  assert.ok(lines.some((l) => l.check === "cleanup_policy" && l.level === "error"));
  assert.ok(lines.some((l) => l.check === "brokers_missing" && l.level === "warn"));
});

test("runClusterCheck with warnings only (or refuse: false) resolves with the findings", async () => {
  const { log } = capturingLogger();
  const warned = await runClusterCheck(fakeAdmin({ ...healthy(), brokers: [1, 2] }), gateway, {
    log,
    groupId: "g",
    refuse: true,
  });
  assert.ok(warned.length > 0 && warned.every((f) => f.severity === "warn"));
  const bad = { ...healthy(), topics: describe(3, { [names.deliveries]: { "cleanup.policy": "compact" } }) };
  const found = await runClusterCheck(fakeAdmin(bad), gateway, { log, refuse: false });
  assert.deepEqual(
    found.map((f) => f.code),
    ["cleanup_policy"],
  );
});
