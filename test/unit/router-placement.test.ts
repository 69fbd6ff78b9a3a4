/**
 * The router's owner cache (router/placement.ts) against a fake Admin: answers from a Stable
 * group, rebalances, empty groups, a missing topic, Kafka failures and staleness, the shared and
 * rate-limited reads, partition count changes, close.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { AssignerProtocol } from "kafkajs";
import type { Admin, GroupMember, GroupState } from "../../common/kafka/kafka.ts";
import { kafkaUnavailable } from "../../common/kafka/errors.ts";
import { encodeMemberMetadata } from "../../common/kafka/member-metadata.ts";
import { STICKY_ASSIGNER_NAME } from "../../common/kafka/sticky-assigner.ts";
import { createLogger } from "../../common/log.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { Placement, type PlacementOptions } from "../../router/placement.ts";

const TOPIC = "rt.deliveries";
const GROUP = "rt-gateways";
const URL_A = "ws://a.example:1/v1/ws";
const URL_B = "ws://b.example:2/v1/ws";

function member(memberId: string, url: string, partitions: number[]): GroupMember {
  return {
    memberId,
    clientId: "rt-gateway",
    host: "/127.0.0.1",
    metadata: AssignerProtocol.MemberMetadata.encode({
      version: 1,
      topics: [TOPIC],
      userData: encodeMemberMetadata({ url, owned: partitions }),
    }),
    assignment: AssignerProtocol.MemberAssignment.encode({
      version: 1,
      assignment: { [TOPIC]: partitions },
      userData: Buffer.alloc(0),
    }),
  };
}

function stable(...members: GroupMember[]): GroupState {
  return { groupId: GROUP, state: "Stable", protocol: STICKY_ASSIGNER_NAME, members };
}

/** What Kafka describes while a group rebalances: members, but no metadata or assignment. */
function rebalancing(...memberIds: string[]): GroupState {
  return {
    groupId: GROUP,
    state: "PreparingRebalance",
    protocol: "",
    members: memberIds.map((memberId) => ({
      memberId,
      clientId: "rt-gateway",
      host: "/127.0.0.1",
      metadata: Buffer.alloc(0),
      assignment: Buffer.alloc(0),
    })),
  };
}

interface Fake {
  group: GroupState;
  partitions: number | null;
  failing: boolean;
  /** Extra latency of describeGroup. */
  delayMs: number;
  describes: number;
  opens: number;
  closes: number;
  maxConcurrent: number;
  openAdmin(): Promise<Admin>;
}

function fakeKafka(group: GroupState, partitions: number | null = 4): Fake {
  let concurrent = 0;
  const fake: Fake = {
    group,
    partitions,
    failing: false,
    delayMs: 0,
    describes: 0,
    opens: 0,
    closes: 0,
    maxConcurrent: 0,
    async openAdmin() {
      fake.opens += 1;
      if (fake.failing) throw kafkaUnavailable("connecting the admin client: ECONNREFUSED");
      const admin: Partial<Admin> = {
        async describeGroup(groupId) {
          assert.equal(groupId, GROUP);
          fake.describes += 1;
          concurrent += 1;
          fake.maxConcurrent = Math.max(fake.maxConcurrent, concurrent);
          try {
            if (fake.delayMs > 0) await sleep(fake.delayMs);
            if (fake.failing) throw kafkaUnavailable("describing the group: ECONNREFUSED");
            return fake.group;
          } finally {
            concurrent -= 1;
          }
        },
        async partitionCount(topic) {
          assert.equal(topic, TOPIC);
          if (fake.failing) throw kafkaUnavailable("reading the partition count: ECONNREFUSED");
          return fake.partitions;
        },
        async close() {
          fake.closes += 1;
        },
      };
      return admin as Admin;
    },
  };
  return fake;
}

function placement(fake: Fake, opts: Partial<PlacementOptions> = {}): Placement {
  return new Placement(() => fake.openAdmin(), {
    groupId: GROUP,
    topic: TOPIC,
    refreshMs: 60_000,
    minRefreshIntervalMs: 20,
    topicRefreshMs: 60_000,
    maxStaleMs: 30_000,
    lookupWaitMs: 1_000,
    holdMs: 0,
    log: createLogger({ service: "test", level: "silent" }),
    ...opts,
  });
}

/** A user whose partition (of `count`) is `partition`. */
function userIn(partition: number, count = 4): string {
  for (let i = 0; ; i++) if (partitionForKey(`u${i}`, count) === partition) return `u${i}`;
}

test("a Stable group: every user gets the URL of its partition's owner", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1]), member("b", URL_B, [2, 3])));
  const p = placement(fake);
  assert.equal(p.notReadyReason(), "ownership not read yet");
  await p.refresh();
  assert.equal(p.notReadyReason(), null);
  for (let partition = 0; partition < 4; partition++) {
    const user = userIn(partition);
    assert.deepEqual(await p.lookup(user), {
      kind: "owner",
      partition,
      url: partition < 2 ? URL_A : URL_B,
    });
  }
  assert.equal(fake.describes, 1, "owners in the cache need no read");
  assert.deepEqual(
    { ...p.status(), ageMs: 0 },
    {
      groupState: "Stable",
      members: 2,
      ownedPartitions: 4,
      partitionCount: 4,
      ageMs: 0,
      held: 0,
    },
  );
  await p.close();
  assert.equal(fake.closes, 1);
});

test("an empty group: no_owner, after one fresh read", async () => {
  const fake = fakeKafka({ groupId: GROUP, state: "Empty", protocol: "", members: [] });
  const p = placement(fake);
  await p.refresh();
  const before = fake.describes;
  const r = await p.lookup(userIn(2));
  assert.equal(r.kind, "no_owner");
  assert.equal(r.kind === "no_owner" && r.partition, 2);
  assert.equal(fake.describes, before + 1, "a request with no owner asks Kafka again");
  assert.equal(p.notReadyReason(), null, "an empty group read is still a good read");
  await p.close();
});

test("a rebalance keeps the owners that stay, drops the one that left, then takes the new assignment", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1]), member("b", URL_B, [2, 3])));
  const p = placement(fake);
  await p.refresh();
  fake.group = rebalancing("a");
  await sleep(25);
  await p.refresh();
  assert.equal(p.status().groupState, "PreparingRebalance");
  assert.deepEqual(await p.lookup(userIn(0)), { kind: "owner", partition: 0, url: URL_A });
  const moved = await p.lookup(userIn(3));
  assert.equal(moved.kind, "no_owner", JSON.stringify(moved));
  // A's partitions were answered from the cache, but the group is not Stable: a read was asked for.
  fake.group = stable(member("a", URL_A, [0, 1, 2, 3]));
  await sleep(25);
  await p.refresh();
  assert.deepEqual(await p.lookup(userIn(3)), { kind: "owner", partition: 3, url: URL_A });
  await p.close();
});

test("a lookup during a rebalance triggers a read without waiting for it", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1, 2, 3])));
  const p = placement(fake);
  await p.refresh();
  fake.group = rebalancing("a", "b");
  await sleep(25);
  await p.refresh();
  const reads = fake.describes;
  fake.delayMs = 200;
  const started = Date.now();
  assert.deepEqual(await p.lookup(userIn(1)), { kind: "owner", partition: 1, url: URL_A });
  assert.ok(Date.now() - started < 150, "answered from the cache");
  await sleep(50);
  assert.equal(fake.describes, reads + 1);
  await p.close();
});

test("a missing deliveries topic: no_owner without a partition, not ready", async () => {
  const fake = fakeKafka({ groupId: GROUP, state: "Dead", protocol: "", members: [] }, null);
  const p = placement(fake);
  await p.refresh();
  assert.match(p.notReadyReason() ?? "", /topic rt\.deliveries does not exist/);
  const r = await p.lookup("alice");
  assert.equal(r.kind, "no_owner");
  assert.equal(r.kind === "no_owner" ? r.partition : -1, null);
  await p.close();
});

test("Kafka down from the start: unavailable and not ready; it recovers with a new admin client", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1, 2, 3])));
  fake.failing = true;
  const p = placement(fake);
  await p.refresh();
  assert.match(p.notReadyReason() ?? "", /Kafka unreachable: .*ECONNREFUSED/);
  const started = Date.now();
  const r = await p.lookup("alice");
  assert.equal(r.kind, "unavailable");
  assert.ok(Date.now() - started < 500, "a known outage is answered at once");
  fake.failing = false;
  for (let i = 0; i < 100 && p.notReadyReason() !== null; i++) {
    await p.refresh();
    await sleep(10);
  }
  assert.equal(p.notReadyReason(), null);
  assert.ok(fake.opens >= 2, "the failed client was replaced");
  assert.equal((await p.lookup("alice")).kind, "owner");
  await p.close();
});

test("while Kafka fails, the last good ownership is served until maxStaleMs, then unavailable", async () => {
  let nowMs = 1_000_000;
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1, 2, 3])));
  const p = placement(fake, { now: () => nowMs, maxStaleMs: 10_000 });
  await p.refresh();
  fake.failing = true;
  nowMs += 5_000;
  await p.refresh();
  assert.equal(p.notReadyReason(), null);
  assert.equal((await p.lookup("alice")).kind, "owner");
  nowMs += 6_000;
  await p.refresh();
  assert.match(p.notReadyReason() ?? "", /ownership last read 11000 ms ago: .*ECONNREFUSED/);
  assert.equal((await p.lookup("alice")).kind, "unavailable");
  await p.close();
});

test("concurrent requests share reads: one describeGroup in flight, starts rate-limited", async () => {
  const fake = fakeKafka({ groupId: GROUP, state: "Empty", protocol: "", members: [] });
  const p = placement(fake, { minRefreshIntervalMs: 100 });
  await p.refresh();
  fake.delayMs = 30;
  const before = fake.describes;
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => p.lookup(`user-${i}`)));
  assert.ok(answers.every((a) => a.kind === "no_owner"));
  assert.equal(fake.maxConcurrent, 1);
  assert.equal(fake.describes, before + 1, "200 requests, one read");
  assert.ok(Date.now() - started >= 90, "the read waited for the rate limit");
  await p.close();
});

test("the periodic read picks up changes, and a changed partition count is used", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1, 2, 3])));
  const p = placement(fake, { refreshMs: 100, topicRefreshMs: 100 });
  p.start();
  await p.firstAttempt();
  assert.equal(p.status().partitionCount, 4);
  fake.partitions = 8;
  fake.group = stable(member("a", URL_A, [0, 1, 2, 3]), member("b", URL_B, [4, 5, 6, 7]));
  for (let i = 0; i < 100 && p.status().partitionCount !== 8; i++) await sleep(20);
  assert.equal(p.status().partitionCount, 8);
  assert.deepEqual(await p.lookup(userIn(6, 8)), { kind: "owner", partition: 6, url: URL_B });
  await p.close();
});

test("unreadable members are skipped, never thrown", async () => {
  const bad: GroupMember = { ...member("b", URL_B, [2, 3]), metadata: Buffer.from("garbage") };
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1]), bad));
  const p = placement(fake);
  await p.refresh();
  assert.equal((await p.lookup(userIn(0))).kind, "owner");
  assert.equal((await p.lookup(userIn(2))).kind, "no_owner");
  await p.close();
});

test("close: lookups answer unavailable, waiters are released, safe twice", async () => {
  const fake = fakeKafka({ groupId: GROUP, state: "Empty", protocol: "", members: [] });
  const p = placement(fake, { minRefreshIntervalMs: 10_000 });
  await p.refresh();
  const waiting = p.lookup("alice");
  await sleep(10);
  await p.close();
  await p.close();
  const r = await waiting;
  assert.ok(r.kind === "unavailable", JSON.stringify(r));
  assert.deepEqual(await p.lookup("bob"), { kind: "unavailable", reason: "the router is shutting down" });
  assert.equal(fake.closes, 1);
});

/** Whether `p` settles within `ms` (the alternative being held for much longer). */
async function settlesWithin<T>(
  p: Promise<T>,
  ms: number,
): Promise<{ settled: true; value: T } | { settled: false }> {
  const timer = sleep(ms).then(() => ({ settled: false }) as const);
  return Promise.race([p.then((value) => ({ settled: true, value }) as const), timer]);
}

/** A loopback URL nothing listens on: connecting to it is refused. */
async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return `ws://127.0.0.1:${port}/v1/ws`;
}

test("a request for a partition in a rebalance is held and answered once the new assignment is read", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1]), member("b", URL_B, [2, 3])));
  const p = placement(fake, { holdMs: 30_000 });
  await p.refresh();
  fake.group = rebalancing("a");
  await sleep(25);
  await p.refresh();
  const held = p.lookup(userIn(3));
  assert.deepEqual(await settlesWithin(held, 300), { settled: false }, "held while the group rebalances");
  assert.equal(p.status().held, 1);
  const readsWhileHeld = fake.describes;
  fake.group = stable(member("a", URL_A, [0, 1, 2, 3]));
  assert.deepEqual(await held, { kind: "owner", partition: 3, url: URL_A });
  assert.equal(p.status().held, 0);
  assert.ok(
    fake.describes > 1 && readsWhileHeld >= 3,
    `the held request kept reading (${readsWhileHeld} reads)`,
  );
  await p.close();
});

test("an owner that refuses connections: its users are held until its partitions move", async () => {
  const dead = await refusedUrl();
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1]), member("b", dead, [2, 3])));
  const p = placement(fake, { holdMs: 30_000 });
  await p.refresh();
  // The read probed the owners; the refused one is down once its probe failed.
  for (let i = 0; i < 100 && p.status().held === 0; i++) {
    const r = await settlesWithin(p.lookup(userIn(2)), 20);
    if (!r.settled) break;
    assert.equal(r.value.kind, "owner", "answered before the probe came back");
    await sleep(10);
  }
  for (let i = 0; i < 100 && p.status().held === 0; i++) await sleep(20);
  assert.equal(p.status().held, 1, "a request for the refused owner's partition is held");
  const held = p.lookup(userIn(3));
  assert.deepEqual(
    await p.lookup(userIn(0)),
    { kind: "owner", partition: 0, url: URL_A },
    "others are not held",
  );
  fake.group = stable(member("a", URL_A, [0, 1, 2, 3]));
  assert.deepEqual(await held, { kind: "owner", partition: 3, url: URL_A });
  for (let i = 0; i < 100 && p.status().held > 0; i++) await sleep(20);
  assert.equal(p.status().held, 0);
  await p.close();
});

test("a held request is answered no_owner when holdMs passes, and at once on releaseHeld", async () => {
  const fake = fakeKafka(stable(member("a", URL_A, [0, 1]), member("b", URL_B, [2, 3])));
  const p = placement(fake, { holdMs: 200 });
  await p.refresh();
  fake.group = rebalancing("a");
  await sleep(25);
  await p.refresh();
  const r = await p.lookup(userIn(2));
  assert.equal(r.kind, "no_owner", JSON.stringify(r));
  assert.equal(p.status().held, 0);

  const q = placement(fake, { holdMs: 30_000 });
  await q.refresh();
  const held = q.lookup(userIn(2));
  assert.deepEqual(await settlesWithin(held, 200), { settled: false });
  q.releaseHeld();
  const released = await settlesWithin(held, 5_000);
  assert.ok(released.settled && released.value.kind === "no_owner", JSON.stringify(released));
  assert.equal((await q.lookup(userIn(2))).kind, "no_owner", "after releaseHeld nothing is held");
  await p.close();
  await q.close();
});

test("an empty group and a missing topic are answered, not held: nothing is about to move", async () => {
  const empty = fakeKafka({ groupId: GROUP, state: "Empty", protocol: "", members: [] });
  const p = placement(empty, { holdMs: 30_000 });
  await p.refresh();
  const r = await settlesWithin(p.lookup(userIn(1)), 5_000);
  assert.ok(r.settled && r.value.kind === "no_owner", JSON.stringify(r));
  const missing = fakeKafka({ groupId: GROUP, state: "Dead", protocol: "", members: [] }, null);
  const q = placement(missing, { holdMs: 30_000 });
  await q.refresh();
  const m = await settlesWithin(q.lookup("alice"), 5_000);
  assert.ok(m.settled && m.value.kind === "no_owner", JSON.stringify(m));
  await p.close();
  await q.close();
});
