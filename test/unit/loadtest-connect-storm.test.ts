/** The pure parts of the `connect` and `storm` load tests, and of every scenario's HTML report. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseArgs } from "../../loadtest/args.ts";
import type { ConnectOptions, StormOptions } from "../../loadtest/connect-args.ts";
import { connectPlan } from "../../loadtest/connect.ts";
import { memoryRow, memoryTotal } from "../../loadtest/connect-report.ts";
import { latencyHistogram } from "../../loadtest/fanout-tracker.ts";
import type { StormReport } from "../../loadtest/fanout-ipc.ts";
import { byLabel, httpBase, parsePrometheus, readingOf, sumOf } from "../../loadtest/gateway-metrics.ts";
import { numAt, reportPage } from "../../loadtest/report-charts.ts";
import { escapeHtml, niceCeil, renderChart, renderPage } from "../../loadtest/report-html.ts";
import { parseListenDrops } from "../../loadtest/proc-stat.ts";
import { mergeStormReports } from "../../loadtest/storm-report.ts";
import { backoffMs, failureReason, StormTracker } from "../../loadtest/storm-tracker.ts";

function parse(argv: string[]): ConnectOptions | StormOptions {
  const r = parseArgs(argv);
  if (r.kind !== "run") throw new Error(`expected options, got ${JSON.stringify(r)}`);
  if (r.options.scenario !== "connect" && r.options.scenario !== "storm") throw new Error("wrong scenario");
  return r.options;
}

function error(argv: string[]): string {
  const r = parseArgs(argv);
  if (r.kind !== "error") throw new Error(`expected an error for ${argv.join(" ")}`);
  return r.message;
}

test("connect flags: gateways, generators and partitions grow with the clients", () => {
  const table: readonly [clients: number, gateways: number, generators: number, partitions: number][] = [
    [300, 1, 1, 12],
    [10_000, 1, 1, 12],
    [16_001, 2, 2, 16],
    [20_000, 2, 2, 16],
    [100_000, 7, 10, 56],
  ];
  for (const [clients, gateways, generators, partitions] of table) {
    const o = parse(["connect", `--clients=${clients}`]);
    assert.deepEqual(
      [o.gateways, o.generators, o.partitions],
      [gateways, generators, partitions],
      `${clients}`,
    );
  }
  const o = parse([
    "connect",
    "--clients",
    "500",
    "--gateways",
    "3",
    "--hold",
    "2.5",
    "--ping-interval-ms",
    "5000",
  ]);
  assert.equal(o.scenario, "connect");
  assert.deepEqual([o.gateways, o.partitions, o.holdS], [3, 24, 2.5]);
  assert.equal((o as ConnectOptions).pingIntervalMs, 5000);
  assert.match(error(["connect", "--ping-interval-ms", "1000"]), /^--ping-interval-ms: 1000 is out of range/);
  assert.match(error(["connect", "--clients", "0"]), /^--clients:/);
  assert.match(error(["connect", "--gateways", "20", "--partitions", "8"]), /^--gateways:/);
  assert.match(error(["connect", "--rate", "3"]), /unknown flag --rate for connect/);
  assert.equal(
    (parse(["connect", "--gateway-node-options=--max-semi-space-size=1  --expose-gc"]) as ConnectOptions)
      .gatewayNodeOptions,
    "--max-semi-space-size=1 --expose-gc",
  );
  assert.match(error(["connect", "--gateway-node-options=--x;rm -rf /"]), /^--gateway-node-options:/);
  assert.match(error(["connect", "--gateway-node-options=nope"]), /^--gateway-node-options:/);
});

test("storm flags: messages, spread and backoff are checked against each other", () => {
  const o = parse(["storm", "--clients=300", "--messages-before=2", "--messages-during=4"]) as StormOptions;
  assert.deepEqual(
    [o.messagesBefore, o.messagesDuring, o.reconnectSpreadMs, o.resumeTimeoutS, o.handshakesInFlight],
    [2, 4, 0, 120, 1000],
  );
  assert.equal((parse(["storm", "--handshakes-in-flight=250"]) as StormOptions).handshakesInFlight, 250);
  assert.match(error(["storm", "--handshakes-in-flight", "0"]), /^--handshakes-in-flight:/);
  assert.match(error(["storm", "--handshakes-in-flight", "20000"]), /^--handshakes-in-flight:/);
  const prof = parse([
    "storm",
    "--gateway-cpu-prof=/tmp/a",
    "--generator-cpu-prof",
    "/tmp/b",
  ]) as StormOptions;
  assert.deepEqual([prof.gatewayCpuProfDir, prof.generatorCpuProfDir], ["/tmp/a", "/tmp/b"]);
  assert.equal(o.generatorCpuProfDir, null);
  assert.match(error(["storm", "--generator-cpu-prof="]), /^--generator-cpu-prof:/);
  assert.match(error(["storm", "--messages-before", "0"]), /^--messages-before:/);
  assert.match(
    error(["storm", "--messages-before", "900", "--messages-during", "200"]),
    /^--messages-during:/,
  );
  assert.match(error(["storm", "--backoff-base-ms", "500", "--backoff-cap-ms", "100"]), /^--backoff-cap-ms:/);
  assert.match(
    error(["storm", "--reconnect-spread-ms", "10000", "--resume-timeout", "5"]),
    /^--resume-timeout: must be longer/,
  );
});

test("connect plan says how many processes, and when one process is not enough", () => {
  const plan = connectPlan({ clients: 100_000, generators: 10, gateways: 7 }, 20_000);
  assert.match(plan, /ulimit -n 20000: one generator holds at most 19800 sockets, one gateway 19700/);
  assert.match(plan, /100000 connections are more than one process allows/);
  assert.match(plan, /10 generator processes \(about 10000 sockets each\) and 7 gateways \(about 14286 each/);
  assert.doesNotMatch(connectPlan({ clients: 300, generators: 1, gateways: 1 }, 20_000), /more than one/);
  assert.match(
    connectPlan({ clients: 300, generators: 1, gateways: 1 }, null),
    /^open files per process unknown/,
  );
});

const METRICS = `# HELP process_memory_usage Resident set size
# TYPE process_memory_usage gauge
process_memory_usage 132341760
v8js_memory_heap_used{v8js_heap_space_name="new_space"} 1000
v8js_memory_heap_used{v8js_heap_space_name="old_space"} 20000
rt_ws_upgrades_refused_total{rt_reason="at_capacity"} 3
rt_ws_upgrades_refused_total{rt_reason="draining"} 0
rt_ws_closes_total{rt_close_reason="hello_timeout"} 2
rt_ws_closes_total{rt_close_reason="slow"} 0
weird{a="x \\" y"} 1.5e3
not a sample
`;

test("gateway metrics: memory, refusals and closes read from Prometheus text", () => {
  const samples = parsePrometheus(METRICS);
  assert.equal(sumOf(samples, "process_memory_usage"), 132341760);
  assert.equal(sumOf(samples, "v8js_memory_heap_used"), 21000);
  assert.equal(sumOf(samples, "absent"), null);
  assert.deepEqual(byLabel(samples, "weird", "a"), { 'x " y': 1500 });
  assert.deepEqual(readingOf(samples), {
    rssBytes: 132341760,
    heapUsedBytes: 21000,
    upgradesRefused: { at_capacity: 3, draining: 0 },
    closes: { hello_timeout: 2 },
  });
  assert.equal(httpBase("ws://127.0.0.1:8081/v1/ws"), "http://127.0.0.1:8081");
  assert.equal(httpBase("wss://gw.example:443/v1/ws"), "https://gw.example");
});

test("memory per connection: deltas over live sessions, per gateway and in all", () => {
  const a = memoryRow(
    "gw1",
    1000,
    { rss_bytes: 100e6, heap_used_bytes: 30e6 },
    { rss_bytes: 102e6, heap_used_bytes: 31e6 },
  );
  assert.equal(a.rss_per_connection_bytes, 2000);
  assert.equal(a.heap_per_connection_bytes, 1000);
  const b = memoryRow(
    "gw2",
    3000,
    { rss_bytes: 100e6, heap_used_bytes: 30e6 },
    { rss_bytes: 103e6, heap_used_bytes: null },
  );
  assert.equal(b.rss_per_connection_bytes, 1000);
  assert.equal(b.heap_per_connection_bytes, null);
  assert.equal(memoryRow("gw3", 0, a.before, a.after).rss_per_connection_bytes, null);
  assert.deepEqual(memoryTotal([a, b]), {
    connections: 4000,
    rss_delta_bytes: 5e6,
    heap_delta_bytes: null,
    rss_per_connection_bytes: 1250,
    heap_per_connection_bytes: null,
    rss_incremental_per_connection_bytes: null,
    heap_incremental_per_connection_bytes: null,
  });
  // With a reading at 200 connections: growth that came once, early, is left out.
  const early = { rss_bytes: 101.5e6, heap_used_bytes: 30.2e6, connections: 200 };
  const c = memoryRow("gw1", 1000, a.before, a.after, early);
  assert.equal(c.rss_incremental_per_connection_bytes, 625);
  assert.equal(c.heap_incremental_per_connection_bytes, 1000);
  assert.equal(c.rss_per_connection_bytes, 2000);
  const d = memoryRow("gw2", 600, a.before, { rss_bytes: 101.75e6, heap_used_bytes: 30.5e6 }, early);
  const t = memoryTotal([c, d]);
  assert.equal(t.rss_incremental_per_connection_bytes, Math.round((0.5e6 + 0.25e6) / 1200));
  assert.equal(t.heap_incremental_per_connection_bytes, Math.round((0.8e6 + 0.3e6) / 1200));
  assert.equal(
    memoryRow("gw3", 100, a.before, a.after, { ...early, connections: 100 })
      .rss_incremental_per_connection_bytes,
    null,
  );
});

test("storm tracker: cursor follows the events, duplicates and strangers are counted apart", () => {
  const t = new StormTracker(100, 2, 3);
  assert.equal(t.cursor(0), undefined);
  assert.equal(t.onEvent(0, 100, 0, "e:1:5"), "new");
  assert.equal(t.onEvent(0, 100, 0, "e:1:5"), "duplicate");
  assert.equal(t.onEvent(0, 101, 1, "e:1:6"), "foreign", "another client's event");
  assert.equal(t.onEvent(0, 100, 3, "e:1:7"), "foreign", "past the slots");
  assert.equal(t.cursor(0), "e:1:7");
  assert.equal(t.onEvent(1, 101, 2, undefined), "new");
  assert.deepEqual([t.received(0), t.received(1), t.delivered, t.duplicates, t.foreign], [1, 1, 2, 1, 2]);
  assert.deepEqual(
    t.totals(3, () => true),
    { expected: 6, received: 2, missing: 4 },
  );
  assert.deepEqual(
    t.totals(3, (k) => k === 1),
    { expected: 3, received: 1, missing: 2 },
  );
});

test("storm: failure reasons and the backoff window", () => {
  const table: readonly [string, string][] = [
    ["ws://x: HTTP 503 instead of a WebSocket upgrade", "http_503"],
    ["ws://x closed the socket (1013 try again)", "close_1013"],
    ["ws://x: connect ECONNREFUSED 127.0.0.1:1", "econnrefused"],
    ["no welcome within 20000 ms from ws://x", "timeout"],
    ["something else", "other"],
  ];
  for (const [message, key] of table) assert.equal(failureReason(message), key, message);
  fc.assert(
    fc.property(
      fc.nat(100),
      fc.integer({ min: 1, max: 10_000 }),
      fc.integer({ min: 1, max: 60_000 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (attempt, base, cap, r) => {
        const ms = backoffMs(attempt, base, cap, r);
        return Number.isInteger(ms) && ms >= 0 && ms <= Math.min(cap, base * 2 ** Math.min(30, attempt));
      },
    ),
  );
});

function report(over: Partial<StormReport>): StormReport {
  const h = latencyHistogram(1e9);
  return {
    clients: 10,
    dropped: 10,
    resumed: 10,
    recoveredTrue: 10,
    recoveredFalse: 0,
    attempts: 10,
    failures: {},
    firstFailure: null,
    toWelcomeUs: h.toSparse(),
    toCaughtUpUs: h.toSparse(),
    caughtUp: 10,
    expected: 60,
    received: 60,
    lost: 0,
    duplicates: 0,
    closesAfterResume: {},
    wallMs: 100,
    ...over,
  };
}

test("storm reports of several generators add up", () => {
  const h = latencyHistogram(1e9);
  h.record(5_000);
  h.record(9_000);
  const m = mergeStormReports(
    [
      report({ toWelcomeUs: h.toSparse(), failures: { http_503: 2 }, attempts: 12 }),
      report({
        resumed: 8,
        recoveredTrue: 7,
        recoveredFalse: 1,
        lost: 4,
        received: 56,
        failures: { http_503: 1, timeout: 1 },
        firstFailure: "x",
        wallMs: 300,
      }),
    ],
    1e9,
  );
  assert.deepEqual(
    [m.resume.dropped, m.resume.resumed, m.resume.not_resumed, m.resume.recovered_false, m.resume.attempts],
    [20, 18, 2, 1, 22],
  );
  assert.deepEqual(m.resume.failed_attempts, { http_503: 3, timeout: 1 });
  assert.equal(m.resume.first_failure, "x");
  assert.equal(m.resume.wall_ms, 300);
  assert.equal(m.resume.to_welcome_ms.count, 2);
  assert.ok(m.resume.to_welcome_ms.max >= 9 && m.resume.to_welcome_ms.max < 9.1);
  assert.deepEqual(m.messages, { expected: 120, received: 116, lost: 4, duplicates: 0 });
});

test("html: escaping, nice axis bounds, charts that break at gaps", () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;");
  const table: readonly [number, number][] = [
    [0, 1],
    [0.3, 0.5],
    [1, 1],
    [1.01, 2],
    [2.2, 2.5],
    [7, 10],
    [980, 1000],
    [1001, 2000],
  ];
  for (const [v, nice] of table) assert.equal(niceCeil(v), nice, `${v}`);
  fc.assert(
    fc.property(
      fc.double({ min: 1e-6, max: 1e12, noNaN: true }),
      (v) => niceCeil(v) >= v * (1 - 1e-9) && niceCeil(v) <= v * 2.5 + 1e-9,
    ),
  );
  const svg = renderChart({
    title: "p99 <ms>",
    unit: "ms",
    x: [0, 1, 2, 3, 4],
    series: [
      { name: "a", values: [1, 2, null, 4, 5] },
      { name: "b&c", values: [null, 3, null, null, null] },
    ],
    markers: [{ x: 2, label: "kill" }],
  });
  assert.match(svg, /^<figure><figcaption>p99 &#60;ms&#62; \(ms\)<\/figcaption><svg /);
  assert.equal((svg.match(/<path d="M/g) ?? []).length, 1, "one path for a, none for the lone point of b");
  assert.equal((svg.match(/d="M[^"]*M/g) ?? []).length, 1, "the gap in a starts a new segment");
  assert.equal((svg.match(/<circle /g) ?? []).length, 1, "b's single point is a dot");
  assert.match(svg, /kill<\/text>/);
  assert.match(svg, /b&#38;c/);
  const empty = renderChart({ title: "none", unit: "", x: [], series: [] });
  assert.match(empty, /<svg /);
});

test("html report: every scenario's result gives throughput and latency charts, nothing fetched", () => {
  const machine = {
    cores: 2,
    cpu_model: "cpu",
    total_memory_bytes: 2 ** 34,
    platform: "linux",
    os_release: "6",
    node: "v20",
    kafka_version: "4.1.2",
    git_commit: "abc",
    load_average_1m_at_start: 0.1,
  };
  const lat = { count: 1, p50: 1, p90: 2, p99: 3, max: 4 };
  const results: Record<string, unknown> = {
    "rt-loadtest-direct/1": { series: [{ second: 0, sent: 1, acked_ok: 1, delivered: 1, latency_ms: lat }] },
    "rt-loadtest-churn/1": {
      series: [
        {
          second: 0,
          sent: 1,
          acked_ok: 1,
          delivered: 1,
          latency_p99_ms: 3,
          open: 1,
          waiting: 0,
          drops: {},
          welcomes: {},
          cpu_cores: { gw1: 0.1 },
        },
      ],
    },
    "rt-loadtest-room/1": {
      series: [{ second: 0, sent: 1, accepted: 1, delivered: 5, latency_ms: lat, cores: { gw1: 0.2 } }],
    },
    "rt-loadtest-broadcast/1": {
      series: [{ second: 0, sent: 1, accepted: 1, delivered: 5, latency_ms: lat, cores: {} }],
    },
    "rt-loadtest-connect/1": {
      series: [
        {
          second: 0,
          held: 5,
          failed: 0,
          drops: 0,
          welcomed_per_s: 5,
          connect_ms: lat,
          gateways_rss_mib: null,
          gateways_heap_mib: null,
          cores: { gw1: 0.3 },
        },
      ],
    },
    "rt-loadtest-storm/1": {
      series: [
        {
          second: 0,
          live: 5,
          resumed: 5,
          failures: 0,
          resumed_per_s: 5,
          failures_per_s: 0,
          delivered: 10,
          to_welcome_ms: lat,
          cores: { gw1: 0.3 },
        },
      ],
    },
  };
  for (const [schema, body] of Object.entries(results)) {
    const page = reportPage(
      { schema, machine, command_line: ["tsx", "x"], warnings: ["w <1>"], ...(body as object) },
      "summary & text",
    );
    const titles = page.charts.map((c) => c.title).join(" | ");
    assert.match(titles, /Throughput|Connect rate/, schema);
    assert.match(titles, /latency|Time from the storm/i, schema);
    for (const c of page.charts) for (const s of c.series) assert.equal(s.values.length, c.x.length);
    const html = renderPage(page);
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /<script|https?:\/\//, "self-contained: no script, no URL");
    assert.match(html, /w &#60;1&#62;/);
    assert.match(html, /summary &#38; text/);
    assert.match(html, /2 cores \(cpu\), 16\.0 GiB/);
  }
  const gap = reportPage(
    {
      schema: "rt-loadtest-direct/1",
      series: [
        { second: 0, sent: 1, acked_ok: 1, delivered: 1, latency_ms: lat },
        { second: 1, sent: 0, acked_ok: 0, delivered: 0, latency_ms: { ...lat, count: 0, p50: 0 } },
      ],
    },
    "",
  );
  const latency = gap.charts.find((c) => /latency/.test(c.title))!;
  assert.deepEqual(latency.series[0]!.values, [1, null], "a second without deliveries is a gap, not 0 ms");
  const churn = reportPage(
    {
      schema: "rt-loadtest-churn/1",
      series: [{ second: 0, sent: 1 }],
      disruptions: [
        { name: "baseline", at_s: null },
        { name: "SIGKILL gw2", at_s: 20 },
      ],
    },
    "",
  );
  assert.ok(churn.charts.length > 0);
  for (const c of churn.charts) assert.deepEqual(c.markers, [{ x: 20, label: "SIGKILL gw2" }]);
  assert.equal(numAt({ a: { b: 2 } }, "a.b"), 2);
  assert.equal(numAt({ a: { b: "2" } }, "a.b"), null);
  assert.equal(reportPage(null, "").charts.length, 0);
});

test("kernel accept-queue overflows are read from /proc/net/netstat", () => {
  const text =
    "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\nTcpExt: 0 2878 2880 5\n" +
    "IpExt: InNoRoutes\nIpExt: 0\n";
  assert.deepEqual(parseListenDrops(text), { overflows: 2878, drops: 2880 });
  assert.equal(parseListenDrops("IpExt: InNoRoutes\nIpExt: 0\n"), null);
  assert.equal(parseListenDrops("TcpExt: SyncookiesSent\nTcpExt: 0\n"), null);
});
