/**
 * The `connect` scenario: how many idle connections the gateways hold, how fast they open, and
 * what each costs a gateway in memory.
 *
 * 1. Setup (fanout-run.ts): the open-files limit of every process, Kafka, a router and
 *    --gateways gateways of the run's own, then each gateway's memory from its own /metrics
 *    (the baseline).
 * 2. Connect: --generators processes open their share of --clients connections at
 *    --connect-rate, each straight to the gateway that owns the user's partition, from source
 *    addresses rotated over 127.0.0.x.
 * 3. Hold for --hold seconds, sending nothing (the gateways ping every --ping-interval-ms and the
 *    clients answer): every close is an unexpected drop; memory read every --sample-every s.
 * 4. Memory per connection: (after - baseline) / live sessions, per gateway and in all, for the
 *    RSS and for the V8 heap in use. Both readings come right after a full garbage collection
 *    (the gateways run with gc-preload.ts), so they count what live objects hold, not garbage.
 *    Then the teardown.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ConnectOptions } from "./connect-args.ts";
import {
  buildConnectResult,
  memoryRow,
  memoryTotal,
  type ConnectResult,
  type GatewayMemoryRow,
  type HoldPoint,
  type MemoryReading,
} from "./connect-report.ts";
import type { Backbone } from "./churn-backbone.ts";
import { GENERATOR_FD_OVERHEAD, GATEWAY_FD_OVERHEAD } from "./fanout-layout.ts";
import { commonResultFields, runFanout, setupDeadlineS, type FanoutContext } from "./fanout-run.ts";
import { readGateway, type GatewayReading } from "./gateway-metrics.ts";
import { Histogram } from "./histogram.ts";
import { openFilesLimit } from "./machine.ts";

const SETTLE_MS = 3_000;
const SLACK_S = 60;

export function connectDeadlineS(o: ConnectOptions): number {
  return Math.ceil(setupDeadlineS(o) + SETTLE_MS / 1000 + o.holdS + SLACK_S);
}

/** How the clients are spread over processes, in words, given the open-files limit. */
export function connectPlan(
  o: Pick<ConnectOptions, "clients" | "generators" | "gateways">,
  limit: number | null,
): string {
  const perGen = Math.ceil(o.clients / o.generators);
  const perGw = Math.ceil(o.clients / o.gateways);
  const head =
    limit === null
      ? "open files per process unknown"
      : `ulimit -n ${limit}: one generator holds at most ${limit - GENERATOR_FD_OVERHEAD} sockets, one gateway ${limit - GATEWAY_FD_OVERHEAD}`;
  const over =
    limit !== null && o.clients > limit - GATEWAY_FD_OVERHEAD
      ? `; ${o.clients} connections are more than one process allows`
      : "";
  return (
    `${head}${over}; using ${o.generators} generator processes (about ${perGen} sockets each) and ` +
    `${o.gateways} gateways (about ${perGw} each, as the partitions fall)`
  );
}

type EarlyReadings = Map<string, { reading: GatewayReading | null; connections: number | null }>;

const reading = (r: GatewayReading | null): MemoryReading => ({
  rss_bytes: r?.rssBytes ?? null,
  heap_used_bytes: r?.heapUsedBytes ?? null,
});

/** `node` arguments of the run's gateways: a full GC on SIGUSR2 (gc-preload.ts). */
export const GC_NODE_ARGS = ["--expose-gc", "--import", "./loadtest/gc-preload.ts"] as const;
/** After asking for a full GC, how long before memory is read. */
const GC_SETTLE_MS = 2_000;

/** Asks every running gateway for a full GC, then waits for it to be done. */
async function collectGarbage(backbone: Backbone): Promise<void> {
  for (const s of backbone.records()) {
    if (s.kind !== "gateway" || s.exit_code !== null) continue;
    try {
      process.kill(s.pid, "SIGUSR2");
    } catch {
      // Gone: its reading will be missing.
    }
  }
  await sleep(GC_SETTLE_MS);
}

async function readAll(backbone: Backbone, gc = false): Promise<Map<string, GatewayReading | null>> {
  if (gc) await collectGarbage(backbone);
  const gws = backbone.records().filter((s) => s.kind === "gateway" && s.url !== null);
  const got = await Promise.all(gws.map(async (g) => [g.name, await readGateway(g.url!)] as const));
  return new Map(got);
}

export async function runConnect(
  o: ConnectOptions,
  commandLine: readonly string[],
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string | null,
): Promise<ConnectResult> {
  const startedAt = new Date().toISOString();
  const limit = openFilesLimit();
  const plan = connectPlan(o, limit);
  log(`plan: ${plan}`);
  const highestLatencyUs = (connectDeadlineS(o) + 60) * 1e6;
  let baseline = new Map<string, GatewayReading | null>();
  // A reading once a tenth of the clients are in (after a full GC), for the incremental figure.
  let early: Promise<EarlyReadings> | null = null;
  return runFanout(
    o,
    signal,
    log,
    logFile,
    highestLatencyUs,
    () => ({ groups: 1, slots: 1, perSlot: false, join: false }),
    (ctx) => hold(ctx, o, { startedAt, commandLine, limit, plan, baseline, early }),
    {
      keepFailedConnects: true,
      gatewayNodeArgs: GC_NODE_ARGS,
      onConnectProgress: (backbone, connected) => {
        if (early !== null || connected < o.clients / 10) return;
        early = (async () => {
          const readings = await readAll(backbone, true);
          const out: EarlyReadings = new Map();
          for (const [name, r] of readings) {
            out.set(name, {
              reading: r,
              connections: (await backbone.gatewayStats(name))?.connections ?? null,
            });
          }
          log(`early memory reading at about ${connected} connections`);
          return out;
        })();
      },
      beforeConnect: async (backbone) => {
        baseline = await readAll(backbone, true);
        const rss = [...baseline.values()].reduce((a, r) => a + (r?.rssBytes ?? 0), 0);
        log(`gateways' memory before connecting: RSS ${Math.round(rss / 1048576)} MiB in all`);
      },
    },
  );
}

async function hold(
  ctx: FanoutContext,
  o: ConnectOptions,
  run: {
    startedAt: string;
    commandLine: readonly string[];
    limit: number | null;
    plan: string;
    baseline: Map<string, GatewayReading | null>;
    early: Promise<EarlyReadings> | null;
  },
): Promise<ConnectResult> {
  const { generators: g, backbone, log, signal } = ctx;
  const series: HoldPoint[] = ctx.connectSeries.map((p) => ({
    second: p.second,
    phase: "connect",
    held: p.connected - p.closed,
    failed: p.failed,
    drops: p.closed,
    welcomed_per_s: p.welcomed,
    connect_ms: p.connect_ms,
    gateways_rss_mib: null,
    gateways_heap_mib: null,
    cores: p.cores,
  }));
  const closedAt = () => Object.values(g.aggregate().closes).reduce((a, b) => a + b, 0);
  const closesBefore = closedAt();
  const heldAtStart = ctx.connect.connected - closesBefore;
  await sleep(SETTLE_MS);
  const offset = series.length;
  const tickLateness = new Histogram({ highestTrackableValue: 600_000_000, significantDigits: 2 });
  const holdStart = ctx.sampleCpu();
  ctx.coresSinceLast();
  let aborted: string | null = null;
  let latest = await readAll(backbone);
  log(`holding ${heldAtStart} connections for ${o.holdS} s`);
  const startMs = Date.now();
  let nextSampleMs = startMs + o.sampleEveryS * 1000;
  for (let second = 1; second <= Math.ceil(o.holdS); second++) {
    const due = startMs + second * 1000;
    const before = Date.now();
    await sleep(Math.max(0, due - before));
    tickLateness.record(Math.max(0, Date.now() - due) * 1000);
    if (signal.aborted) {
      aborted = "interrupted (SIGINT)";
      break;
    }
    const why = g.failure();
    if (why !== null) {
      aborted = why;
      break;
    }
    let rss: number | null = null;
    let heap: number | null = null;
    if (Date.now() >= nextSampleMs || second === Math.ceil(o.holdS)) {
      nextSampleMs += o.sampleEveryS * 1000;
      latest = await readAll(backbone);
      rss = [...latest.values()].reduce((a, r) => a + (r?.rssBytes ?? 0), 0) / 1048576;
      heap = [...latest.values()].reduce((a, r) => a + (r?.heapUsedBytes ?? 0), 0) / 1048576;
    }
    const a = g.aggregate();
    const drops = closedAt() - closesBefore;
    const cores = ctx.coresSinceLast();
    series.push({
      second: offset + second,
      phase: "hold",
      held: ctx.connect.connected - closedAt(),
      failed: a.connectFailed,
      drops,
      welcomed_per_s: 0,
      connect_ms: null,
      gateways_rss_mib: rss === null ? null : Math.round(rss * 10) / 10,
      gateways_heap_mib: heap === null ? null : Math.round(heap * 10) / 10,
      cores,
    });
    if (rss !== null || second % 10 === 0 || drops > 0) {
      const hot = Object.entries(cores)
        .filter(([, c]) => c !== null)
        .sort((x, y) => y[1]! - x[1]!)
        .slice(0, 3)
        .map(([n, c]) => `${n} ${c!.toFixed(2)}`)
        .join(" ");
      log(
        `[${String(second).padStart(4)}s hold   ]  held ${ctx.connect.connected - closedAt()}  drops ${drops}` +
          (rss === null ? "" : `  gateways RSS ${Math.round(rss)} MiB heap ${Math.round(heap!)} MiB`) +
          `  cores: ${hot}`,
      );
    }
  }
  const holdCpu = ctx.cpuWindow(holdStart, ctx.sampleCpu());
  const holdSeconds = Math.round((Date.now() - startMs) / 100) / 10;

  // ---- memory per connection, read now (the teardown changes it), after a full GC ----
  const early = run.early === null ? null : await run.early;
  latest = await readAll(backbone, true);
  const rows: GatewayMemoryRow[] = [];
  const gatewayCloses: Record<string, number> = {};
  for (const s of backbone.records()) {
    if (s.kind !== "gateway") continue;
    const stats = await backbone.gatewayStats(s.name);
    const after = latest.get(s.name) ?? null;
    for (const [k, v] of Object.entries(after?.closes ?? {})) gatewayCloses[k] = (gatewayCloses[k] ?? 0) + v;
    const e = early?.get(s.name);
    rows.push(
      memoryRow(
        s.name,
        stats?.connections ?? null,
        reading(run.baseline.get(s.name) ?? null),
        reading(after),
        e === undefined ? null : { ...reading(e.reading), connections: e.connections },
      ),
    );
  }
  const total = memoryTotal(rows);
  const agg = g.aggregate();
  const heldAtEnd = ctx.connect.connected - closedAt();
  const drops: Record<string, number> = {};
  for (const [k, v] of Object.entries(agg.closes)) drops[k] = v;
  const serviceLogs = ctx.serviceLogs();
  log(
    `held ${heldAtEnd}; memory per connection: RSS ${total.rss_per_connection_bytes ?? "?"} B, ` +
      `heap ${total.heap_per_connection_bytes ?? "?"} B over ${total.connections} live sessions`,
  );
  log("stopping generators and services");
  const teardown = await ctx.tearDown();
  const common = commonResultFields(ctx, run, aborted, { tickLateness, ...agg });
  const warnings = [...ctx.warnings];
  if (ctx.connect.failed > 0)
    warnings.push(`${ctx.connect.failed} connections failed (first: ${ctx.connect.first_error})`);
  if (heldAtEnd < heldAtStart) warnings.push(`${heldAtStart - heldAtEnd} connections dropped while held`);
  if (teardown.processes_left_running > 0)
    warnings.push(`${teardown.processes_left_running} processes were still running after the teardown`);
  return buildConnectResult({
    runId: ctx.runId,
    startedAt: run.startedAt,
    commandLine: run.commandLine,
    options: o,
    machine: ctx.machine,
    aborted,
    openFilesLimit: run.limit,
    plan: run.plan,
    setup: common.setup,
    connect: ctx.connect,
    connectLatency: ctx.connectLatency,
    hold: { seconds: holdSeconds, heldAtStart, heldAtEnd, drops },
    gatewayCloses,
    memory: rows,
    generatorsRssBytes: agg.rssBytes,
    cpu: { connect: ctx.connectCpu, hold: holdCpu },
    series,
    serviceLogs,
    teardown,
    warnings,
  });
}
