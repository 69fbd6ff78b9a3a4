import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseArgs, type DirectOptions } from "../../loadtest/args.ts";
import { checkTargetUrl, isLoopbackHost, localAddressFor } from "../../loadtest/loopback.ts";
import { parseKafkaVersion } from "../../loadtest/machine.ts";
import { Pacer, RoundRobin } from "../../loadtest/pacer.ts";
import { parseProcStatTicks } from "../../loadtest/proc-stat.ts";
import { progressLine } from "../../loadtest/progress.ts";
import {
  messageId,
  parseMessageId,
  parseServerMessage,
  receiverUser,
  sendFrame,
  senderUser,
} from "../../loadtest/protocol.ts";
import { buildResult, resultWarnings, summaryText, type RunInput } from "../../loadtest/report.ts";
import { Tracker } from "../../loadtest/tracker.ts";
import { decodeClientFrame, DEFAULT_FRAME_LIMITS } from "../../schemas/frames.ts";
import { isMessageId, isUserId } from "../../schemas/targets.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`loadtest-logic.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 300 };

// ---- pacer ----

test("pacer: sends exactly the schedule, however the ticks fall", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20_000 }),
      fc.integer({ min: 1, max: 5_000 }),
      fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 300 }),
      (rate, durationMs, gaps) => {
        const pacer = new Pacer({
          ratePerS: rate,
          startMs: 1000,
          endMs: 1000 + durationMs,
          maxBacklogMs: 1e9,
        });
        let t = 1000;
        let sent = 0;
        for (const gap of gaps) {
          t += gap;
          const due = pacer.due(t);
          assert.equal(due.skipped, 0);
          sent += due.send;
          // Never ahead of the schedule.
          assert.ok(sent <= Math.floor((rate * Math.min(t - 1000, durationMs)) / 1000 + 1e-9));
        }
        sent += pacer.due(1000 + durationMs + 1).send;
        assert.equal(sent, pacer.total);
        assert.equal(pacer.total, Math.floor((rate * durationMs) / 1000 + 1e-9));
        assert.ok(pacer.done(1000 + durationMs));
        assert.equal(pacer.due(1e12).send, 0);
      },
    ),
    runs,
  );
});

test("pacer: a stall sends at most maxBacklogMs worth and counts the rest as skipped", () => {
  const pacer = new Pacer({ ratePerS: 1000, startMs: 0, endMs: 10_000, maxBacklogMs: 500 });
  assert.deepEqual(pacer.due(10), { send: 10, skipped: 0 });
  assert.deepEqual(pacer.due(3010), { send: 500, skipped: 2500 });
  assert.deepEqual(pacer.due(3020), { send: 10, skipped: 0 });
  assert.equal(pacer.skipped, 2500);
  assert.equal(pacer.issued, 3020);
  assert.deepEqual(pacer.due(5), { send: 0, skipped: 0 }, "a clock going back owes nothing");
  assert.throws(() => new Pacer({ ratePerS: 0, startMs: 0, endMs: 1, maxBacklogMs: 1 }), RangeError);
  assert.throws(() => new Pacer({ ratePerS: 1, startMs: 2, endMs: 1, maxBacklogMs: 1 }), RangeError);
});

test("round robin spreads evenly", () => {
  const rr = new RoundRobin(3);
  assert.deepEqual(
    Array.from({ length: 7 }, () => rr.next()),
    [0, 1, 2, 0, 1, 2, 0],
  );
  assert.throws(() => new RoundRobin(0), RangeError);
});

// ---- protocol ----

test("ids, user names and send frames are valid protocol v1", () => {
  const run = "0a1b2c3d";
  const id = messageId(run, 4999, 123_456_789);
  assert.ok(isMessageId(id), id);
  assert.deepEqual(parseMessageId(run, id), { pair: 4999, seq: 123_456_789 });
  assert.equal(parseMessageId("ffffffff", id), null, "another run's id");
  assert.equal(parseMessageId(run, "c1"), null);
  assert.equal(parseMessageId(run, `${run}.1`), null);
  assert.ok(isUserId(senderUser(run, 4999)) && isUserId(receiverUser(run, 0)));
  for (const payloadBytes of [0, 10, 100, 1000, 60_000]) {
    const text = sendFrame(id, receiverUser(run, 7), 42, 123.4567, payloadBytes);
    const decoded = decodeClientFrame(text, DEFAULT_FRAME_LIMITS);
    assert.ok(decoded.ok, JSON.stringify(decoded));
    assert.equal(decoded.frame.op, "send");
    const frame = decoded.frame as unknown as { to: string; data: { seq: number; t: number; pad: string } };
    assert.equal(frame.to, `user:${receiverUser(run, 7)}`);
    assert.equal(frame.data.seq, 42);
    assert.equal(frame.data.t, 123.457, "written with microsecond precision");
    const dataBytes = JSON.stringify(frame.data).length;
    if (payloadBytes >= 50) assert.equal(dataBytes, payloadBytes);
  }
});

test("server messages: the fields the generator reads, and never a throw", () => {
  const table: readonly [text: string, expected: ReturnType<typeof parseServerMessage>][] = [
    ['{"op":"welcome","user":"u","node":"gateway-1"}', { op: "welcome", node: "gateway-1", recovered: null }],
    ['{"op":"welcome","node":"g","recovered":true}', { op: "welcome", node: "g", recovered: true }],
    [
      '{"op":"redirect","url":"ws://127.0.0.1:8082/v1/ws"}',
      { op: "redirect", url: "ws://127.0.0.1:8082/v1/ws" },
    ],
    ['{"op":"ack","id":"a","ok":true,"cursor":"e:1:2"}', { op: "ack", id: "a", ok: true }],
    [
      '{"op":"ack","id":"a","ok":false,"error":{"code":"rate_limited","message":"m"}}',
      { op: "ack", id: "a", ok: false, code: "rate_limited" },
    ],
    ['{"op":"ack","id":"a","ok":false}', { op: "ack", id: "a", ok: false, code: "unknown" }],
    ['{"op":"event","id":"x","data":{"t":12.5,"seq":1}}', { op: "event", id: "x", sendTimeMs: 12.5 }],
    ['{"op":"event","id":"x","data":"text"}', { op: "event", id: "x", sendTimeMs: null }],
    [
      '{"op":"error","code":"unauthorized","message":"bad"}',
      { op: "error", code: "unauthorized", message: "bad" },
    ],
    ['{"op":"ping","id":"p"}', { op: "ping", id: "p" }],
    ['{"op":"pong"}', { op: "other", name: "pong" }],
    ['{"op":"ack","ok":true}', { op: "invalid" }],
    ['{"op":"redirect"}', { op: "invalid" }],
    ["[1]", { op: "invalid" }],
    ["null", { op: "invalid" }],
    ["{", { op: "invalid" }],
    ['{"op":3}', { op: "invalid" }],
  ];
  for (const [text, expected] of table) assert.deepEqual(parseServerMessage(text), expected, text);
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      parseServerMessage(text);
    }),
    runs,
  );
});

// ---- loopback ----

test("loopback hosts, target URLs and source addresses", () => {
  for (const h of ["localhost", "LOCALHOST", "a.localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  for (const h of ["0.0.0.0", "10.0.0.1", "128.0.0.1", "::", "::2", "example.com", "127.0.0.1.nip.io", ""]) {
    assert.ok(!isLoopbackHost(h), h);
  }
  assert.ok(checkTargetUrl("ws://127.0.0.1:1/v1/ws", false).ok);
  assert.ok(!checkTargetUrl("ws://192.168.1.2/v1/ws", false).ok);
  assert.ok(checkTargetUrl("ws://192.168.1.2/v1/ws", true).ok);
  assert.ok(!checkTargetUrl("ftp://127.0.0.1/", true).ok);
  assert.equal(localAddressFor(0, 16, "127.0.0.1"), "127.0.0.1");
  assert.equal(localAddressFor(17, 16, "127.0.0.1"), "127.0.0.2");
  assert.equal(localAddressFor(5, 0, "127.0.0.1"), undefined);
  assert.equal(localAddressFor(5, 16, "[::1]"), undefined);
  assert.equal(localAddressFor(5, 16, "localhost"), undefined);
  assert.equal(localAddressFor(5, 16, "rt.example.com"), undefined);
});

// ---- tracker ----

function tracker(pairs = 2, maxSeqPerPair = 10): Tracker {
  return new Tracker({
    pairs,
    maxSeqPerPair,
    measureStartMs: 1000,
    measureEndMs: 2000,
    highestLatencyUs: 60e6,
  });
}

test("tracker: a clean run has no loss, duplicates or reordering; latency from the payload time", () => {
  const t = tracker();
  for (let seq = 0; seq < 3; seq++) {
    const s = t.nextSeq(0)!;
    assert.equal(s, seq);
    t.onSent(0, s, 1000 + seq);
    t.onAck(0, s, true, undefined, 1002 + seq);
    t.onDelivered(0, s, 1000 + seq, 1005 + seq);
  }
  assert.deepEqual(t.pending(), { acks: 0, deliveries: 0 });
  const totals = t.totals();
  assert.equal(totals.sent, 3);
  assert.equal(totals.ackedOk, 3);
  assert.equal(totals.delivered, 3);
  assert.equal(totals.lost, 0);
  assert.equal(totals.duplicates, 0);
  assert.equal(totals.outOfOrder, 0);
  assert.deepEqual(totals.measured, { sent: 3, ackedOk: 3, ackedFailed: 0, delivered: 3 });
  assert.equal(totals.endToEndUs.p50, 5000);
  assert.equal(totals.ackUs.max, 2000);
});

test("tracker: loss, duplicates, reordering, failed and missing acks, closed receivers", () => {
  const t = tracker(3, 10);
  const send = (pair: number, at: number) => {
    const seq = t.nextSeq(pair)!;
    t.onSent(pair, seq, at);
    return seq;
  };
  // pair 0: seq 0..3; 1 is lost, 2 arrives before 0 (reorder), 3 arrives twice.
  for (let i = 0; i < 4; i++) send(0, 1100);
  for (let i = 0; i < 4; i++) t.onAck(0, i, true, undefined, 1110);
  t.onDelivered(0, 2, 1100, 1120);
  t.onDelivered(0, 0, 1100, 1121);
  t.onDelivered(0, 3, 1100, 1122);
  t.onDelivered(0, 3, 1100, 1123);
  // pair 1: one failed ack (rate_limited), one ack never comes but the event does.
  send(1, 1100);
  send(1, 1100);
  t.onAck(1, 0, false, "rate_limited", 1105);
  t.onDelivered(1, 1, 1100, 1130);
  // pair 2: acked, receiver closed, never delivered.
  send(2, 1100);
  t.onAck(2, 0, true, undefined, 1101);
  t.onReceiverClosed(2);
  // noise: unknown ids, a second ack, an event for a seq never sent.
  t.onAck(-1, -1, true, undefined, 1200);
  t.onAck(0, 0, true, undefined, 1200);
  t.onDelivered(0, 9, null, 1200);
  t.onDelivered(7, 0, null, 1200);
  assert.deepEqual(t.pending(), { acks: 1, deliveries: 2 });
  const x = t.totals();
  assert.equal(x.sent, 7);
  assert.equal(x.ackedOk, 5);
  assert.deepEqual(x.ackedFailed, { rate_limited: 1 });
  assert.equal(x.ackMissing, 1);
  assert.equal(x.delivered, 4);
  assert.equal(x.lost, 1);
  assert.equal(x.undeliveredClosedReceiver, 1);
  assert.equal(x.deliveredWithoutOkAck, 1);
  assert.equal(x.duplicates, 1);
  assert.equal(x.outOfOrder, 1);
  assert.equal(x.pairsOutOfOrder, 1);
  assert.equal(x.unknownAcks, 1);
  assert.equal(x.duplicateAcks, 1);
  assert.equal(x.foreignEvents, 2);
  assert.equal(x.closedReceivers, 1);
});

test("tracker: warmup sends are counted but not measured; intervals reset", () => {
  const t = tracker(1, 10);
  t.onSent(0, t.nextSeq(0)!, 500); // warmup
  t.onSent(0, t.nextSeq(0)!, 1500); // measured
  t.onSent(0, t.nextSeq(0)!, 2500); // after the window
  for (let i = 0; i < 3; i++) t.onDelivered(0, i, null, 1600 + i);
  const first = t.takeInterval();
  assert.equal(first.sent, 3);
  assert.equal(first.delivered, 3);
  assert.equal(first.latencyUs.count, 3);
  const second = t.takeInterval();
  assert.equal(second.sent + second.delivered + second.latencyUs.count, 0);
  const x = t.totals();
  assert.equal(x.measured.sent, 1);
  assert.equal(x.measured.delivered, 3, "rates count deliveries that arrived in the window");
  assert.equal(x.endToEndUs.count, 1, "latency counts messages sent in the window");
  assert.equal(x.endToEndUs.max, 101_000);
});

test("tracker: capacity per pair is enforced and sends must come in turn", () => {
  const t = tracker(1, 2);
  t.onSent(0, t.nextSeq(0)!, 1000);
  t.onSent(0, t.nextSeq(0)!, 1000);
  assert.equal(t.nextSeq(0), null);
  assert.throws(() => t.onSent(0, 5, 1000), RangeError);
  assert.throws(() => tracker(0, 1), RangeError);
});

test("property: every delivery is either new, a duplicate or foreign; lost + delivered-ok adds up", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ pair: fc.nat(2), ack: fc.constantFrom("ok", "fail", "none") }), { maxLength: 60 }),
      fc.array(fc.tuple(fc.nat(2), fc.nat(30)), { maxLength: 120 }),
      (sends, deliveries) => {
        const t = tracker(3, 64);
        const acked: { pair: number; seq: number; ok: boolean }[] = [];
        for (const s of sends) {
          const seq = t.nextSeq(s.pair)!;
          t.onSent(s.pair, seq, 1500);
          if (s.ack !== "none") {
            t.onAck(s.pair, seq, s.ack === "ok", "x", 1501);
            acked.push({ pair: s.pair, seq, ok: s.ack === "ok" });
          }
        }
        for (const [pair, seq] of deliveries) t.onDelivered(pair, seq, 1500, 1510);
        const x = t.totals();
        assert.equal(x.delivered + x.duplicates + x.foreignEvents, deliveries.length);
        const okCount = acked.filter((a) => a.ok).length;
        const okDelivered = okCount - x.lost;
        assert.equal(x.ackedOk, okCount);
        assert.equal(x.delivered, okDelivered + x.deliveredWithoutOkAck);
        assert.equal(t.pending().deliveries, x.lost);
        assert.equal(x.ackMissing, sends.filter((s) => s.ack === "none").length);
      },
    ),
    runs,
  );
});

// ---- /proc and versions ----

test("proc stat: utime + stime, with spaces and parentheses in the command name", () => {
  const rest = "S 1 2 3 4 5 6 7 8 9 10 1234 567 0 0 20 0 12 0 100 2000 300";
  assert.equal(parseProcStatTicks(`4242 (java) ${rest}`), 1801);
  assert.equal(parseProcStatTicks(`4242 (node (gw) x) ${rest}`), 1801);
  assert.equal(parseProcStatTicks("garbage"), null);
  assert.equal(parseProcStatTicks("1 (x) S 1 2"), null);
  assert.equal(parseKafkaVersion("<properties>\n  <kafka.version>4.1.2</kafka.version>"), "4.1.2");
  assert.equal(parseKafkaVersion("<project/>"), null);
});

// ---- report ----

function runOptions(): DirectOptions {
  const r = parseArgs(["direct", "--pairs", "20", "--rate", "500", "--duration", "10", "--warmup", "2"]);
  assert.equal(r.kind, "run");
  return (r as { options: DirectOptions }).options;
}

test("report: result JSON, warnings and summary from a run's numbers", () => {
  const t = tracker(1, 10);
  t.onSent(0, t.nextSeq(0)!, 1500);
  t.onAck(0, 0, true, undefined, 1502);
  t.onSent(0, t.nextSeq(0)!, 1500);
  t.onAck(0, 1, true, undefined, 1502);
  t.onDelivered(0, 0, 1500, 1504);
  const zero = { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0 };
  const input: RunInput = {
    runId: "0a1b2c3d",
    startedAt: "2025-01-01T00:00:00.000Z",
    commandLine: ["tsx", "loadtest/main.ts", "direct", "--secret", "<redacted>"],
    options: runOptions(),
    secretSource: "flag",
    machine: {
      cores: 2,
      cpu_model: "cpu",
      total_memory_bytes: 1,
      platform: "linux",
      os_release: "6",
      load_average_1m_at_start: 0,
      node: "v20",
      kafka_version: "4.1.2",
      git_commit: "abc1234",
    },
    measuredS: 10,
    totals: t.totals(),
    series: [],
    connections: {
      opened: 40,
      redirected: 19,
      connect_ms: 300,
      per_node: { "gateway-1": 21, "gateway-2": 19 },
      local_addresses: ["127.0.0.1"],
      unexpected_closes: {},
      error_frames: {},
      close_ms: 12,
      close_terminated: 0,
    },
    generator: {
      skipped_behind_schedule: 0,
      skipped_backpressure: 0,
      skipped_closed_sender: 0,
      tick_lateness_ms: zero,
    },
    generatorCpu: { user_s: 9, system_s: 0.5, cores_used: 0.95, whole_run_cpu_s: 10 },
    processes: [{ name: "kafka", pid: 1, cpu_s: 3, cores_used: 0.3 }],
    warnings: [],
    aborted: null,
  };
  const warnings = resultWarnings(input);
  assert.ok(warnings.some((w) => /generator used 95% of one core/.test(w)));
  assert.ok(warnings.some((w) => /1 acked messages were never delivered/.test(w)));
  const limited = resultWarnings({ ...input, totals: { ...input.totals, ackedFailed: { rate_limited: 3 } } });
  assert.ok(
    limited.some((w) => /sends failed \(rate_limited=3\).*add --pairs/.test(w)),
    limited.join("\n"),
  );
  const r = buildResult({ ...input, warnings });
  assert.equal(r.totals.lost, 1);
  assert.equal(r.measured.acked_per_s, 0.2);
  assert.equal(r.measured.end_to_end_latency_ms.p50, 4);
  assert.equal(r.parameters.token_secret, "flag");
  assert.ok(!JSON.stringify(r).includes("hunter2"));
  const text = summaryText(r, "loadtest/results/x.json");
  assert.match(text, /lost 1/);
  assert.match(text, /kafka=3s \(0\.30 cores\)/);
  assert.match(text, /WARNING: the load generator used 95%/);
  const line = progressLine({
    second: 3,
    phase: "measure",
    interval: t.takeInterval(),
    measuredP99Us: 4000,
    failures: 0,
    unexpectedCloses: 0,
    pendingAcks: 0,
    pendingDeliveries: 1,
  });
  assert.match(line, /\[ {3}3s measure\].*sent\/s 2.*p99 4\.0 ms \(run 4\.0 ms\)/);
});
