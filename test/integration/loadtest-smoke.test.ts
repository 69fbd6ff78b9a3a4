/**
 * Smoke runs of every load test scenario, end to end through `loadtest/main.ts` as a user runs
 * them. `room`, `broadcast`, `connect`, `storm` and `churn` bring up their own router and
 * gateways on the test Kafka; `direct` loads a gateway the test starts, as it would a running
 * cluster. A few hundred clients, a few seconds of load; each must report nothing lost, sane
 * counts and an HTML report.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gatewayEnv, startGatewayProc, waitAllReady } from "../helpers/gateway-proc.ts";
import { testBrokers, testKafka } from "../helpers/kafka.ts";
import { runTs } from "../helpers/proc.ts";
import { TEST_SECRET } from "../helpers/ws-client.ts";

const RUN_MAX_MS = 240_000;
const dir = mkdtempSync(join(tmpdir(), "rt-loadtest-smoke-"));

after(() => rmSync(dir, { recursive: true, force: true }));

// Results are read dynamically; their shape is tested in test/unit/loadtest-fanout.test.ts.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function loadtest(
  scenario: string,
  flags: string[],
): Promise<{ code: number; result: Json; output: string }> {
  const out = join(dir, `${scenario}.json`);
  // direct loads running gateways and takes no brokers.
  const brokers = scenario === "direct" ? [] : ["--brokers", testBrokers().join(",")];
  const proc = runTs("loadtest/main.ts", [scenario, ...brokers, ...flags, "--out", out], {});
  const timer = setTimeout(() => void proc.stop("SIGINT", 60_000), RUN_MAX_MS);
  const code = await proc.exited();
  clearTimeout(timer);
  let result: unknown = null;
  try {
    result = JSON.parse(readFileSync(out, "utf8"));
  } catch {
    assert.fail(`no result file (exit ${code}):\n${proc.output().slice(-4000)}`);
  }
  return { code, result, output: proc.output() };
}

test("room: 300 members in two rooms on two gateways get every message exactly once", async () => {
  const {
    code,
    result: r,
    output,
  } = await loadtest("room", [
    "--members=300",
    "--rooms=2",
    "--gateways=2",
    "--generators=2",
    "--partitions=6",
    "--room-partitions=2",
    "--rate=20",
    "--warmup=1",
    "--duration=4",
    "--grace=20",
  ]);
  assert.equal(code, 0, output.slice(-4000));
  assert.equal(r.schema, "rt-loadtest-room/1");
  assert.equal(r.completed, true);
  assert.equal(r.connect.connected, 300);
  assert.deepEqual(
    r.connect.per_generator.map((g: { clients: number }) => g.clients),
    [150, 150],
  );
  assert.equal(r.join.joined, 302, "300 members and a sender per room");
  assert.equal(r.sends.sent, 100, "20 msgs/s for 5 s");
  assert.equal(r.sends.accepted, 100);
  // 50 messages per room, to its 150 members and its sender.
  assert.equal(r.totals.expected_deliveries, 100 * 151);
  assert.equal(r.totals.delivered, r.totals.expected_deliveries);
  assert.equal(r.totals.lost, 0);
  assert.equal(r.totals.duplicates, 0);
  assert.equal(r.totals.out_of_order, 0);
  assert.ok(r.measured.delivered_per_s > 1000, `delivered/s ${r.measured.delivered_per_s}`);
  assert.ok(r.measured.end_to_end_latency_ms.count > 0);
  assert.ok(r.measured.end_to_end_latency_ms.p50 > 0);
  const names = r.cpu.processes.map((p: { name: string }) => p.name).sort();
  assert.deepEqual(names, ["gen1", "gen2", "gw1", "gw2", "main", "router"]);
  assert.equal(r.teardown.processes_left_running, 0);
  assert.ok(r.teardown.topics_deleted >= 1);
  assert.match(r.limited_by, /./);
});

test("broadcast: 300 clients on three gateways get every broadcast once", async () => {
  const {
    code,
    result: r,
    output,
  } = await loadtest("broadcast", [
    "--clients=300",
    "--gateways=3",
    "--generators=2",
    "--partitions=6",
    "--broadcasts=3",
    "--interval=1",
    "--grace=10",
  ]);
  assert.equal(code, 0, output.slice(-4000));
  assert.equal(r.schema, "rt-loadtest-broadcast/1");
  assert.equal(r.completed, true);
  assert.equal(r.connect.connected, 300);
  assert.equal(Object.keys(r.connect.per_node).length, 3);
  assert.deepEqual(r.probes.covered, r.probes.nodes);
  assert.equal(r.totals.broadcasts_accepted, 3);
  assert.equal(r.totals.expected_deliveries, 900);
  assert.equal(r.totals.delivered, 900);
  assert.equal(r.totals.missed, 0);
  assert.equal(r.totals.duplicates, 0);
  for (const b of r.broadcasts) {
    assert.equal(b.received, 300);
    assert.equal(b.missed, 0);
    assert.ok(b.time_to_last_ms > 0, `time to last ${b.time_to_last_ms}`);
    assert.ok(b.latency_ms.p50 <= b.latency_ms.p99 && b.latency_ms.p99 <= b.time_to_last_ms);
  }
  assert.equal(r.teardown.processes_left_running, 0);
});

test("connect: 400 idle connections on two gateways from two generators are held, and what they cost is read", async () => {
  const {
    code,
    result: r,
    output,
  } = await loadtest("connect", [
    "--clients=400",
    "--gateways=2",
    "--generators=2",
    "--hold=3",
    "--sample-every=1",
    "--ping-interval-ms=4000",
  ]);
  assert.equal(code, 0, output.slice(-4000));
  assert.equal(r.schema, "rt-loadtest-connect/1");
  assert.equal(r.completed, true);
  assert.match(r.plan, /using 2 generator processes \(about 200 sockets each\) and 2 gateways/);
  assert.equal(r.connect.connected, 400);
  assert.equal(r.connect.failed, 0);
  assert.equal(Object.keys(r.connect.per_node).length, 2);
  assert.ok(r.connect.local_addresses.length > 1, "source addresses rotate over 127.0.0.x");
  assert.equal(r.connect.connect_ms.count, 400);
  assert.equal(r.hold.held_at_start, 400);
  assert.equal(r.hold.held_at_end, 400);
  assert.equal(r.hold.unexpected_drops, 0);
  assert.equal(r.memory.gateways.length, 2);
  assert.equal(r.memory.total.connections, 400);
  for (const g of r.memory.gateways) {
    assert.ok(g.before.rss_bytes > 0 && g.after.rss_bytes > 0, "RSS read from the gateway's /metrics");
    assert.ok(g.before.heap_used_bytes > 0 && g.after.heap_used_bytes > 0, "heap read from /metrics");
    assert.equal(typeof g.rss_per_connection_bytes, "number");
  }
  const hold = r.series.filter((p: { phase: string }) => p.phase === "hold");
  assert.ok(hold.length >= 3);
  assert.ok(hold.some((p: { gateways_rss_mib: number | null }) => p.gateways_rss_mib !== null));
  assert.equal(r.teardown.processes_left_running, 0);
  const html = readFileSync(join(dir, "connect.html"), "utf8");
  assert.match(html, /^<!doctype html>/);
  assert.match(html, /<svg /);
  assert.doesNotMatch(html, /<script/);
});

test("storm: 300 clients dropped at once all resume from their cursors and lose nothing", async () => {
  const {
    code,
    result: r,
    output,
  } = await loadtest("storm", [
    "--clients=300",
    "--gateways=2",
    "--generators=2",
    "--messages-before=2",
    "--messages-during=3",
    "--resume-timeout=60",
  ]);
  assert.equal(code, 0, output.slice(-4000));
  assert.equal(r.schema, "rt-loadtest-storm/1");
  assert.equal(r.completed, true);
  assert.equal(r.connect.connected, 300);
  assert.equal(r.before.delivered, 600);
  assert.equal(r.drop.dropped, 300);
  assert.equal(r.during.written, 900);
  assert.equal(r.resume.dropped, 300);
  assert.equal(r.resume.resumed, 300);
  assert.equal(r.resume.not_resumed, 0);
  assert.equal(r.resume.recovered_true, 300);
  assert.equal(r.resume.caught_up, 300);
  assert.equal(r.resume.to_welcome_ms.count, 300);
  assert.ok(r.resume.to_welcome_ms.p50 <= r.resume.to_welcome_ms.max);
  assert.equal(r.resume.to_caught_up_ms.count, 300);
  assert.deepEqual(r.messages, { expected: 1500, received: 1500, lost: 0, duplicates: 0 });
  assert.equal(typeof r.overload.upgrades_refused_total, "number");
  assert.ok(r.series.length >= 1);
  assert.equal(r.teardown.processes_left_running, 0);
  assert.match(readFileSync(join(dir, "storm.html"), "utf8"), /Time from the storm to each welcome/);
});

test("connect: a plan one generator process cannot hold is refused before anything starts", async () => {
  const proc = runTs(
    "loadtest/main.ts",
    [
      "connect",
      "--brokers",
      testBrokers().join(","),
      "--clients=30000",
      "--generators=1",
      "--out",
      join(dir, "refused.json"),
    ],
    {},
  );
  const code = await proc.exited();
  assert.equal(code, 1);
  assert.match(proc.output(), /30000 connections are more than one process allows/);
  assert.match(
    proc.output(),
    /--generators: 30000 clients over 1 generator processes .* use --generators 2 or more/,
  );
  assert.doesNotMatch(proc.output(), /starting a router/);
});

test("direct: 60 pairs through a running gateway, every send acked and delivered once", async () => {
  const t = await testKafka();
  const gw = await startGatewayProc(gatewayEnv(t.brokers, t.prefix, { RT_GATEWAY_NODE_ID: "direct-smoke" }));
  try {
    await waitAllReady([gw]);
    const {
      code,
      result: r,
      output,
    } = await loadtest("direct", [
      `--gateway=${gw.url}`,
      `--secret=${TEST_SECRET}`,
      "--pairs=60",
      "--rate=300",
      "--warmup=1",
      "--duration=4",
      "--grace=10",
      "--local-addresses=4",
      `--pids=gw1=${gw.proc.child.pid}`,
    ]);
    assert.equal(code, 0, output.slice(-4000));
    assert.equal(r.scenario, "direct");
    assert.equal(r.completed, true);
    assert.equal(r.totals.sent, 1500, "300/s for 5 s, warmup included");
    assert.equal(r.totals.acked_ok, r.totals.sent);
    assert.equal(r.totals.delivered, r.totals.sent);
    assert.equal(r.totals.lost, 0);
    assert.equal(r.totals.duplicates, 0);
    const e2e = r.measured.end_to_end_latency_ms;
    assert.ok(e2e.count > 0 && e2e.p50 <= e2e.max);
    assert.ok(
      r.cpu.processes.some((p: Json) => p.name === "gw1" && p.cpu_s > 0),
      "the gateway's CPU is read",
    );
    assert.doesNotMatch(JSON.stringify(r.command_line), new RegExp(TEST_SECRET), "the secret is redacted");
    assert.match(readFileSync(join(dir, "direct.html"), "utf8"), /<svg/);
  } finally {
    await gw.proc.stop("SIGTERM", 20_000);
    await t.cleanup();
  }
});

test("churn: one of two gateways SIGKILLed mid-run; its clients resume and nothing is lost", async () => {
  const {
    code,
    result: r,
    output,
  } = await loadtest("churn", [
    "--clients=200",
    "--gateways=2",
    "--connect-rate=200",
    "--rate=100",
    "--warmup=2",
    "--duration=14",
    "--kill-after=5",
    "--grace=20",
    "--session-timeout-ms=3000",
    "--partitions=4",
    "--local-addresses=4",
  ]);
  assert.equal(code, 0, output.slice(-4000));
  assert.equal(r.scenario, "churn");
  assert.equal(r.completed, true);
  assert.equal(r.connect.connected, 200);
  assert.equal(r.totals.sent, 1400);
  assert.equal(
    r.totals.acked_ok +
      Object.values(r.totals.acked_failed as Record<string, number>).reduce((a, b) => a + b, 0),
    1400,
  );
  assert.equal(r.totals.lost, 0);
  assert.equal(r.totals.duplicates, 0);
  const kill = r.disruptions.find((d: Json) => d.name.startsWith("SIGKILL"));
  assert.ok(kill !== undefined, JSON.stringify(r.disruptions));
  assert.ok(kill.affected > 0);
  assert.equal(kill.resumed, kill.affected, "every client of the killed gateway came back");
  assert.equal(kill.to_welcome_ms.count, kill.affected);
  assert.equal(r.targets.lost_met, true);
  assert.equal(r.sessions_at_end.open, 200);
  assert.equal(r.teardown.services_left_running, 0);
  assert.match(readFileSync(join(dir, "churn.html"), "utf8"), /<svg/);
});
