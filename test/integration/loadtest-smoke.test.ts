/**
 * Smoke runs of the fanout load tests, end to end through `loadtest/main.ts` as a user runs them:
 * each brings up its own router and gateways on the test Kafka, a few hundred clients from two
 * generator processes, a few seconds of traffic, and must report nothing lost and sane counts.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testBrokers } from "../helpers/kafka.ts";
import { runTs } from "../helpers/proc.ts";

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
  const proc = runTs(
    "loadtest/main.ts",
    [scenario, "--brokers", testBrokers().join(","), ...flags, "--out", out],
    {},
  );
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
    assert.ok(b.time_to_last_ms > 0 && b.time_to_last_ms < 10_000, `time to last ${b.time_to_last_ms}`);
    assert.ok(b.latency_ms.p50 <= b.latency_ms.p99 && b.latency_ms.p99 <= b.time_to_last_ms);
  }
  assert.equal(r.teardown.processes_left_running, 0);
});
