/**
 * The churn run's traffic phase. Every 10 ms a timer sends what the open-loop schedule has due
 * (pacer.ts), each message from its pair's sender through the sender's RealtimeClient (which
 * queues it while the sender is reconnecting, as applications do), and acts on the disruption
 * schedule: one gateway gets SIGKILL or SIGTERM at --kill-after, a replacement may start later.
 * After --duration sending stops and the grace period waits for acks and deliveries. A series
 * point and a progress line per second.
 */
import { RealtimeError } from "../client/errors.ts";
import type { ChurnOptions } from "./churn-args.ts";
import { STARTUP_MAX_MS, type Backbone } from "./churn-backbone.ts";
import type { Fleet } from "./churn-fleet.ts";
import { clientUser, pairsToClient, senderOf, type ChurnPlan } from "./churn-plan.ts";
import type { ChurnSeriesPoint, DisruptionDetail } from "./churn-report.ts";
import type { SessionLog } from "./churn-sessions.ts";
import { coresBetween, cpuBetween, type CpuSampler, type Sample } from "./cpu-sampler.ts";
import { Histogram } from "./histogram.ts";
import { Pacer } from "./pacer.ts";
import { progressLine } from "./progress.ts";
import { messageId, parseMessageId } from "./protocol.ts";
import { latencyMs, type GeneratorCpu, type LatencyMs, type Phase, type ProcessCpu } from "./report.ts";
import { Tracker, type Totals } from "./tracker.ts";

const TICK_MS = 10;
const MAX_BACKLOG_MS = 1000;
const EVENT_TYPE = "lt.churn";
/** A SIGTERMed gateway drains within its RT_SHUTDOWN_GRACE_MS (20 s); past this it is killed. */
const DRAIN_WAIT_MS = 40_000;

export interface TrafficInput {
  readonly options: ChurnOptions;
  readonly runId: string;
  readonly plan: ChurnPlan;
  readonly fleet: Fleet;
  readonly sessions: SessionLog;
  readonly backbone: Backbone;
  readonly victimIndex: number;
  readonly cpu: CpuSampler;
  readonly ticksPerS: number;
  /** The longest latency the histograms must hold. */
  readonly highestMs: number;
  readonly takeRouter: () => Record<string, number>;
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
  readonly warn: (warning: string) => void;
  readonly now: () => number;
}

export interface TrafficOutcome {
  readonly startMs: number;
  readonly aborted: string | null;
  readonly totals: Totals;
  readonly series: ChurnSeriesPoint[];
  /** By disruption index (as SessionLog.mark numbers them). */
  readonly details: DisruptionDetail[];
  readonly cpu: ProcessCpu[];
  readonly generatorCpu: GeneratorCpu;
  readonly generator: {
    readonly skipped_behind_schedule: number;
    readonly skipped_backpressure: number;
    readonly skipped_closed_sender: number;
    readonly sent_while_sender_down: number;
    readonly tick_lateness_ms: LatencyMs;
  };
}

export async function runTraffic(i: TrafficInput): Promise<TrafficOutcome> {
  const { options: o, plan, fleet: f, sessions, backbone, runId, now, log } = i;
  const t0 = now();
  const measureStartMs = t0 + o.warmupS * 1000;
  const endMs = t0 + o.durationS * 1000;
  let graceEndMs = endMs + o.graceS * 1000;
  let aborted: string | null = null;
  const pacer = new Pacer({ ratePerS: o.ratePerS, startMs: t0, endMs, maxBacklogMs: MAX_BACKLOG_MS });
  const tracker = new Tracker({
    pairs: o.clients * o.peers,
    maxSeqPerPair: Math.max(1, plan.maxPerPair),
    measureStartMs,
    measureEndMs: endMs,
    highestLatencyUs: i.highestMs * 1000,
  });
  f.onEvent = (c, e) => {
    const at = now();
    const id = parseMessageId(runId, e.id);
    if (id === null || id.pair >= plan.recipients.length || plan.recipients[id.pair] !== c) {
      tracker.onDelivered(-1, -1, null, at);
      return;
    }
    const t = (e.data as { t?: unknown } | null)?.t;
    tracker.onDelivered(id.pair, id.seq, typeof t === "number" && Number.isFinite(t) ? t : null, at);
  };
  f.onClosed = (c) => {
    for (const pair of pairsToClient(plan, c)) tracker.onReceiverClosed(pair);
  };

  // ---- sending ----
  const pad = "x".repeat(Math.max(0, o.payloadBytes - 40));
  let next = 0;
  let sentWhileDown = 0;
  const sendDue = (t: number) => {
    const due = pacer.due(t);
    next += due.skipped;
    for (let k = 0; k < due.send; k++) {
      const pair = plan.schedule[next++]!;
      const sender = senderOf(plan, pair);
      const seq = tracker.nextSeq(pair);
      if (seq === null) throw new Error(`pair ${pair} sent more than the schedule holds`);
      const sentAt = now();
      tracker.onSent(pair, seq, sentAt);
      if (!sessions.isOpen(sender)) sentWhileDown++;
      f.clients[sender]!.send(
        `user:${clientUser(runId, plan.recipients[pair]!)}`,
        EVENT_TYPE,
        { seq, t: Math.round(sentAt * 1000) / 1000, pad },
        { id: messageId(runId, pair, seq) },
      ).then(
        () => tracker.onAck(pair, seq, true, undefined, now()),
        (e: unknown) =>
          tracker.onAck(pair, seq, false, e instanceof RealtimeError ? e.code : "unknown", now()),
      );
    }
  };

  // ---- disruptions ----
  const details: DisruptionDetail[] = [];
  const victim = backbone.gateways[i.victimIndex]!;
  const sig = o.action === "kill" ? "SIGKILL" : "SIGTERM";
  const killAt = t0 + o.killAfterS * 1000;
  const restartAt = killAt + o.restartAfterS * 1000;
  let killed = false;
  let restarted = false;
  const at = (t: number) => `${((t - t0) / 1000).toFixed(1)} s`;
  const disrupt = (t: number) => {
    if (!killed && t >= killAt) {
      killed = true;
      const start = now();
      const index = sessions.mark(`${sig} ${victim.name}`, start, i.victimIndex);
      const detail: DisruptionDetail = {
        gateway: victim.name,
        signal: sig,
        exit_code: null,
        exit_after_ms: null,
        ready_after_ms: null,
      };
      details[index] = detail;
      log(`${at(start)}: ${sig} ${victim.name} (pid ${victim.pid})`);
      void victim.stop(sig, sig === "SIGKILL" ? 0 : DRAIN_WAIT_MS).then((code) => {
        details[index] = { ...detail, exit_code: code, exit_after_ms: Math.round(now() - start) };
        log(`${victim.name} exited (${code}) ${Math.round(now() - start)} ms after ${sig}`);
      });
    }
    if (o.restart && killed && !restarted && t >= restartAt) {
      restarted = true;
      const name = `gw${o.gateways + 1}`;
      const start = now();
      const index = sessions.mark(`start ${name}`, start, -1);
      const { service, ready } = backbone.startGateway(name, STARTUP_MAX_MS);
      const detail: DisruptionDetail = {
        gateway: name,
        signal: "start",
        exit_code: null,
        exit_after_ms: null,
        ready_after_ms: null,
      };
      details[index] = detail;
      log(`${at(start)}: starting replacement ${name} (pid ${service.pid})`);
      ready.then(
        () => {
          details[index] = { ...detail, ready_after_ms: Math.round(now() - start) };
          log(`${name} ready ${Math.round(now() - start)} ms after its start`);
        },
        (e: unknown) => i.warn(`the replacement gateway did not start: ${(e as Error).message}`),
      );
    }
  };

  // ---- once a second ----
  const series: ChurnSeriesPoint[] = [];
  let second = 0;
  const ticksStart = i.cpu.sample();
  let ticksPrev: Sample = ticksStart;
  let secondStart = now();
  const phaseOf = (n: number): Phase => {
    const s = t0 + n * 1000;
    return s < measureStartMs ? "warmup" : s < endMs ? "measure" : "grace";
  };
  const emitSecond = () => {
    const interval = tracker.takeInterval();
    const ticks = i.cpu.sample();
    const t = now();
    const cores = coresBetween(ticksPrev, ticks, (t - secondStart) / 1000, i.ticksPerS);
    ticksPrev = ticks;
    secondStart = t;
    const soFar = tracker.endToEndSoFar();
    const pending = tracker.pending();
    series.push({
      second,
      phase: phaseOf(second),
      sent: interval.sent,
      acked_ok: interval.ackedOk,
      acked_failed: interval.ackedFailed,
      delivered: interval.delivered,
      latency_p99_ms: interval.latencyUs.count === 0 ? null : latencyMs(interval.latencyUs).p99,
      open: sessions.openCount,
      waiting: sessions.waiting,
      drops: f.drops.take(),
      welcomes: f.welcomes.take(),
      sockets_opened: f.socketsOpened.take()["opened"] ?? 0,
      socket_errors: f.socketErrors.take(),
      router_answers: i.takeRouter(),
      cpu_cores: cores,
    });
    log(
      progressLine({
        second,
        phase: phaseOf(second),
        interval,
        measuredP99Us: soFar.count === 0 ? null : soFar.p99,
        failures: tracker.failures,
        unexpectedCloses: Object.values(f.drops.total()).reduce((a, b) => a + b, 0),
        pendingAcks: pending.acks,
        pendingDeliveries: pending.deliveries,
      }) + `  open ${sessions.openCount}/${o.clients}  waiting ${sessions.waiting}`,
    );
    second++;
  };

  log(
    `sending ${o.ratePerS} msgs/s for ${o.durationS} s (${o.warmupS} s warmup); ${sig} ${victim.name} at ` +
      `${o.killAfterS} s` +
      (o.restart ? `, replacement at ${o.killAfterS + o.restartAfterS} s` : ""),
  );
  const tickLatenessUs = new Histogram({ highestTrackableValue: 600_000_000, significantDigits: 2 });
  const cpuAtStart = process.cpuUsage();
  let cpuUsed: NodeJS.CpuUsage | null = null;
  let ticksEnd: Sample | null = null;
  let sendingEndedAt = endMs;
  await new Promise<void>((done, fail) => {
    let lastTick = t0;
    const timer = setInterval(() => {
      try {
        const t = now();
        tickLatenessUs.record(Math.max(0, t - lastTick - TICK_MS) * 1000);
        lastTick = t;
        if (i.signal.aborted && aborted === null) {
          aborted = "interrupted (SIGINT)";
          graceEndMs = Math.min(graceEndMs, t + o.graceS * 1000);
        }
        const stopSending = t >= endMs || aborted !== null;
        if (!stopSending) {
          disrupt(t);
          sendDue(t);
        } else if (ticksEnd === null) {
          if (aborted === null) sendDue(t);
          ticksEnd = i.cpu.sample();
          cpuUsed = process.cpuUsage(cpuAtStart);
          sendingEndedAt = t;
        }
        for (let n = 0; n < 100 && t >= t0 + (second + 1) * 1000; n++) emitSecond();
        if (stopSending) {
          const p = tracker.pending();
          if ((p.acks === 0 && p.deliveries === 0) || t >= graceEndMs) {
            clearInterval(timer);
            done();
          }
        }
      } catch (e) {
        clearInterval(timer);
        fail(e as Error);
      }
    }, TICK_MS);
  });
  emitSecond();

  const wallS = Math.max(0.001, (sendingEndedAt - t0) / 1000);
  const used = cpuUsed ?? process.cpuUsage(cpuAtStart);
  return {
    startMs: t0,
    aborted,
    totals: tracker.totals(),
    series,
    details,
    cpu: cpuBetween(i.cpu.procs(), ticksStart, ticksEnd ?? i.cpu.sample(), wallS, i.ticksPerS),
    generatorCpu: {
      user_s: used.user / 1e6,
      system_s: used.system / 1e6,
      cores_used: Math.round(((used.user + used.system) / 1e6 / wallS) * 1000) / 1000,
      whole_run_cpu_s: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    },
    generator: {
      skipped_behind_schedule: pacer.skipped,
      skipped_backpressure: 0,
      skipped_closed_sender: 0,
      sent_while_sender_down: sentWhileDown,
      tick_lateness_ms: latencyMs(tickLatenessUs.summary()),
    },
  };
}
