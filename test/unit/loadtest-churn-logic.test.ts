import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseArgs } from "../../loadtest/args.ts";
import type { ChurnOptions } from "../../loadtest/churn-args.ts";
import {
  clientUser,
  makePlan,
  pairsToClient,
  parseClientUser,
  seededRandom,
  senderOf,
} from "../../loadtest/churn-plan.ts";
import { buildChurnResult, churnSummaryText, type ChurnRunInput } from "../../loadtest/churn-report.ts";
import { SessionLog } from "../../loadtest/churn-sessions.ts";
import { coresBetween, cpuBetween } from "../../loadtest/cpu-sampler.ts";
import { splitFlags } from "../../loadtest/flags.ts";
import { Histogram } from "../../loadtest/histogram.ts";
import { latencyMs } from "../../loadtest/report.ts";
import { parseMaxOpenFiles, parseVmRssBytes } from "../../loadtest/proc-stat.ts";
import { Tracker } from "../../loadtest/tracker.ts";
import { isUserId } from "../../schemas/targets.ts";

const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`loadtest-churn-logic.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 200 };

// ---- plan ----

test("plan: distinct peers, never oneself; the schedule has every message; pairsTo inverts recipients", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 60 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 0, max: 500 }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      (clients, peersWanted, messages, s) => {
        const peers = Math.min(peersWanted, clients - 1);
        const plan = makePlan(clients, peers, messages, seededRandom(s));
        assert.equal(plan.recipients.length, clients * peers);
        for (let c = 0; c < clients; c++) {
          const mine = [...plan.recipients.subarray(c * peers, (c + 1) * peers)];
          assert.equal(new Set(mine).size, peers, `client ${c} peers ${mine}`);
          assert.ok(!mine.includes(c));
          for (const r of mine) assert.ok(r < clients);
        }
        assert.equal(plan.schedule.length, messages);
        const perPair = new Map<number, number>();
        for (const p of plan.schedule) {
          assert.ok(p < clients * peers);
          perPair.set(p, (perPair.get(p) ?? 0) + 1);
        }
        assert.equal(plan.maxPerPair, messages === 0 ? 0 : Math.max(...perPair.values()));
        let seen = 0;
        for (let c = 0; c < clients; c++) {
          for (const p of pairsToClient(plan, c)) {
            assert.equal(plan.recipients[p], c);
            seen++;
          }
        }
        assert.equal(seen, clients * peers);
        for (let p = 0; p < clients * peers; p++) assert.equal(senderOf(plan, p), Math.floor(p / peers));
      },
    ),
    runs,
  );
});

test("plan: the same seed gives the same plan; user names round-trip and are valid user ids", () => {
  const a = makePlan(100, 2, 1000, seededRandom(42));
  const b = makePlan(100, 2, 1000, seededRandom(42));
  assert.deepEqual(a.recipients, b.recipients);
  assert.deepEqual(a.schedule, b.schedule);
  const c = makePlan(100, 2, 1000, seededRandom(43));
  assert.notDeepEqual(a.schedule, c.schedule);
  for (const i of [0, 7, 199_999]) {
    const u = clientUser("0a1b2c3d", i);
    assert.ok(isUserId(u), u);
    assert.equal(parseClientUser("0a1b2c3d", u), i);
  }
  assert.equal(parseClientUser("0a1b2c3d", "lt-0a1b2c3d-c07"), null);
  assert.equal(parseClientUser("0a1b2c3d", "lt-ffffffff-c7"), null);
  assert.throws(() => makePlan(3, 3, 10, seededRandom(1)), RangeError);
  // Even a stuck random source ends, with distinct peers.
  const stuck = makePlan(5, 4, 3, () => 0);
  for (let s = 0; s < 5; s++) assert.equal(new Set(stuck.recipients.subarray(s * 4, s * 4 + 4)).size, 4);
});

test("plan sized tracker: a pair never runs out of sequence numbers", () => {
  const plan = makePlan(50, 2, 5000, seededRandom(7));
  const tracker = new Tracker({
    pairs: 100,
    maxSeqPerPair: plan.maxPerPair,
    measureStartMs: 0,
    measureEndMs: 1e12,
    highestLatencyUs: 1e9,
  });
  for (const pair of plan.schedule) {
    const seq = tracker.nextSeq(pair);
    assert.notEqual(seq, null);
    tracker.onSent(pair, seq!, 1);
  }
  assert.equal(tracker.sent, 5000);
});

// ---- sessions ----

test("sessions: connect times, drops by disruption, resumes, recovered, re-drops, not resumed", () => {
  const log = new SessionLog(5, 100_000);
  for (let c = 0; c < 5; c++) log.onStart(c, 1000);
  log.onWelcome(0, 1010, false, 0);
  log.onWelcome(1, 1020, false, 0);
  log.onWelcome(2, 1030, false, 1);
  log.onWelcome(3, 1040, false, 1);
  log.onWelcome(4, 1050, false, 2);
  assert.equal(log.connected, 5);
  assert.equal(log.openCount, 5);
  // A drop before any disruption is baseline.
  log.onDrop(4, 1500, "abnormal");
  log.onWelcome(4, 1700, true, 2);
  const kill = log.mark("SIGKILL gw1", 2000, 0);
  assert.equal(kill, 0);
  log.onDrop(0, 2001, "abnormal");
  log.onDrop(1, 2002, "abnormal");
  assert.equal(log.openCount, 3);
  assert.equal(log.waiting, 2);
  assert.equal(log.nodeOf(0), -1);
  log.onWelcome(0, 5000, true, 1);
  // Client 0 is moved again: a re-drop, no second time-to-welcome.
  log.onDrop(0, 6000, "moved");
  log.onWelcome(0, 6100, true, 2);
  // A drop twice in a row only counts once (the session was not open).
  log.onDrop(1, 2003, "abnormal");
  const restart = log.mark("start gw4", 7000, -1);
  assert.equal(restart, 1);
  log.onDrop(2, 7100, "moved");
  log.onWelcome(2, 7200, false, 3);
  log.onClosed(3);
  log.onWelcome(3, 7300, true, 1); // after a final close: ignored
  const s = log.summary();
  assert.equal(s.connected, 5);
  assert.equal(s.connectUs.count, 5);
  assert.equal(s.connectUs.min, 10_000);
  assert.equal(s.connectUs.max, 50_000);
  assert.equal(s.closedForGood, 1);
  assert.equal(s.openAtEnd, 3); // 0, 2, 4 (1 waits, 3 closed)
  const [baseline, k, r] = s.disruptions;
  assert.equal(baseline!.name, "baseline");
  assert.equal(baseline!.affected, 1);
  assert.equal(baseline!.resumed, 1);
  assert.equal(baseline!.toWelcomeUs.max, 200_000, "baseline measures from the drop");
  assert.equal(k!.name, "SIGKILL gw1");
  assert.equal(k!.openOnNode, 2);
  assert.equal(k!.affected, 2);
  assert.equal(k!.resumed, 1);
  assert.equal(k!.notResumed, 1);
  assert.equal(k!.recoveredTrue, 1);
  assert.equal(k!.reDrops, 1);
  assert.equal(k!.toWelcomeUs.count, 1);
  assert.ok(Math.abs(k!.toWelcomeUs.max - 3_000_000) <= 3_000, `${k!.toWelcomeUs.max}`);
  assert.ok(Math.abs(k!.outageUs.max - 2_999_000) <= 3_000);
  assert.deepEqual(k!.drops, { abnormal: 2, moved: 1 });
  assert.equal(r!.openOnNode, -1);
  assert.equal(r!.affected, 1);
  assert.equal(r!.recoveredFalse, 1);
  assert.throws(() => log.mark("earlier", 100, -1), RangeError);
});

test("property: every affected client is resumed or not resumed, once per disruption", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          client: fc.integer({ min: 0, max: 9 }),
          kind: fc.constantFrom("welcome", "drop", "close", "mark"),
          recovered: fc.boolean(),
        }),
        { maxLength: 200 },
      ),
      (ops) => {
        const log = new SessionLog(10, 1e6);
        let t = 0;
        let marks = 0;
        for (const op of ops) {
          t += 1;
          if (op.kind === "welcome") log.onWelcome(op.client, t, op.recovered, op.client % 3);
          else if (op.kind === "drop") log.onDrop(op.client, t, "x");
          else if (op.kind === "close") log.onClosed(op.client);
          else if (marks < 10) {
            log.mark(`m${marks++}`, t, 0);
          }
          assert.ok(log.openCount >= 0 && log.openCount <= 10);
        }
        const s = log.summary();
        for (const d of s.disruptions) {
          assert.ok(d.resumed + d.notResumed <= d.affected, JSON.stringify(d));
          assert.equal(d.recoveredTrue + d.recoveredFalse, d.resumed);
          assert.equal(d.toWelcomeUs.count, d.resumed);
          assert.ok(d.affected <= 10);
        }
      },
    ),
    runs,
  );
});

// ---- /proc readers and flags ----

test("proc status and limits: VmRSS in bytes, the soft open-files limit", () => {
  const status = "Name:\tnode\nVmPeak:\t 1234 kB\nVmRSS:\t   51200 kB\nRssAnon:\t 100 kB\n";
  assert.equal(parseVmRssBytes(status), 51200 * 1024);
  assert.equal(parseVmRssBytes("Name:\tkthreadd\n"), null);
  const limits =
    "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max processes             95000                95000                processes \n" +
    "Max open files            20000                40000                files     \n";
  assert.equal(parseMaxOpenFiles(limits), 20000);
  assert.equal(parseMaxOpenFiles(limits.replace("20000  ", "unlimited")), Infinity);
  assert.equal(parseMaxOpenFiles("nothing"), null);
});

test("cpu windows: a process started inside counts from 0, an unreadable one is null", () => {
  const procs = [
    { name: "gw1", pid: 1 },
    { name: "gw4", pid: 4 },
    { name: "gone", pid: 5 },
  ];
  const a = new Map<string, number | null>([
    ["gw1", 100],
    ["gone", null],
  ]);
  const b = new Map<string, number | null>([
    ["gw1", 300],
    ["gw4", 50],
    ["gone", 10],
  ]);
  const cpu = cpuBetween(procs, a, b, 4, 100);
  assert.deepEqual(
    cpu.map((p) => [p.name, p.cpu_s, p.cores_used]),
    [
      ["gw1", 2, 0.5],
      ["gw4", 0.5, 0.125],
      ["gone", null, null],
    ],
  );
  assert.deepEqual(coresBetween(a, b, 2, 100), { gw1: 1, gw4: null, gone: null });
});

test("splitFlags: values, booleans, and each misuse as an error", () => {
  const r = splitFlags(["--a", "1", "--b=2", "--on"], ["a", "b"], ["on"], "x");
  assert.deepEqual(
    [...r.values],
    [
      ["a", "1"],
      ["b", "2"],
    ],
  );
  assert.deepEqual([...r.booleans], ["on"]);
  assert.throws(() => splitFlags(["--c", "1"], ["a"], [], "x"), /unknown flag --c for x/);
  assert.throws(() => splitFlags(["a"], ["a"], [], "x"), /unexpected argument "a"/);
  assert.throws(() => splitFlags(["--a"], ["a"], [], "x"), /--a: needs a value/);
});

// ---- report ----

function latency(values: number[]): ReturnType<Histogram["summary"]> {
  const h = new Histogram({ highestTrackableValue: 1e9, significantDigits: 3 });
  for (const v of values) h.record(v);
  return h.summary();
}

function churnOptions(): ChurnOptions {
  const r = parseArgs([
    "churn",
    "--clients",
    "100",
    "--rate",
    "50",
    "--duration",
    "20",
    "--kill-after",
    "10",
  ]);
  assert.equal(r.kind, "run");
  return (r as { options: ChurnOptions }).options;
}

function runInput(toWelcomeUs: number[], lost: number): ChurnRunInput {
  const empty = latency([]);
  const tracker = new Tracker({
    pairs: 1,
    maxSeqPerPair: 2,
    measureStartMs: 0,
    measureEndMs: 1e9,
    highestLatencyUs: 1e9,
  });
  tracker.onSent(0, 0, 1);
  tracker.onAck(0, 0, true, undefined, 2);
  if (lost === 0) tracker.onDelivered(0, 0, 1, 3);
  return {
    runId: "0a1b2c3d",
    seed: 5,
    startedAt: "2026-11-28T00:00:00.000Z",
    commandLine: ["tsx", "loadtest/main.ts", "churn"],
    options: churnOptions(),
    machine: {
      cores: 2,
      cpu_model: "test",
      total_memory_bytes: 1,
      platform: "linux",
      os_release: "6",
      load_average_1m_at_start: 0,
      node: "v20",
      kafka_version: "4.1.2",
      git_commit: null,
    },
    aborted: null,
    topicPrefix: "lt-0a1b2c3d.",
    kafkaBrokers: 1,
    services: [{ name: "gw1", kind: "gateway", pid: 10, url: "ws://x", ready_ms: 900, exit_code: 137 }],
    startupMs: 3000,
    connect: {
      wallMs: 2000,
      started: 100,
      socketsOpened: 100,
      routerAnswers: { "200": 100 },
      socketErrors: {},
      perGateway: { gw1: 50, gw2: 50 },
      localAddresses: ["127.0.0.1"],
      timings: {
        router_ms: latencyMs(latency([1000])),
        upgrade_ms: latencyMs(latency([2000])),
        hello_to_welcome_ms: latencyMs(latency([3000])),
        generator_event_loop_delay_ms: { p50: 1, p99: 2, max: 3 },
      },
    },
    sessions: {
      clients: 100,
      connected: 100,
      connectUs: latency([1000, 2000]),
      closedForGood: 0,
      openAtEnd: 100,
      disruptions: [
        {
          name: "baseline",
          atMs: -Infinity,
          openOnNode: -1,
          affected: 0,
          resumed: 0,
          notResumed: 0,
          recoveredTrue: 0,
          recoveredFalse: 0,
          reDrops: 0,
          toWelcomeUs: empty,
          outageUs: empty,
          drops: {},
        },
        {
          name: "SIGKILL gw1",
          atMs: 11_000,
          openOnNode: 50,
          affected: toWelcomeUs.length,
          resumed: toWelcomeUs.length,
          notResumed: 0,
          recoveredTrue: toWelcomeUs.length,
          recoveredFalse: 0,
          reDrops: 0,
          toWelcomeUs: latency(toWelcomeUs),
          outageUs: latency(toWelcomeUs),
          drops: { abnormal: toWelcomeUs.length },
        },
      ],
    },
    trafficStartMs: 1000,
    disruptionDetails: [
      { gateway: "gw1", signal: "SIGKILL", exit_code: 137, exit_after_ms: 3, ready_after_ms: null },
    ],
    memory: {
      gateways: [
        {
          name: "gw1",
          rss_before_bytes: 100 * 1048576,
          rss_after_bytes: 110 * 1048576,
          connections_after: 50,
          bytes_per_connection: 209715,
          rss_end_bytes: null,
          connections_end: null,
        },
      ],
      generator: { rss_before_bytes: 1048576, rss_after_bytes: 2 * 1048576, bytes_per_client: 10486 },
    },
    totals: tracker.totals(),
    cpu: { connect: [{ name: "gw1", pid: 10, cpu_s: 1, cores_used: 0.5 }], traffic: [] },
    generatorCpu: { user_s: 1, system_s: 0, cores_used: 0.1, whole_run_cpu_s: 2 },
    generator: {
      skipped_behind_schedule: 0,
      skipped_backpressure: 0,
      skipped_closed_sender: 0,
      sent_while_sender_down: 0,
      tick_lateness_ms: { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0 },
    },
    counters: {
      timings: {
        router_ms: latencyMs(empty),
        upgrade_ms: latencyMs(empty),
        hello_to_welcome_ms: latencyMs(empty),
        generator_event_loop_delay_ms: { p50: 0, p99: 0, max: 0 },
      },
      clientErrors: {},
      resyncs: {},
      socketErrors: {},
      routerAnswers: {},
      socketsOpened: 100,
    },
    serviceLogs: { gw1: [] },
    teardown: {
      clients_close_ms: 10,
      sockets_terminated: 0,
      services_exit_codes: { gw1: 137 },
      services_left_running: 0,
      topics_deleted: 5,
      topics_error: null,
    },
    series: [],
    warnings: [],
  };
}

test("report: targets, disruption times from the start of traffic, and the summary", () => {
  const good = buildChurnResult(runInput([2_000_000, 3_000_000, 9_000_000], 0));
  assert.equal(good.schema, "rt-loadtest-churn/1");
  assert.equal(good.targets.lost_met, true);
  assert.equal(good.targets.resume_met, true);
  assert.equal(good.disruptions[0]!.at_s, null);
  assert.equal(good.disruptions[1]!.at_s, 10);
  assert.equal(good.disruptions[1]!.to_welcome_ms.max, 9000);
  assert.equal(good.totals!.lost, 0);
  assert.equal(good.parameters.per_client_rate_per_s, 0.5);
  JSON.parse(JSON.stringify(good));
  const text = churnSummaryText(good, "out.json");
  assert.match(text, /100\/100 in 2 s \(50\/s\)/);
  assert.match(text, /SIGKILL gw1 @10 s: 50 on it, 3 dropped; resumed 3/);
  assert.match(text, /resume target: .*: met/);
  assert.match(text, /target 0 lost: met/);
  assert.match(text, /gw1 100\.0 MiB -> 110\.0 MiB \(204\.8 KiB\/conn\)/);
  assert.match(text, /result: out\.json/);
  assert.match(text, /router p50 1 p99 1 .*generator event loop delay p50 1 p99 2 \(ms\)/);

  const bad = buildChurnResult(runInput([2_000_000, 12_000_000], 1));
  assert.equal(bad.targets.lost_met, false);
  assert.equal(bad.targets.resume_met, false);
  assert.match(churnSummaryText(bad, "x"), /lost 1 .*NOT met/);
});
