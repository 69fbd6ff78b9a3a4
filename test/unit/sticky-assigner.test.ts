import { test } from "node:test";
import assert from "node:assert/strict";
import { AssignerProtocol } from "kafkajs";
import type { Assigner, Cluster, GroupDescription, GroupMember, Logger, PartitionMetadata } from "kafkajs";
import { decodeMemberMetadata } from "../../common/kafka/member-metadata.ts";
import {
  OWNERSHIP_PROBLEMS,
  STICKY_ASSIGNER_NAME,
  ownershipFromGroup,
  stickyAssigner,
} from "../../common/kafka/sticky-assigner.ts";

const TOPIC = "rt.deliveries";

/** The only part of a KafkaJS cluster an assigner uses: partition metadata per topic. */
function fakeCluster(partitionsByTopic: Record<string, number>): Cluster {
  const findTopicPartitionMetadata = (topic: string): PartitionMetadata[] =>
    Array.from({ length: partitionsByTopic[topic] ?? 0 }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
    }));
  return { findTopicPartitionMetadata } as unknown as Cluster;
}

function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const noop = (): void => {};
  const logger: Logger = {
    info: noop,
    error: noop,
    debug: noop,
    warn: (message) => warnings.push(message),
    namespace: () => logger,
    setLogLevel: noop,
  };
  return { logger, warnings };
}

interface Gateway {
  readonly memberId: string;
  readonly url: string;
  owned: number[];
}

function assignerFor(gw: Gateway, cluster: Cluster, logger: Logger): Assigner {
  return stickyAssigner({ url: () => gw.url, owned: () => gw.owned })({
    cluster,
    groupId: "rt-gateways",
    logger,
  });
}

/** One rebalance as KafkaJS runs it: every member's protocol(), then the leader's assign(). */
async function rebalance(
  gateways: readonly Gateway[],
  topics: string[],
  cluster: Cluster,
  logger: Logger,
): Promise<{
  members: GroupMember[];
  assignments: Map<string, Record<string, number[]>>;
  raw: Map<string, Buffer>;
}> {
  const members = gateways.map((gw) => ({
    memberId: gw.memberId,
    memberMetadata: assignerFor(gw, cluster, logger).protocol({ topics }).metadata,
  }));
  const leader = gateways[0];
  assert.ok(leader !== undefined);
  const result = await assignerFor(leader, cluster, logger).assign({ members, topics });
  const assignments = new Map<string, Record<string, number[]>>();
  const raw = new Map<string, Buffer>();
  for (const { memberId, memberAssignment } of result) {
    const decoded = AssignerProtocol.MemberAssignment.decode(memberAssignment);
    assert.ok(decoded !== null);
    assert.equal(decoded.version, 1);
    assignments.set(memberId, decoded.assignment);
    raw.set(memberId, memberAssignment);
  }
  return { members, assignments, raw };
}

function assertComplete(
  assignments: Map<string, Record<string, number[]>>,
  topic: string,
  count: number,
): void {
  const all = [...assignments.values()].flatMap((a) => a[topic] ?? []).sort((a, b) => a - b);
  assert.deepEqual(
    all,
    Array.from({ length: count }, (_, i) => i),
  );
}

test("protocol() encodes the name, version, topics and a url that decodes back", () => {
  const { logger } = recordingLogger();
  const gw: Gateway = { memberId: "m-1", url: "wss://gw-1.example.com/v1/ws", owned: [4, 1] };
  const assigner = assignerFor(gw, fakeCluster({ [TOPIC]: 6 }), logger);
  assert.equal(assigner.name, STICKY_ASSIGNER_NAME);
  assert.equal(assigner.version, 1);
  const state = assigner.protocol({ topics: [TOPIC] });
  assert.equal(state.name, "rt-sticky");
  const decoded = AssignerProtocol.MemberMetadata.decode(state.metadata);
  assert.ok(decoded !== null);
  assert.equal(decoded.version, 1);
  assert.deepEqual(decoded.topics, [TOPIC]);
  assert.deepEqual(decodeMemberMetadata(decoded.userData), {
    ok: true,
    value: { url: "wss://gw-1.example.com/v1/ws", owned: [1, 4] },
  });
});

test("protocol() refuses to join without a valid url", () => {
  const { logger } = recordingLogger();
  const gw: Gateway = { memberId: "m-1", url: "not a url", owned: [] };
  assert.throws(() => assignerFor(gw, fakeCluster({ [TOPIC]: 6 }), logger).protocol({ topics: [TOPIC] }));
});

test("assign() is complete, balanced, sticky across a join and a leave", async () => {
  const { logger, warnings } = recordingLogger();
  const cluster = fakeCluster({ [TOPIC]: 12 });
  const gws: Gateway[] = ["m-b", "m-a", "m-c"].map((memberId) => ({
    memberId,
    url: `ws://${memberId}.local:9001`,
    owned: [],
  }));

  const first = await rebalance(gws, [TOPIC], cluster, logger);
  assertComplete(first.assignments, TOPIC, 12);
  assert.deepEqual([...first.assignments.keys()], ["m-a", "m-b", "m-c"]);
  for (const gw of gws) {
    gw.owned = first.assignments.get(gw.memberId)?.[TOPIC] ?? [];
    assert.equal(gw.owned.length, 4);
  }

  const joiner: Gateway = { memberId: "m-d", url: "ws://m-d.local:9001", owned: [] };
  const second = await rebalance([...gws, joiner], [TOPIC], cluster, logger);
  assertComplete(second.assignments, TOPIC, 12);
  for (const gw of gws) {
    const now = second.assignments.get(gw.memberId)?.[TOPIC] ?? [];
    assert.equal(now.length, 3);
    assert.ok(
      now.every((p) => gw.owned.includes(p)),
      `${gw.memberId} kept only its own`,
    );
  }
  for (const gw of [...gws, joiner]) gw.owned = second.assignments.get(gw.memberId)?.[TOPIC] ?? [];

  const leaver = gws[1];
  assert.ok(leaver !== undefined);
  const stayers = [...gws, joiner].filter((gw) => gw !== leaver);
  const third = await rebalance(stayers, [TOPIC], cluster, logger);
  assertComplete(third.assignments, TOPIC, 12);
  for (const gw of stayers) {
    const now = third.assignments.get(gw.memberId)?.[TOPIC] ?? [];
    assert.ok(
      gw.owned.every((p) => now.includes(p)),
      `${gw.memberId} lost nothing`,
    );
  }
  assert.deepEqual(warnings, []);
});

test("assign() co-partitions: every topic gets the same partition numbers per member", async () => {
  const { logger, warnings } = recordingLogger();
  const topics = ["rt.room-events", "rt.room-members"];
  const cluster = fakeCluster({ "rt.room-events": 8, "rt.room-members": 8 });
  const gws: Gateway[] = ["r-1", "r-2", "r-3"].map((memberId) => ({
    memberId,
    url: `ws://${memberId}:1`,
    owned: [],
  }));
  const { assignments } = await rebalance(gws, topics, cluster, logger);
  for (const topic of topics) assertComplete(assignments, topic, 8);
  for (const a of assignments.values()) assert.deepEqual(a["rt.room-events"], a["rt.room-members"]);
  assert.deepEqual(warnings, []);
});

test("assign() with different partition counts uses the smallest and warns", async () => {
  const { logger, warnings } = recordingLogger();
  const topics = ["a", "b"];
  const gws: Gateway[] = ["r-1", "r-2"].map((memberId) => ({
    memberId,
    url: `ws://${memberId}:1`,
    owned: [],
  }));
  const { assignments } = await rebalance(gws, topics, fakeCluster({ a: 4, b: 6 }), logger);
  assertComplete(assignments, "a", 4);
  assertComplete(assignments, "b", 4);
  assert.equal(warnings.length, 1);
});

test("assign() gives no partitions to a member with unreadable metadata, and warns", async () => {
  const { logger, warnings } = recordingLogger();
  const cluster = fakeCluster({ [TOPIC]: 6 });
  const good: Gateway = { memberId: "m-1", url: "ws://m-1:1", owned: [] };
  const members: GroupMember[] = [
    {
      memberId: "m-1",
      memberMetadata: assignerFor(good, cluster, logger).protocol({ topics: [TOPIC] }).metadata,
    },
    { memberId: "m-0", memberMetadata: Buffer.from([0, 1, 0]) },
    {
      memberId: "m-2",
      memberMetadata: AssignerProtocol.MemberMetadata.encode({
        version: 1,
        topics: [TOPIC],
        userData: Buffer.from("{}"),
      }),
    },
  ];
  const result = await assignerFor(good, cluster, logger).assign({ members, topics: [TOPIC] });
  assert.deepEqual(
    result.map((r) => r.memberId),
    ["m-0", "m-1", "m-2"],
  );
  const decoded = new Map(
    result.map((r) => [r.memberId, AssignerProtocol.MemberAssignment.decode(r.memberAssignment)?.assignment]),
  );
  assert.deepEqual(decoded.get("m-1"), { [TOPIC]: [0, 1, 2, 3, 4, 5] });
  assert.deepEqual(decoded.get("m-0"), {});
  assert.deepEqual(decoded.get("m-2"), {});
  assert.equal(warnings.length, 2);
});

function describedGroup(
  members: GroupMember[],
  assignments: ReadonlyMap<string, Buffer>,
  protocol = STICKY_ASSIGNER_NAME,
): GroupDescription {
  return {
    groupId: "rt-gateways",
    protocol,
    protocolType: "consumer",
    state: "Stable",
    members: members.map((m) => ({
      memberId: m.memberId,
      clientId: "rt-gateway",
      clientHost: "/10.0.0.1",
      memberMetadata: m.memberMetadata,
      memberAssignment: assignments.get(m.memberId) ?? Buffer.alloc(0),
    })),
  };
}

test("ownershipFromGroup round-trips a describeGroups result built with the real encoders", async () => {
  const { logger } = recordingLogger();
  const gws: Gateway[] = ["m-1", "m-2", "m-3"].map((memberId) => ({
    memberId,
    url: `wss://${memberId}.example.com/ws`,
    owned: [],
  }));
  const { members, assignments, raw } = await rebalance(gws, [TOPIC], fakeCluster({ [TOPIC]: 10 }), logger);
  const { owners, problems } = ownershipFromGroup(describedGroup(members, raw), TOPIC);
  assert.deepEqual(problems, []);
  assert.equal(owners.size, 10);
  for (const [memberId, assignment] of assignments) {
    for (const p of assignment[TOPIC] ?? []) {
      assert.deepEqual(owners.get(p), { memberId, url: `wss://${memberId}.example.com/ws` });
    }
  }
  assert.equal(ownershipFromGroup(describedGroup(members, raw), "other-topic").owners.size, 0);
});

test("ownershipFromGroup skips and reports unreadable members, never throws", async () => {
  const { logger } = recordingLogger();
  const gws: Gateway[] = ["m-1", "m-2"].map((memberId) => ({
    memberId,
    url: `ws://${memberId}:1`,
    owned: [],
  }));
  const { members, raw } = await rebalance(gws, [TOPIC], fakeCluster({ [TOPIC]: 4 }), logger);
  const m1Partitions = AssignerProtocol.MemberAssignment.decode(raw.get("m-1") ?? Buffer.alloc(0))
    ?.assignment[TOPIC];
  const withJunk = new Map(raw);
  withJunk.set("m-2", Buffer.from([0, 1, 0xff, 0xff, 0xff, 0x00]));
  const junkMember: GroupMember = { memberId: "m-0", memberMetadata: Buffer.from("garbage") };
  const joining: GroupMember = {
    memberId: "m-9",
    memberMetadata: members[0]?.memberMetadata ?? Buffer.alloc(0),
  };

  const { owners, problems } = ownershipFromGroup(
    describedGroup([junkMember, ...members, joining], withJunk),
    TOPIC,
  );
  assert.deepEqual(
    problems.map((p) => [p.memberId, p.code]),
    [
      ["m-0", OWNERSHIP_PROBLEMS.metadataUnreadable],
      ["m-2", OWNERSHIP_PROBLEMS.assignmentUnreadable],
    ],
  );
  assert.deepEqual(
    [...owners.keys()].sort((a, b) => a - b),
    m1Partitions,
  );
});

test("ownershipFromGroup reports duplicate owners and foreign protocols", async () => {
  const { logger } = recordingLogger();
  const gws: Gateway[] = ["m-1", "m-2"].map((memberId) => ({
    memberId,
    url: `ws://${memberId}:1`,
    owned: [],
  }));
  const { members, raw } = await rebalance(gws, [TOPIC], fakeCluster({ [TOPIC]: 4 }), logger);
  const both = AssignerProtocol.MemberAssignment.encode({
    version: 1,
    assignment: { [TOPIC]: [0, 1, 2, 3] },
    userData: Buffer.alloc(0),
  });
  const dup = ownershipFromGroup(describedGroup(members, new Map([...raw, ["m-2", both]])), TOPIC);
  assert.equal(dup.owners.size, 4);
  assert.ok(dup.problems.length > 0);
  assert.ok(dup.problems.every((p) => p.code === OWNERSHIP_PROBLEMS.duplicateOwner && p.memberId === "m-2"));

  const foreign = ownershipFromGroup(describedGroup(members, raw, "RoundRobinAssigner"), TOPIC);
  assert.equal(foreign.owners.size, 0);
  assert.deepEqual(
    foreign.problems.map((p) => p.code),
    [OWNERSHIP_PROBLEMS.wrongProtocol],
  );
});
