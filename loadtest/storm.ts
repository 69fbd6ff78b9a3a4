/**
 * The `storm` scenario: every client drops at once and comes back at once.
 *
 * 1. Setup (fanout-run.ts): checks, a router and gateways of the run's own, generator processes
 *    (storm-worker.ts) that connect --clients clients straight to their gateways.
 * 2. Before: the run writes --messages-before events to every client, straight to the deliveries
 *    topic as a backend does (schemas/publish.ts), and waits until every one has arrived: each
 *    client now has a cursor.
 * 3. Drop: every generator terminates all its sockets at once (no close frame); the run waits
 *    until the gateways have noticed (their live sessions reach 0), then writes
 *    --messages-during more events to every client.
 * 4. Storm: every client reconnects with its cursor (all at once, or spread over
 *    --reconnect-spread-ms), retrying failures with full-jitter backoff, until it is welcomed and
 *    has every event, or --resume-timeout passes. Measured: time from the storm to each welcome
 *    and to each client's last missing event, failed attempts by reason, events lost, and the
 *    gateways' signs of overload (refused upgrades, closes, CPU).
 * 5. Teardown, on every path.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { createLogger } from "../common/log.ts";
import { directRecord } from "../schemas/publish.ts";
import { topicNames } from "../schemas/topics.ts";
import type { StormOptions } from "./connect-args.ts";
import { connectPlan } from "./connect.ts";
import {
  commonResultFields,
  FanoutSetupError,
  runFanout,
  setupDeadlineS,
  type FanoutContext,
} from "./fanout-run.ts";
import { memberUser, PUBLISH_SERVICE } from "./fanout-protocol.ts";
import { latencyHistogram } from "./fanout-tracker.ts";
import { readGateway, type GatewayReading } from "./gateway-metrics.ts";
import { Histogram } from "./histogram.ts";
import { listenDrops, openFilesLimit } from "./machine.ts";
import { messageId } from "./protocol.ts";
import { buildStormResult, type StormPoint, type StormResult } from "./storm-report.ts";
import { STORM_EVENT_TYPE } from "./storm-tracker.ts";

const PRODUCE_CHUNK = 2_000;
const DELIVERED_WAIT_MIN_MS = 30_000;
const GATEWAYS_EMPTY_MAX_MS = 20_000;
const SLACK_S = 90;

export function stormDeadlineS(o: StormOptions): number {
  const writes = (o.clients * (o.messagesBefore + o.messagesDuring)) / 5_000;
  return Math.ceil(
    setupDeadlineS(o) +
      DELIVERED_WAIT_MIN_MS / 1000 +
      o.clients / 1000 +
      GATEWAYS_EMPTY_MAX_MS / 1000 +
      writes +
      o.resumeTimeoutS +
      SLACK_S,
  );
}

async function readAll(ctx: FanoutContext): Promise<GatewayReading[]> {
  const gws = ctx.backbone.records().filter((s) => s.kind === "gateway" && s.url !== null);
  const got = await Promise.all(gws.map((g) => readGateway(g.url!)));
  return got.filter((r): r is GatewayReading => r !== null);
}

function sumBy(readings: readonly GatewayReading[], pick: (r: GatewayReading) => Record<string, number>) {
  const out: Record<string, number> = {};
  for (const r of readings) for (const [k, v] of Object.entries(pick(r))) out[k] = (out[k] ?? 0) + v;
  return out;
}

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}

export async function runStorm(
  o: StormOptions,
  commandLine: readonly string[],
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string | null,
): Promise<StormResult> {
  const startedAt = new Date().toISOString();
  const plan = connectPlan(o, openFilesLimit());
  log(`plan: ${plan}`);
  const highestLatencyUs = (stormDeadlineS(o) + 60) * 1e6;
  return runFanout(
    o,
    signal,
    log,
    logFile,
    highestLatencyUs,
    () => ({
      groups: 1,
      slots: o.messagesBefore + o.messagesDuring,
      perSlot: false,
      join: false,
      backoffBaseMs: o.backoffBaseMs,
      backoffCapMs: o.backoffCapMs,
      handshakesInFlight: o.handshakesInFlight,
    }),
    (ctx) => storm(ctx, o, { startedAt, commandLine, plan, highestLatencyUs }),
    {
      workerScript: "loadtest/storm-worker.ts",
      ...(o.gatewayCpuProfDir === null
        ? {}
        : { gatewayNodeArgs: ["--cpu-prof", `--cpu-prof-dir=${o.gatewayCpuProfDir}`] }),
      ...(o.generatorCpuProfDir === null
        ? {}
        : { generatorNodeArgs: ["--cpu-prof", `--cpu-prof-dir=${o.generatorCpuProfDir}`] }),
    },
  );
}

async function storm(
  ctx: FanoutContext,
  o: StormOptions,
  run: { startedAt: string; commandLine: readonly string[]; plan: string; highestLatencyUs: number },
): Promise<StormResult> {
  const { generators: g, log, signal, runId } = ctx;
  const kafka = createKafka({
    brokers: o.brokers,
    clientId: "rt-loadtest-storm",
    logger: createLogger({ service: "loadtest", level: "silent" }),
  });
  const producer = await kafka.producer();
  const topic = topicNames(ctx.topicPrefix).deliveries;
  const counts = { deliveries: o.partitions, rooms: 1, channels: 1 };
  let aborted: string | null = null;
  const check = () => {
    if (signal.aborted) throw new FanoutSetupError("interrupted (SIGINT)");
    const why = g.failure();
    if (why !== null) throw new FanoutSetupError(why);
  };
  /** Writes events [from, to) to every client, in chunks; the count written. */
  const write = async (from: number, to: number): Promise<number> => {
    let written = 0;
    let chunk = [];
    for (let i = 0; i < o.clients; i++) {
      const user = memberUser(runId, i);
      for (let seq = from; seq < to; seq++) {
        const ts = Date.now();
        const r = directRecord(
          user,
          {
            id: messageId(runId, i, seq),
            sender: `service:${PUBLISH_SERVICE}`,
            type: STORM_EVENT_TYPE,
            data: `{"seq":${seq},"pad":"${"x".repeat(Math.max(0, o.payloadBytes - 20))}"}`,
            ts,
          },
          counts,
        );
        chunk.push({ key: r.key, value: r.value, partition: r.partition, timestampMs: ts });
      }
      if (chunk.length >= PRODUCE_CHUNK || i === o.clients - 1) {
        await producer.send(topic, chunk);
        written += chunk.length;
        chunk = [];
        check();
      }
    }
    return written;
  };
  const tickLateness = new Histogram({ highestTrackableValue: 600_000_000, significantDigits: 2 });
  const series: StormPoint[] = [];
  try {
    // ---- before: every client gets its first events, so it has a cursor ----
    const connected = ctx.connect.connected;
    const beforeStart = Date.now();
    const writtenBefore = await write(0, o.messagesBefore);
    const want = connected * o.messagesBefore;
    const waitUntil = Date.now() + DELIVERED_WAIT_MIN_MS + connected;
    while (g.delivered < want && Date.now() < waitUntil) {
      check();
      await sleep(200);
    }
    await sleep(1_100);
    const deliveredBefore = g.delivered;
    log(
      `before the drop: ${writtenBefore} events written, ${deliveredBefore}/${want} delivered in ${Date.now() - beforeStart} ms`,
    );
    if (deliveredBefore < want) {
      ctx.warnings.push(`only ${deliveredBefore} of ${want} events arrived before the drop`);
    }

    // ---- drop ----
    const gatewaysBefore = await readAll(ctx);
    const dropAt = Date.now();
    const dropped = await g.drop(30_000);
    let gatewaysEmptyMs: number | null = null;
    while (Date.now() - dropAt < GATEWAYS_EMPTY_MAX_MS) {
      let live = 0;
      for (const s of ctx.backbone.records()) {
        if (s.kind !== "gateway") continue;
        live += (await ctx.backbone.gatewayStats(s.name))?.connections ?? 0;
      }
      if (live === 0) {
        gatewaysEmptyMs = Date.now() - dropAt;
        break;
      }
      await sleep(100);
    }
    log(`dropped ${dropped} sockets; the gateways had no session left after ${gatewaysEmptyMs ?? "?"} ms`);
    const duringStart = Date.now();
    const writtenDuring =
      o.messagesDuring === 0 ? 0 : await write(o.messagesBefore, o.messagesBefore + o.messagesDuring);
    const duringMs = Date.now() - duringStart;
    log(`${writtenDuring} events written while the clients were away (${duringMs} ms)`);

    // ---- the storm ----
    const expected = o.messagesBefore + o.messagesDuring;
    const stormCpuStart = ctx.sampleCpu();
    const listenBefore = listenDrops();
    ctx.coresSinceLast();
    g.takeConnects();
    g.takeInterval();
    log(
      `storm: ${dropped} clients reconnect ${o.reconnectSpreadMs === 0 ? "at once" : `within ${o.reconnectSpreadMs} ms`}`,
    );
    const resumedP = g.resume(expected, o.reconnectSpreadMs, o.resumeTimeoutS * 1000);
    let done = false;
    void resumedP.then(
      () => (done = true),
      () => (done = true),
    );
    let lastResumed = 0;
    let lastFailures = 0;
    const t0 = Date.now();
    for (let second = 0; !done; second++) {
      const due = t0 + (second + 1) * 1000;
      await Promise.race([sleep(Math.max(0, due - Date.now())), resumedP.catch(() => {})]);
      tickLateness.record(Math.max(0, Date.now() - due) * 1000);
      const a = g.aggregate();
      const c = g.takeConnects();
      const h = latencyHistogram(run.highestLatencyUs);
      h.addSparse(c.connectUs);
      const s = h.summary();
      const r3 = (us: number) => Math.round(us) / 1000;
      const point: StormPoint = {
        second,
        phase: "storm",
        live: a.connected,
        resumed: a.resumed,
        failures: a.resumeFailures,
        resumed_per_s: a.resumed - lastResumed,
        failures_per_s: a.resumeFailures - lastFailures,
        delivered: g.takeInterval().delivered,
        to_welcome_ms: { count: s.count, p50: r3(s.p50), p99: r3(s.p99), max: r3(s.max) },
        cores: ctx.coresSinceLast(),
      };
      series.push(point);
      lastResumed = a.resumed;
      lastFailures = a.resumeFailures;
      const hot = Object.entries(point.cores)
        .filter(([, v]) => v !== null)
        .sort((x, y) => y[1]! - x[1]!)
        .slice(0, 3)
        .map(([n, v]) => `${n} ${v!.toFixed(2)}`)
        .join(" ");
      log(
        `[${String(second).padStart(4)}s storm  ]  resumed ${a.resumed}/${dropped} (+${point.resumed_per_s})  ` +
          `failed attempts ${a.resumeFailures} (+${point.failures_per_s})  delivered/s ${point.delivered}  ` +
          `to welcome p99 ${point.to_welcome_ms.p99} ms  cores: ${hot}`,
      );
      if (signal.aborted && aborted === null) aborted = "interrupted (SIGINT)";
    }
    const reports = await resumedP;
    const stormCpu = ctx.cpuWindow(stormCpuStart, ctx.sampleCpu());
    const listenAfter = listenDrops();
    const gatewaysAfter = await readAll(ctx);
    const agg = g.aggregate();
    const serviceLogs = ctx.serviceLogs();
    await producer.close();
    log("stopping generators and services");
    const teardown = await ctx.tearDown();
    const common = commonResultFields(ctx, run, aborted, { tickLateness, ...agg });
    const result = buildStormResult({
      runId,
      startedAt: run.startedAt,
      commandLine: run.commandLine,
      options: o,
      machine: ctx.machine,
      aborted,
      plan: run.plan,
      setup: common.setup,
      connect: ctx.connect,
      connectLatency: ctx.connectLatency,
      before: { written: writtenBefore, delivered: deliveredBefore, ms: Date.now() - beforeStart },
      drop: { dropped, gatewaysEmptyMs },
      during: { written: writtenDuring, ms: duringMs },
      reports,
      highestLatencyUs: run.highestLatencyUs,
      gateways: {
        upgradesRefused: delta(
          sumBy(gatewaysBefore, (r) => r.upgradesRefused),
          sumBy(gatewaysAfter, (r) => r.upgradesRefused),
        ),
        closes: delta(
          sumBy(gatewaysBefore, (r) => r.closes),
          sumBy(gatewaysAfter, (r) => r.closes),
        ),
      },
      cpu: { storm: stormCpu },
      listenOverflows:
        listenBefore === null || listenAfter === null ? null : listenAfter.overflows - listenBefore.overflows,
      series,
      serviceLogs,
      teardown,
      warnings: ctx.warnings,
    });
    const w = result.warnings as string[];
    if (result.resume.not_resumed > 0)
      w.push(`${result.resume.not_resumed} clients were not back by --resume-timeout`);
    if (result.resume.recovered_false > 0)
      w.push(`${result.resume.recovered_false} clients resumed with recovered: false`);
    if (result.messages.lost > 0) w.push(`${result.messages.lost} events never reached a resumed client`);
    if (teardown.processes_left_running > 0)
      w.push(`${teardown.processes_left_running} processes were still running after the teardown`);
    return result;
  } finally {
    await producer.close().catch(() => {});
  }
}
