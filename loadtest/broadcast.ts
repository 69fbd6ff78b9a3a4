/**
 * The `broadcast` scenario: `clients` connected clients (spread over several generator
 * processes and gateways, fanout-run.ts), then `broadcasts` events published to channel `*`
 * through the router's publish API, one every `interval` seconds; each client must get each one
 * once, and the run times every arrival from the moment the publish request was made.
 *
 * Live channels are read by each gateway from the live end of rt.channels, at most once: a
 * broadcast published before a gateway's channel reader has its partitions is never delivered
 * there. So the run first publishes probe broadcasts (their own type, not measured) every
 * PROBE_EVERY_MS until a client on every gateway has received one.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { BroadcastOptions } from "./fanout-args.ts";
import {
  bracket,
  buildBroadcastResult,
  seriesLatency,
  sumWindows,
  type BroadcastResult,
  type BroadcastSent,
  type FanoutSeriesPoint,
} from "./fanout-report.ts";
import {
  commonResultFields,
  FanoutSetupError,
  now,
  runFanout,
  setupDeadlineS,
  type CpuMark,
  type FanoutContext,
} from "./fanout-run.ts";
import { BROADCAST_EVENT_TYPE, BROADCAST_TARGET, PROBE_EVENT_TYPE, publishBody } from "./fanout-protocol.ts";
import { latencyHistogram, mergeTotals } from "./fanout-tracker.ts";
import { Histogram } from "./histogram.ts";
import { messageId } from "./protocol.ts";
import { createPublishClient } from "./publish-client.ts";

const PROBE_EVERY_MS = 500;
const PROBE_MAX_MS = 60_000;
/** After the probes reached every gateway: let late probes land before measuring. */
const SETTLE_MS = 1_000;
const PUBLISH_TIMEOUT_MS = 10_000;
const TOTALS_TIMEOUT_MS = 60_000;
const TICK_MS = 10;
/** CPU is sampled this often while broadcasting, to see each burst (bounded: MAX_CPU_MARKS). */
const CPU_SAMPLE_MS = 100;
const MAX_CPU_MARKS = 36_000;
const SLACK_S = 30;

export function broadcastDeadlineS(o: BroadcastOptions): number {
  return Math.ceil(
    setupDeadlineS(o) +
      PROBE_MAX_MS / 1000 +
      SETTLE_MS / 1000 +
      o.broadcasts * o.intervalS +
      o.graceS +
      SLACK_S,
  );
}

export async function runBroadcast(
  o: BroadcastOptions,
  commandLine: readonly string[],
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string | null,
): Promise<BroadcastResult> {
  const startedAt = new Date().toISOString();
  const highestLatencyUs = (broadcastDeadlineS(o) + 60) * 1e6;
  return runFanout(
    o,
    signal,
    log,
    logFile,
    highestLatencyUs,
    () => ({ groups: 1, slots: o.broadcasts, perSlot: true, join: false }),
    (ctx) => broadcastTraffic(ctx, o, { startedAt, commandLine, highestLatencyUs }),
  );
}

async function broadcastTraffic(
  ctx: FanoutContext,
  o: BroadcastOptions,
  run: { startedAt: string; commandLine: readonly string[]; highestLatencyUs: number },
): Promise<BroadcastResult> {
  const { runId, generators: g, log, signal } = ctx;
  const publisher = await createPublishClient(
    ctx.backbone.routerUrl,
    ctx.secret,
    ctx.tokenTtlS,
    8,
    PUBLISH_TIMEOUT_MS,
  );
  try {
    // ---- probes, until every gateway with clients delivers channel events ----
    const nodes = Object.keys(ctx.connect.per_node).sort();
    const probeStart = now();
    let probes = 0;
    for (;;) {
      const covered = g.aggregate().probeNodes;
      if (nodes.every((n) => covered.has(n))) break;
      if (now() - probeStart > PROBE_MAX_MS) {
        throw new FanoutSetupError(
          `probe broadcasts reached clients on ${[...covered].join(", ") || "no gateway"} but not on ` +
            `${nodes.filter((n) => !covered.has(n)).join(", ")} within ${PROBE_MAX_MS / 1000} s`,
        );
      }
      if (signal.aborted) throw new FanoutSetupError("interrupted while probing");
      const answer = await publisher.publish(
        publishBody(`${runId}.probe.${probes}`, BROADCAST_TARGET, PROBE_EVENT_TYPE, probes, now(), 0),
      );
      if (!answer.ok) throw new FanoutSetupError(`the publish API refused a probe broadcast: ${answer.code}`);
      probes++;
      await sleep(PROBE_EVERY_MS);
    }
    const probeMs = Math.round(now() - probeStart);
    log(`probe broadcasts reached every gateway (${nodes.join(", ")}) after ${probeMs} ms, ${probes} probes`);
    await sleep(SETTLE_MS);

    // ---- the broadcasts ----
    const t0 = now() + 100;
    const lastAt = t0 + (o.broadcasts - 1) * o.intervalS * 1000;
    let graceEnd = lastAt + o.graceS * 1000;
    await g.setWindow(t0 - 1, graceEnd + 60_000);
    const sent: BroadcastSent[] = [];
    const answers: Promise<void>[] = [];
    const series: FanoutSeriesPoint[] = [];
    const tickLateness = new Histogram({ highestTrackableValue: 600_000_000, significantDigits: 2 });
    let intervalSent = 0;
    let intervalAccepted = 0;
    let second = 0;
    let aborted: string | null = null;
    const cpuStart = ctx.sampleCpu();
    const marks: CpuMark[] = [cpuStart];
    const publishedAt: number[] = [];
    const emitSecond = () => {
      const gi = g.takeInterval();
      const h = latencyHistogram(run.highestLatencyUs);
      h.addSparse(gi.latencyUs);
      const cores = ctx.coresSinceLast();
      const point: FanoutSeriesPoint = {
        second,
        phase: t0 + second * 1000 <= lastAt ? "broadcast" : "grace",
        sent: intervalSent,
        accepted: intervalAccepted,
        delivered: gi.delivered,
        latency_ms: seriesLatency(h.summary()),
        cores,
      };
      series.push(point);
      intervalSent = 0;
      intervalAccepted = 0;
      const a = g.aggregate();
      const hot = Object.entries(cores)
        .filter(([, c]) => c !== null)
        .sort((x, y) => y[1]! - x[1]!)
        .slice(0, 4)
        .map(([n, c]) => `${n} ${c!.toFixed(2)}`)
        .join(" ");
      log(
        `[${String(second).padStart(4)}s ${point.phase.padEnd(9)}]  broadcasts ${sent.length}/${o.broadcasts}  ` +
          `delivered/s ${point.delivered}  p50 ${point.latency_ms.p50.toFixed(1)} p99 ${point.latency_ms.p99.toFixed(1)} ` +
          `max ${point.latency_ms.max.toFixed(1)} ms  dup ${a.duplicates}  closed ${Object.values(a.closes).reduce((x, y) => x + y, 0)}  cores: ${hot}`,
      );
      second++;
    };
    const expected = () => sent.filter((b) => b.ok).length * ctx.connect.connected;
    log(`publishing ${o.broadcasts} broadcasts to ${BROADCAST_TARGET}, one every ${o.intervalS} s`);
    await new Promise<void>((done, fail) => {
      let lastTick = now();
      const timer = setInterval(() => {
        try {
          const t = now();
          tickLateness.record(Math.max(0, t - lastTick - TICK_MS) * 1000);
          lastTick = t;
          if (t - marks.at(-1)!.atMs >= CPU_SAMPLE_MS && marks.length < MAX_CPU_MARKS)
            marks.push(ctx.sampleCpu());
          if (signal.aborted && aborted === null) {
            aborted = "interrupted (SIGINT)";
            graceEnd = Math.min(graceEnd, t + o.graceS * 1000);
          }
          const why = g.failure();
          if (why !== null) throw new FanoutSetupError(why);
          while (
            aborted === null &&
            sent.length < o.broadcasts &&
            t >= t0 + sent.length * o.intervalS * 1000
          ) {
            const k = sent.length;
            marks.push(ctx.sampleCpu());
            const at = now();
            publishedAt.push(at);
            const entry: { -readonly [K in keyof BroadcastSent]: BroadcastSent[K] } = {
              k,
              at_s: Math.round((at - t0) / 10) / 100,
              publish_ms: null,
              ok: false,
              code: "no_answer",
            };
            sent.push(entry);
            intervalSent++;
            answers.push(
              publisher
                .publish(
                  publishBody(
                    messageId(runId, 0, k),
                    BROADCAST_TARGET,
                    BROADCAST_EVENT_TYPE,
                    k,
                    at,
                    o.payloadBytes,
                  ),
                )
                .then((answer) => {
                  entry.publish_ms = Math.round((now() - at) * 1000) / 1000;
                  entry.ok = answer.ok;
                  entry.code = answer.ok ? null : answer.code;
                  if (answer.ok) intervalAccepted++;
                }),
            );
          }
          for (let i = 0; i < 100 && t >= t0 + (second + 1) * 1000; i++) emitSecond();
          const allSent = sent.length === o.broadcasts || aborted !== null;
          if (
            allSent &&
            ((g.delivered >= expected() && sent.every((b) => b.publish_ms !== null)) || t >= graceEnd)
          ) {
            clearInterval(timer);
            done();
          }
        } catch (e) {
          clearInterval(timer);
          fail(e);
        }
      }, TICK_MS);
    });
    await Promise.all(answers);
    await sleep(1100);
    emitSecond();
    const cpu = ctx.cpuWindow(cpuStart, ctx.sampleCpu());

    // ---- totals ----
    const refused = sent.filter((b) => !b.ok).map((b) => b.k);
    const parts = await g.totals({ sent: [sent.length], refused: [refused] }, TOTALS_TIMEOUT_MS);
    const totals = mergeTotals(parts, run.highestLatencyUs);
    const times = marks.map((m) => m.atMs);
    const bursts = sent.flatMap((b) => {
      const slot = totals.slots[b.k];
      if (!b.ok || slot === undefined || slot.received === 0) return [];
      const start = publishedAt[b.k]!;
      const span = bracket(times, start, start + slot.latencyUs.max / 1000);
      return span === null ? [] : [ctx.cpuWindow(marks[span[0]]!, marks[span[1]]!)];
    });
    const agg = g.aggregate();
    const serviceLogs = ctx.serviceLogs();
    publisher.close();
    log("stopping generators and services");
    const teardown = await ctx.tearDown();
    return buildBroadcastResult({
      ...commonResultFields(ctx, run, aborted, { tickLateness, ...agg }),
      totals,
      cpu,
      series,
      serviceLogs,
      teardown,
      options: o,
      probes: { sent: probes, ms: probeMs, nodes, covered: [...agg.probeNodes].sort() },
      sent,
      deliveryCpu: sumWindows(bursts),
    });
  } finally {
    publisher.close();
  }
}
