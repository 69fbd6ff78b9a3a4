/** The pure parts of the `room` and `broadcast` load tests: flags, layout, protocol, bookkeeping, results. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseArgs } from "../../loadtest/args.ts";
import {
  BROADCAST_DEFAULTS,
  MAX_DELIVERIES_PER_RUN,
  ROOM_DEFAULTS,
  type BroadcastOptions,
  type RoomOptions,
} from "../../loadtest/fanout-args.ts";
import { clockOffset } from "../../loadtest/fanout-ipc.ts";
import {
  GATEWAY_FD_OVERHEAD,
  GENERATOR_FD_OVERHEAD,
  gatewayFileCheck,
  generatorFileCheck,
  serviceEnv,
  shares,
} from "../../loadtest/fanout-layout.ts";
import {
  joinFrame,
  membersInRoom,
  parseFanoutMessage,
  publishBody,
  roomName,
  roomOf,
  roomSendFrame,
  roomsClaim,
} from "../../loadtest/fanout-protocol.ts";
import {
  bracket,
  broadcastSummaryText,
  buildBroadcastResult,
  buildRoomResult,
  cpuVerdict,
  offeredDeliveriesPerS,
  roomSummaryText,
  type BroadcastRunInput,
  type RoomRunInput,
  sumWindows,
} from "../../loadtest/fanout-report.ts";
import type { CpuWindow } from "../../loadtest/fanout-run.ts";
import {
  FanoutTracker,
  mergeTotals,
  sparseSummary,
  type FanoutTotals,
} from "../../loadtest/fanout-tracker.ts";
import { Histogram } from "../../loadtest/histogram.ts";
import { parseMachineCpuTicks } from "../../loadtest/proc-stat.ts";
import { messageId, parseMessageId } from "../../loadtest/protocol.ts";
import { allows } from "../../common/grants.ts";
import { decodeClientFrame, DEFAULT_FRAME_LIMITS } from "../../schemas/frames.ts";
import { partitionForKey } from "../../schemas/partition.ts";

const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`loadtest-fanout.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 200 };

function run(argv: string[]) {
  const r = parseArgs(argv);
  assert.equal(r.kind, "run", JSON.stringify(r));
  return (r as { options: RoomOptions | BroadcastOptions }).options;
}

function error(argv: string[]): string {
  const r = parseArgs(argv);
  assert.equal(r.kind, "error", `expected an error for ${JSON.stringify(argv)}, got ${JSON.stringify(r)}`);
  return (r as { message: string }).message;
}

// ---- flags ----

test("room: defaults, and every flag in both forms", () => {
  const d = ROOM_DEFAULTS;
  assert.deepEqual(run(["room"]), {
    scenario: "room",
    brokers: ["127.0.0.1:9092"],
    gateways: d.gateways,
    generators: 1,
    connectRatePerS: 1000,
    partitions: 12,
    payloadBytes: 100,
    localAddresses: 16,
    graceS: 15,
    kafkaPid: undefined,
    out: undefined,
    allowRemote: false,
    members: 1000,
    rooms: 1,
    ratePerS: 10,
    via: "member",
    warmupS: 3,
    durationS: 20,
    roomPartitions: 4,
  });
  const o = run([
    "room",
    "--brokers=127.0.0.1:29092",
    "--gateways",
    "3",
    "--generators=2",
    "--connect-rate",
    "500",
    "--partitions=24",
    "--payload-bytes",
    "50",
    "--local-addresses=32",
    "--grace",
    "5",
    "--kafka-pid=123",
    "--out",
    "/tmp/x.json",
    "--members=10000",
    "--rooms",
    "10",
    "--rate=50.5",
    "--via",
    "publish",
    "--warmup=0",
    "--duration",
    "30",
    "--room-partitions=6",
  ]) as RoomOptions;
  assert.deepEqual(
    [o.brokers, o.gateways, o.generators, o.connectRatePerS, o.partitions, o.payloadBytes, o.localAddresses],
    [["127.0.0.1:29092"], 3, 2, 500, 24, 50, 32],
  );
  assert.deepEqual(
    [
      o.graceS,
      o.kafkaPid,
      o.out,
      o.members,
      o.rooms,
      o.ratePerS,
      o.via,
      o.warmupS,
      o.durationS,
      o.roomPartitions,
    ],
    [5, 123, "/tmp/x.json", 10000, 10, 50.5, "publish", 0, 30, 6],
  );
  // More members than one generator should hold: more generators by default.
  assert.equal((run(["room", "--members", "25000"]) as RoomOptions).generators, 3);
});

test("broadcast: defaults and flags", () => {
  const d = BROADCAST_DEFAULTS;
  const o = run(["broadcast"]) as BroadcastOptions;
  assert.deepEqual(
    [o.scenario, o.gateways, o.clients, o.broadcasts, o.intervalS, o.graceS, o.generators],
    ["broadcast", d.gateways, 1000, 10, 2, 10, 1],
  );
  const big = run(["broadcast", "--clients=50000", "--gateways", "5", "--broadcasts=20", "--interval", "3"]);
  assert.deepEqual(
    [(big as BroadcastOptions).clients, big.gateways, big.generators, (big as BroadcastOptions).intervalS],
    [50000, 5, 5, 3],
  );
});

test("fanout flags: one-line errors that name the flag", () => {
  const table: [string[], RegExp][] = [
    [["room", "--members", "0"], /^--members: 0 is out of range/],
    [["room", "--members", "5", "--rooms", "6"], /^--rooms: 6 rooms for 5 members/],
    [["room", "--via", "carrier-pigeon"], /^--via: "carrier-pigeon" is not one of member, publish/],
    [["room", "--rate", "fast"], /^--rate: "fast" is not a number/],
    [["room", "--rate", "200000", "--rooms", "1"], /^--rate: 200000 msgs\/s per room is over 50000/],
    [
      ["room", "--members", "100000", "--rate", "100000", "--via", "publish"],
      /^--rate: .* deliveries; a run expects at most 100000000/,
    ],
    [["room", "--gateways", "13"], /^--gateways: 13 gateways for 12 partitions/],
    [["room", "--generators", "0"], /^--generators: 0 is out of range/],
    [["room", "--members", "2", "--generators", "3"], /^--generators: 3 generators for 2 clients/],
    [["room", "--brokers", "10.0.0.1:9092"], /^--brokers: host 10\.0\.0\.1 is not loopback/],
    [["room", "--clients", "5"], /^unknown flag --clients for room/],
    [["room", "--local-addresses", "0"], /^--local-addresses: 0 is out of range/],
    [["broadcast", "--broadcasts", "201"], /^--broadcasts: 201 is out of range/],
    [["broadcast", "--interval", "0.01"], /^--interval: 0.01 is out of range/],
    [["broadcast", "--members", "5"], /^unknown flag --members for broadcast/],
    [["broadcast", "--clients", "1000000", "--broadcasts", "200"], /^--broadcasts: 1000000 clients x 200/],
    [["broadcast", "--rate", "5"], /^unknown flag --rate for broadcast/],
  ];
  for (const [argv, re] of table) assert.match(error(argv), re, argv.join(" "));
  assert.ok(MAX_DELIVERIES_PER_RUN >= 10_000 * 1000);
});

// ---- layout ----

test("shares: every client in exactly one generator, as even as can be", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 1, max: 32 }), (clients, gens) => {
      fc.pre(gens <= clients);
      const s = shares(clients, gens);
      assert.equal(s.length, gens);
      let next = 0;
      for (const p of s) {
        assert.equal(p.first, next);
        next += p.count;
      }
      assert.equal(next, clients);
      const counts = s.map((p) => p.count);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1);
    }),
    runs,
  );
});

test("open files: generators and gateways are refused past ulimit -n, with the fix in the message", () => {
  assert.equal(generatorFileCheck(50_000, 5, 20_000), null);
  assert.equal(generatorFileCheck(19_800, 1, 20_000), null);
  assert.match(generatorFileCheck(19_801, 1, 20_000) ?? "", /use --generators 2 or more/);
  const refused = generatorFileCheck(50_000, 2, 20_000);
  assert.match(
    refused ?? "",
    /^--generators: 50000 clients over 2 generator processes is 25000 sockets in one.*use --generators 3 or more/,
  );
  assert.equal(generatorFileCheck(10, 1, null), null);
  assert.equal(GENERATOR_FD_OVERHEAD + 19_800, 20_000);

  const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);
  const all = new Map(Array.from({ length: 4 }, (_, p) => [p, p < 2 ? "ws://a" : "ws://b"] as const));
  assert.equal(gatewayFileCheck(users, 4, all, 20_000), null);
  const perA = users.filter((u) => partitionForKey(u, 4) < 2).length;
  assert.match(
    gatewayFileCheck(users, 4, all, perA + GATEWAY_FD_OVERHEAD - 1) ?? "",
    new RegExp(`^--gateways: the gateway at ws://a would hold ${perA} sockets`),
  );
  assert.match(gatewayFileCheck(users, 4, new Map([[0, "ws://a"]]), 20_000) ?? "", /no owner/);
});

test("service settings: rate limits twice the offer, room size and connections for the run", () => {
  const room = run([
    "room",
    "--members",
    "20000",
    "--rooms",
    "2",
    "--rate",
    "1000",
    "--duration",
    "5",
  ]) as RoomOptions;
  const env = serviceEnv(room, "abcd1234");
  assert.equal(env.gateway["RT_ROOM_SENDS_PER_S"], "1000");
  assert.equal(env.gateway["RT_SENDS_PER_S"], "1000");
  assert.equal(env.router["RT_MAX_ROOM_MEMBERS"], "10010");
  assert.equal(env.router["RT_ROUTER_ID"], "lt-abcd1234-router");
  assert.equal(env.router["RT_ROOM_PARTITIONS"], env.gateway["RT_ROOM_PARTITIONS"]);
  const slow = serviceEnv(run(["room", "--rate", "1"]) as RoomOptions, "abcd1234");
  assert.equal(slow.gateway["RT_SENDS_PER_S"], "50");
  assert.equal(slow.gateway["RT_ROOM_SENDS_PER_S"], "100");
  const b = serviceEnv(run(["broadcast", "--clients", "50000"]) as BroadcastOptions, "abcd1234");
  assert.equal(b.gateway["RT_MAX_CONNECTIONS_PER_IP"], "50100");
});

// ---- protocol ----

test("room frames and publish bodies are valid protocol v1 of the requested size", () => {
  const run = "0123abcd";
  assert.equal(roomName(run, 3), "bench-0123abcd-3");
  assert.ok(allows(roomsClaim(run), roomName(run, 999)));
  assert.ok(!allows(roomsClaim(run), roomName("ffffffff", 0)));
  for (const bytes of [0, 50, 100, 1000]) {
    const text = roomSendFrame(run, 2, 77, 1764300000123.456, bytes);
    const f = decodeClientFrame(text, DEFAULT_FRAME_LIMITS);
    assert.ok(f.ok, JSON.stringify(f));
    const v = JSON.parse(text) as { id: string; to: string; data: { seq: number; t: number } };
    assert.equal(v.to, `room:${roomName(run, 2)}`);
    assert.deepEqual(parseMessageId(run, v.id), { pair: 2, seq: 77 });
    assert.equal(v.data.t, 1764300000123.456);
    if (bytes >= 60) assert.equal(JSON.stringify(v.data).length, bytes);
    const body = JSON.parse(publishBody(messageId(run, 0, 5), "channel:*", "bench.bcast", 5, 1.5, bytes)) as {
      data: { seq: number };
    };
    assert.equal(body.data.seq, 5);
  }
  assert.ok(decodeClientFrame(joinFrame("j1", roomName(run, 0)), DEFAULT_FRAME_LIMITS).ok);
});

test("members are dealt to rooms in turn", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 50 }), (members, rooms) => {
      fc.pre(rooms <= members);
      const counted = new Array<number>(rooms).fill(0);
      for (let i = 0; i < members; i++) counted[roomOf(i, rooms)]!++;
      assert.deepEqual(
        counted,
        counted.map((_, r) => membersInRoom(r, members, rooms)),
      );
    }),
    runs,
  );
});

test("server messages: the fields the fanout generators read, and never a throw", () => {
  assert.deepEqual(
    parseFanoutMessage(
      '{"op":"event","cursor":"e:1:2","id":"r.0.3","from":"u","to":"room:x","type":"bench.msg","data":{"seq":3,"t":12.5},"ts":1}',
    ),
    { op: "event", id: "r.0.3", type: "bench.msg", to: "room:x", seq: 3, sendTimeMs: 12.5, code: null },
  );
  assert.deepEqual(
    parseFanoutMessage(
      '{"op":"event","id":"j","to":"room:x","type":"rt.rejected","data":{"code":"limit_reached"}}',
    ),
    {
      op: "event",
      id: "j",
      type: "rt.rejected",
      to: "room:x",
      seq: null,
      sendTimeMs: null,
      code: "limit_reached",
    },
  );
  assert.deepEqual(parseFanoutMessage('{"op":"ack","id":"a","ok":false,"error":{"code":"forbidden"}}'), {
    op: "ack",
    id: "a",
    ok: false,
    code: "forbidden",
  });
  assert.deepEqual(parseFanoutMessage('{"op":"ack","id":"a","ok":true}'), {
    op: "ack",
    id: "a",
    ok: true,
    code: null,
  });
  assert.deepEqual(parseFanoutMessage('{"op":"welcome","node":"gw1"}'), { op: "welcome", node: "gw1" });
  assert.deepEqual(parseFanoutMessage('{"op":"event","id":"x"}'), { op: "other" });
  assert.deepEqual(parseFanoutMessage("nope"), { op: "other" });
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      parseFanoutMessage(text);
    }),
    runs,
  );
});

test("clock offset: the sample with the shortest round trip, split evenly", () => {
  const r = clockOffset([
    { sentMs: 100, workerMs: 160, receivedMs: 120 }, // 20 ms trip
    { sentMs: 200, workerMs: 251.5, receivedMs: 203 }, // 3 ms trip: offset 50
    { sentMs: 300, workerMs: 400, receivedMs: 310 },
  ]);
  assert.deepEqual(r, { offsetMs: 50, rttMs: 3 });
  assert.throws(() => clockOffset([]));
});

test("machine CPU from /proc/stat: busy is all but idle and iowait", () => {
  assert.deepEqual(parseMachineCpuTicks("cpu  100 5 50 800 40 1 2 3 0 0\ncpu0 1 2 3 4\n"), {
    busy: 161,
    total: 1001,
  });
  assert.equal(parseMachineCpuTicks("intr 1 2 3"), null);
});

// ---- histogram across processes ----

test("property: a histogram sent as sparse data adds up to recording everything in one", () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 0, max: 10_000_000 }), { maxLength: 200 }), {
        minLength: 1,
        maxLength: 5,
      }),
      (parts) => {
        const opts = { highestTrackableValue: 60_000_000, significantDigits: 3 } as const;
        const one = new Histogram(opts);
        const merged = new Histogram(opts);
        for (const part of parts) {
          const h = new Histogram(opts);
          for (const v of part) {
            h.record(v);
            one.record(v);
          }
          merged.addSparse(JSON.parse(JSON.stringify(h.toSparse())) as ReturnType<Histogram["toSparse"]>);
        }
        assert.deepEqual(merged.summary(), one.summary());
      },
    ),
    runs,
  );
  const h = new Histogram({ highestTrackableValue: 1000, significantDigits: 2 });
  assert.throws(() => h.addSparse({ ...h.toSparse(), significantDigits: 3 }), /same range/);
  assert.throws(
    () => h.addSparse({ ...h.toSparse(), total: 2, buckets: [1, 1] }),
    /sparse buckets hold 1 values, total says 2/,
  );
});

// ---- tracker ----

function tracker(groups: number[], slots: number, perSlot = false) {
  return new FanoutTracker({
    groupOfClient: groups,
    groups: Math.max(...groups) + 1,
    slots,
    perSlot,
    highestLatencyUs: 1e9,
  });
}

test("tracker: every client gets every message of its group once; loss, duplicates, order, closes", () => {
  // Clients 0, 1 in group 0; client 2 in group 1; 4 slots each.
  const t = tracker([0, 0, 1], 4);
  t.setWindow(1000, 2000);
  for (const c of [0, 1])
    for (const s of [0, 1, 2]) assert.equal(t.onReceive(c, 0, s, 1000 + s, 1010 + s), "new");
  assert.equal(t.onReceive(0, 0, 1, 1001, 1100), "duplicate");
  assert.equal(t.onReceive(2, 0, 0, 1000, 1010), "foreign", "a message of another group");
  assert.equal(t.onReceive(2, 1, 9, 1000, 1010), "foreign", "past the slots");
  assert.equal(t.onReceive(7, 1, 0, 1000, 1010), "foreign", "no such client");
  assert.equal(t.onReceive(2, 1, 1, 1000, 1010), "new");
  assert.equal(t.onReceive(2, 1, 0, 1000, 1010), "new", "late: out of order");
  t.onClosed(1);
  const totals = t.totals({ sent: [4, 3], refused: [[3], [2]] });
  assert.equal(totals.delivered, 8);
  assert.equal(totals.duplicates, 1);
  assert.equal(totals.outOfOrder, 1);
  assert.equal(totals.foreign, 3);
  // Group 0 sent slots 0-3, slot 3 refused: nobody missed anything. Group 1: slot 2 refused.
  assert.equal(totals.lost, 0);
  assert.equal(totals.closedClients, 1);
  assert.equal(totals.unexpected, 0);
  const lossy = t.totals({ sent: [4, 3], refused: [[], []] });
  assert.equal(lossy.lost, 2, "slot 3 for client 0, slot 2 for client 2");
  assert.equal(lossy.undeliveredClosed, 1, "slot 3 for the closed client 1");
  const refusedButGot = t.totals({ sent: [4, 3], refused: [[0], [2]] });
  assert.equal(refusedButGot.unexpected, 2);
  assert.equal(sparseSummary(totals.latencyUs).count, 8);
  assert.equal(sparseSummary(totals.latencyUs).max, 10_000);
});

test("tracker: the window decides what is measured; intervals reset; per-slot spread", () => {
  const t = tracker([0, 0, 0], 2, true);
  t.setWindow(1000, 2000);
  t.onReceive(0, 0, 0, 900, 1005); // sent before the window, arrived in it
  t.onReceive(1, 0, 0, 900, 990);
  t.onReceive(2, 0, 0, 900, 3000); // arrived after the window
  t.onReceive(0, 0, 1, 1500, 1520);
  const i = t.takeInterval();
  assert.equal(i.delivered, 4);
  assert.equal(t.takeInterval().delivered, 0);
  const totals = t.totals({ sent: [2], refused: [[]] });
  assert.equal(totals.deliveredInWindow, 2);
  assert.equal(sparseSummary(totals.latencyUs).count, 1, "only the message sent in the window");
  assert.deepEqual(
    totals.slots.map((s) => [s.received, s.lost, sparseSummary(s.latencyUs).max]),
    [
      [3, 0, 2_100_000],
      [1, 2, 20_000],
    ],
  );
});

test("property: merged totals of any split equal one tracker's", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 30 }),
      fc.array(fc.tuple(fc.nat(29), fc.nat(9), fc.integer({ min: 0, max: 5000 })), { maxLength: 300 }),
      fc.integer({ min: 1, max: 4 }),
      (clients, receipts, parts) => {
        const groups = Array.from({ length: clients }, () => 0);
        const whole = tracker(groups, 10, true);
        const split = shares(clients, Math.min(parts, clients)).map((s) => ({
          ...s,
          t: tracker(groups.slice(0, s.count), 10, true),
        }));
        for (const [c0, seq, lat] of receipts) {
          const c = c0 % clients;
          whole.onReceive(c, 0, seq, 0, lat);
          const part = split.find((p) => c >= p.first && c < p.first + p.count)!;
          part.t.onReceive(c - part.first, 0, seq, 0, lat);
        }
        const expected = { sent: [8], refused: [[1]] };
        const a = whole.totals(expected);
        const b = mergeTotals(
          split.map((p) => p.t.totals(expected)),
          1e9,
        );
        assert.deepEqual(
          {
            ...b,
            latencyUs: sparseSummary(b.latencyUs),
            slots: b.slots.map((s) => sparseSummary(s.latencyUs)),
          },
          {
            ...a,
            latencyUs: sparseSummary(a.latencyUs),
            slots: a.slots.map((s) => sparseSummary(s.latencyUs)),
          },
        );
        assert.deepEqual(
          b.slots.map((s) => [s.received, s.lost]),
          a.slots.map((s) => [s.received, s.lost]),
        );
      },
    ),
    runs,
  );
});

// ---- results ----

const cpu = (cores: Record<string, number>, machine: number | null): CpuWindow => ({
  seconds: 10,
  processes: Object.entries(cores).map(([name, c], i) => ({
    name,
    pid: i + 1,
    cpu_s: c * 10,
    cores_used: c,
  })),
  machine_busy_cores: machine,
  other_busy_cores:
    machine === null ? null : Math.max(0, machine - Object.values(cores).reduce((a, b) => a + b, 0)),
});

test("cpu verdict: a single-threaded process at one core, a saturated machine, or nothing", () => {
  const hot = cpuVerdict(cpu({ kafka: 0.4, router: 0.97, gw1: 0.3, gen1: 0.2, main: 0.05 }, 1.95), 2);
  assert.match(
    hot.limited_by,
    /^router 0\.97 cores: a single-threaded process at about one core, on a saturated machine/,
  );
  assert.ok(hot.warnings.some((w) => /2 cores were 98% busy/.test(w)));
  const gen = cpuVerdict(cpu({ gen1: 0.95, gw1: 0.3 }, 1.3), 2);
  assert.ok(gen.warnings.some((w) => /load generator gen1 used 95% of one core/.test(w)));
  const machine = cpuVerdict(cpu({ kafka: 0.7, router: 0.6, gw1: 0.5 }, 1.9), 2);
  assert.match(machine.limited_by, /^the machine's CPU: 1\.90 of 2 cores busy \(busiest: kafka 0\.70/);
  const idle = cpuVerdict(cpu({ kafka: 0.1, router: 0.2 }, 0.9), 2);
  assert.match(idle.limited_by, /^nothing saturated/);
  assert.ok(idle.warnings.some((w) => /other work on the machine used 0\.60 cores/.test(w)));
});

test("burst CPU: samples bracketing each delivery, added up", () => {
  const times = [0, 100, 200, 300, 400, 500];
  assert.deepEqual(bracket(times, 150, 320), [1, 4]);
  assert.deepEqual(bracket(times, 100, 100), [1, 2]);
  assert.deepEqual(bracket(times, -5, 1000), [0, 5]);
  assert.equal(bracket([0], 0, 1), null);
  const a = cpu({ gw1: 1, gen1: 0.5 }, 1.5);
  const b = { ...cpu({ gw1: 0.5, gen1: 0.5 }, 2), seconds: 30 }; // 5 CPU seconds each, over 30 s
  const sum = sumWindows([a, b])!;
  assert.equal(sum.seconds, 40);
  assert.deepEqual(
    sum.processes.map((p) => [p.name, p.cpu_s, p.cores_used]),
    [
      ["gw1", 15, 0.375],
      ["gen1", 10, 0.25],
    ],
  );
  assert.equal(sum.machine_busy_cores, 1.875);
  assert.equal(sumWindows([]), null);
});

function emptyTotals(over: Partial<FanoutTotals> = {}): FanoutTotals {
  const h = new Histogram({ highestTrackableValue: 1e9, significantDigits: 3 });
  for (const v of [10_000, 20_000, 30_000]) h.record(v);
  return {
    clients: 11,
    delivered: 110,
    deliveredInWindow: 100,
    duplicates: 0,
    outOfOrder: 0,
    lost: 0,
    undeliveredClosed: 0,
    unexpected: 0,
    foreign: 0,
    closedClients: 0,
    latencyUs: h.toSparse(),
    slots: [],
    ...over,
  };
}

function commonInput() {
  const lat = { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0 };
  return {
    runId: "0123abcd",
    startedAt: "2026-11-28T00:00:00.000Z",
    commandLine: ["tsx", "loadtest/main.ts"],
    machine: {
      cores: 2,
      cpu_model: "x",
      total_memory_bytes: 1,
      platform: "linux",
      os_release: "6",
      load_average_1m_at_start: 0.1,
      node: "v20",
      kafka_version: "4.1.2",
      git_commit: null,
    },
    aborted: null,
    setup: {
      services: [],
      startup_ms: 1,
      kafka_brokers: 1,
      topic_prefix: "lt-0123abcd.",
      service_env: { gateway: {}, router: {} },
      clock: [{ name: "gen1", offset_ms: 0.01, rtt_ms: 0.1 }],
    },
    connect: {
      clients: 10,
      connected: 10,
      failed: 0,
      first_error: null,
      redirected: 0,
      wall_ms: 100,
      generators_wall_ms: 90,
      per_node: { gw1: 10 },
      local_addresses: ["127.0.0.1"],
      per_generator: [{ name: "gen1", pid: 1, first: 0, clients: 10, connected: 10 }],
    },
    cpu: cpu({ kafka: 0.2, router: 0.3, gw1: 0.2, gen1: 0.1, main: 0.05 }, 0.9),
    generator: { tick_lateness_ms: lat, event_loop_delay_p99_ms: 1, rss_bytes: 1 },
    series: [],
    serviceLogs: {},
    teardown: {
      generators_close_ms: 1,
      sockets_terminated: 0,
      services_exit_codes: { router: 0, gw1: 0 },
      processes_left_running: 0,
      topics_deleted: 4,
      topics_error: null,
    },
    warnings: [],
  };
}

test("room result: rates per measured second, offered deliveries, warnings, summary", () => {
  const options = run(["room", "--members", "10", "--rate", "10", "--duration", "10"]) as RoomOptions;
  assert.equal(offeredDeliveriesPerS(options), 110, "10 members and the sender get 10 msgs/s");
  assert.equal(
    offeredDeliveriesPerS({ ...options, via: "publish", rooms: 3 }),
    33.333,
    "each message to one room",
  );
  const input: RoomRunInput = {
    ...commonInput(),
    totals: emptyTotals({ lost: 2, duplicates: 1 }),
    options,
    join: { ms: 5, joined: 11, refused: {} },
    sends: {
      sent: 130,
      accepted: 129,
      failed: { rate_limited: 1 },
      no_answer: 0,
      skipped_behind_schedule: 0,
      skipped_backpressure: 0,
      skipped_closed_sender: 0,
    },
    expectedDeliveries: 1419,
    measuredS: 10,
    sentInWindow: 100,
    acceptedInWindow: 100,
    ackUs: { count: 1, min: 1000, mean: 1000, p50: 1000, p90: 1000, p99: 1000, p999: 1000, max: 1000 },
    router: {
      measure_start: { events: 10, deliveries: 100, transactions: 5 },
      measure_end: { events: 110, deliveries: 1200, transactions: 55 },
    },
  };
  const r = buildRoomResult(input);
  assert.equal(r.schema, "rt-loadtest-room/1");
  assert.equal(r.measured.delivered_per_s, 10);
  assert.equal(r.measured.router_deliveries_per_s, 110);
  assert.equal(r.measured.router_transactions_per_s, 5);
  assert.ok(Math.abs(r.measured.end_to_end_latency_ms.p50 - 20) < 0.03, "within the histogram's precision");
  assert.equal(r.totals.expected_deliveries, 1419);
  assert.equal(r.parameters.senders, 1);
  assert.ok(r.warnings.some((w) => /sends failed \(rate_limited=1\)/.test(w)));
  assert.ok(r.warnings.some((w) => /2 expected deliveries never arrived/.test(w)));
  assert.ok(r.warnings.some((w) => /1 deliveries arrived twice/.test(w)));
  const text = roomSummaryText(r, "loadtest/results/room-x.json");
  assert.match(text, /^room: 10 members in 1 room\(s\) \+ 1 sending member\(s\) via member/);
  assert.match(text, /correctness: {7}lost 2 {2}duplicates 1/);
  assert.match(text, /limited by: {8}nothing saturated/);
  assert.match(text, /result: loadtest\/results\/room-x\.json$/);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(r)));
});

test("broadcast result: per-broadcast spread, time to the last client, misses", () => {
  const options = run(["broadcast", "--clients", "10", "--broadcasts", "3"]) as BroadcastOptions;
  const slot = (values: number[], lost: number) => {
    const h = new Histogram({ highestTrackableValue: 1e9, significantDigits: 2 });
    for (const v of values) h.record(v);
    return { received: values.length, lost, latencyUs: h.toSparse() };
  };
  const input: BroadcastRunInput = {
    ...commonInput(),
    totals: emptyTotals({
      clients: 10,
      lost: 1,
      slots: [
        slot(Array(10).fill(5000), 0),
        slot([...Array(9).fill(7000), 90_000].slice(0, 9), 1),
        slot([], 0),
      ],
    }),
    options,
    probes: { sent: 2, ms: 600, nodes: ["gw1"], covered: ["gw1"] },
    deliveryCpu: cpu({ kafka: 0.1, router: 0.1, gw1: 0.6, gen1: 0.9, main: 0.05 }, 1.8),
    sent: [
      { k: 0, at_s: 0, publish_ms: 3, ok: true, code: null },
      { k: 1, at_s: 2, publish_ms: 4, ok: true, code: null },
      { k: 2, at_s: 4, publish_ms: 2, ok: false, code: "unavailable" },
    ],
  };
  const r = buildBroadcastResult(input);
  assert.equal(r.schema, "rt-loadtest-broadcast/1");
  assert.deepEqual(
    r.broadcasts.map((b) => [b.received, b.missed, b.time_to_last_ms]),
    [
      [10, 0, 5],
      [9, 1, 7],
      [0, null, null],
    ],
  );
  assert.deepEqual(r.measured.time_to_last_client_ms, { p50: 5, max: 7 });
  assert.equal(r.totals.expected_deliveries, 20);
  assert.equal(r.totals.missed, 1);
  assert.ok(r.warnings.some((w) => /1 broadcasts were refused by the publish API \(unavailable\)/.test(w)));
  assert.match(r.limited_by, /^gen1 0\.90 cores: a single-threaded process/, "judged while delivering");
  assert.ok(r.warnings.some((w) => /load generator gen1 used 90% of one core/.test(w)));
  const text = broadcastSummaryText(r, "out.json");
  assert.match(text, /while delivering: {2}kafka 0\.10 .* \(10 s\)/);
  assert.match(text, /#1 at 2s: 9\/10 \(missed 1\)/);
  assert.match(text, /#2 at 4s: refused: unavailable/);
  assert.match(text, /to last client ms: median 5 {2}worst 7/);
});
