/**
 * The `direct` scenario: `pairs` sender/receiver users, each sender sending user-to-user events to
 * its receiver at an even share of the offered rate, open loop, for warmup + duration; then a
 * grace period for late acks and deliveries; then every socket is closed. This file is the I/O
 * shell: sockets, timers, clocks. What it measures is decided in tracker.ts, pacer.ts and
 * report.ts.
 *
 * Time is one clock for everything, `performance.timeOrigin + performance.now()` (monotonic,
 * in epoch milliseconds), read by this process only: send time, ack time and receive time are
 * all taken here, so no clock skew enters a latency.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { LeanWebSocket } from "./lean-ws.ts";
import { devSecret } from "../common/dev-secret.ts";
import { mintDevToken } from "../gateway/auth.ts";
import { closeCodeByNumber } from "../schemas/close-codes.ts";
import type { DirectOptions } from "./args.ts";
import { closeSockets, connectUser, mapLimit } from "./connection.ts";
import { Histogram } from "./histogram.ts";
import { checkTargetUrl, localAddressFor } from "./loopback.ts";
import { clockTicksPerSecond, machineInfo, processTicks } from "./machine.ts";
import { Pacer, RoundRobin } from "./pacer.ts";
import { progressLine } from "./progress.ts";
import {
  messageId,
  parseMessageId,
  parseServerMessage,
  pongFrame,
  receiverUser,
  sendFrame,
  senderUser,
} from "./protocol.ts";
import {
  buildResult,
  latencyMs,
  resultWarnings,
  type DirectResult,
  type Phase,
  type ProcessCpu,
  type SeriesPoint,
} from "./report.ts";
import { Tracker } from "./tracker.ts";

const TICK_MS = 10;
const CONNECT_CONCURRENCY = 32;
/** The whole connect phase; the hard deadline's 30 s of slack covers it and the closing. */
const CONNECT_PHASE_MS = 20_000;
const MAX_REDIRECTS = 3;
const MAX_BACKLOG_MS = 1000;
/** A sender whose socket holds this much unsent data skips its sends instead of queueing more. */
const SENDER_BUFFER_CAP_BYTES = 4 * 1024 * 1024;
/** The run's own safety net, beyond warmup + duration + grace (main.ts enforces it). */
export const HARD_DEADLINE_SLACK_S = 30;

/** The run could not start (a connection failed); nothing is measured. */
export class RunSetupError extends Error {
  override readonly name = "RunSetupError";
}

const now = (): number => performance.timeOrigin + performance.now();

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function closeKey(code: number): string {
  const info = closeCodeByNumber(code);
  return info === undefined ? String(code) : `${code} ${info.name}`;
}

interface Sockets {
  readonly senders: LeanWebSocket[];
  readonly receivers: LeanWebSocket[];
  readonly perNode: Map<string, number>;
  readonly redirected: number;
  readonly localAddresses: Set<string>;
}

async function connectAll(options: DirectOptions, runId: string, secret: string): Promise<Sockets> {
  const env = process.env;
  const ttlS = Math.ceil(options.warmupS + options.durationS + options.graceS) + 600;
  const claims = {
    ttlS,
    ...(env["RT_JWT_ISSUER"] ? { issuer: env["RT_JWT_ISSUER"] } : {}),
    ...(env["RT_JWT_AUDIENCE"] ? { audience: env["RT_JWT_AUDIENCE"] } : {}),
  };
  // Connection 2i is pair i's sender, 2i + 1 its receiver: neighbours get different source addresses.
  const users = Array.from({ length: options.pairs * 2 }, (_, i) =>
    i % 2 === 0 ? senderUser(runId, i / 2) : receiverUser(runId, (i - 1) / 2),
  );
  const target = new URL(options.gateway);
  const deadline = Date.now() + CONNECT_PHASE_MS;
  const localAddresses = new Set<string>();
  const results = await mapLimit(users, CONNECT_CONCURRENCY, async (user, i) => {
    const left = deadline - Date.now();
    if (left <= 0) return { ok: false as const, message: `connect phase passed ${CONNECT_PHASE_MS} ms` };
    const localAddress = localAddressFor(i, options.localAddresses, target.hostname);
    if (localAddress !== undefined) localAddresses.add(localAddress);
    return connectUser({
      url: options.gateway,
      token: await mintDevToken(secret, user, claims),
      localAddress,
      timeoutMs: Math.min(left, 10_000),
      maxRedirects: MAX_REDIRECTS,
      checkRedirect: (url) => {
        const c = checkTargetUrl(url, options.allowRemote);
        return c.ok ? null : c.message;
      },
    });
  });
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    for (const r of results) if (r.ok) r.ws.terminate();
    const first = failed[0]!;
    const hint = /unauthorized|bad_signature|4001/.test(first.ok ? "" : first.message)
      ? " (does the backbone use another secret? pass --secret or set RT_JWT_SECRET)"
      : "";
    throw new RunSetupError(
      `${failed.length} of ${results.length} connections failed; first: ${first.ok ? "" : first.message}${hint}`,
    );
  }
  const perNode = new Map<string, number>();
  let redirected = 0;
  const live = results.map((r) => {
    if (!r.ok) throw new Error("unreachable");
    bump(perNode, r.node);
    if (r.redirects > 0) redirected++;
    return r.ws;
  });
  return {
    senders: live.filter((_, i) => i % 2 === 0),
    receivers: live.filter((_, i) => i % 2 === 1),
    perNode,
    redirected,
    localAddresses,
  };
}

export async function runDirect(
  options: DirectOptions,
  commandLine: readonly string[],
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<DirectResult> {
  const cpuAtRunStart = process.cpuUsage();
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const warnings: string[] = [];
  if (machine.load_average_1m_at_start > machine.cores * 0.5) {
    warnings.push(
      `load average ${machine.load_average_1m_at_start} on ${machine.cores} cores at start: ` +
        `the machine was not idle, so the numbers may be noisy`,
    );
  }
  const envSecret = process.env["RT_JWT_SECRET"];
  const secretSource = options.secret !== undefined ? "flag" : envSecret ? "RT_JWT_SECRET" : "dev-secret";
  const secret = options.secret ?? (envSecret || devSecret());
  const runId = randomBytes(4).toString("hex");

  log(`run ${runId}: connecting ${options.pairs * 2} users via ${options.gateway}`);
  const connectStart = now();
  const sockets = await connectAll(options, runId, secret);
  const connectMs = Math.round(now() - connectStart);
  log(
    `connected in ${connectMs} ms (${sockets.redirected} redirected; ` +
      `${[...sockets.perNode].map(([n, c]) => `${n}: ${c}`).join(", ")})`,
  );
  const { senders, receivers } = sockets;
  const { pairs, payloadBytes } = options;

  const t0 = now();
  const measureStartMs = t0 + options.warmupS * 1000;
  const measureEndMs = measureStartMs + options.durationS * 1000;
  // An interrupt ends sending at once; the grace period then runs from that moment.
  let graceEndMs = measureEndMs + options.graceS * 1000;
  const pacer = new Pacer({
    ratePerS: options.ratePerS,
    startMs: t0,
    endMs: measureEndMs,
    maxBacklogMs: MAX_BACKLOG_MS,
  });
  const tracker = new Tracker({
    pairs,
    maxSeqPerPair: Math.ceil(pacer.total / pairs) + 1,
    measureStartMs,
    measureEndMs,
    highestLatencyUs: (options.warmupS + options.durationS + options.graceS + HARD_DEADLINE_SLACK_S) * 1e6,
  });
  const receiverNames = Array.from({ length: pairs }, (_, i) => receiverUser(runId, i));
  const senderClosed = new Uint8Array(pairs);
  const unexpectedCloses = new Map<string, number>();
  const errorFrames = new Map<string, number>();
  let closing = false;

  const attach = (ws: LeanWebSocket, pair: number, role: "sender" | "receiver") => {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const m = parseServerMessage(data.toString());
      if (m.op === "ack") {
        const id = parseMessageId(runId, m.id);
        const at = now();
        if (id === null) tracker.onAck(-1, -1, m.ok, undefined, at);
        else tracker.onAck(id.pair, id.seq, m.ok, m.ok ? undefined : m.code, at);
      } else if (m.op === "event") {
        const at = now();
        const id = parseMessageId(runId, m.id);
        tracker.onDelivered(id?.pair ?? -1, id?.seq ?? -1, m.sendTimeMs, at);
      } else if (m.op === "ping") ws.send(pongFrame(m.id));
      else if (m.op === "error") bump(errorFrames, m.code);
    });
    ws.on("close", (code: number) => {
      if (closing) return;
      bump(unexpectedCloses, closeKey(code));
      if (role === "receiver") tracker.onReceiverClosed(pair);
      else senderClosed[pair] = 1;
    });
  };
  senders.forEach((ws, i) => attach(ws, i, "sender"));
  receivers.forEach((ws, i) => attach(ws, i, "receiver"));

  const rr = new RoundRobin(pairs);
  const tickLatenessUs = new Histogram({ highestTrackableValue: 600_000_000, significantDigits: 2 });
  const series: SeriesPoint[] = [];
  const clk = clockTicksPerSecond();
  let skippedBackpressure = 0;
  let skippedClosed = 0;
  let cpuAtMeasureStart: NodeJS.CpuUsage | null = null;
  let cpuMeasured: NodeJS.CpuUsage | null = null;
  let ticksAtStart: (number | null)[] = [];
  let ticksAtEnd: (number | null)[] = [];
  let measureSampledAt = measureStartMs;
  let measureSampledEnd = measureEndMs;
  let aborted: string | null = null;

  const sendDue = (t: number) => {
    const due = pacer.due(t);
    for (let k = 0; k < due.send; k++) {
      const pair = rr.next();
      const ws = senders[pair]!;
      if (senderClosed[pair] === 1) {
        skippedClosed++;
        continue;
      }
      if (ws.bufferedAmount > SENDER_BUFFER_CAP_BYTES) {
        skippedBackpressure++;
        continue;
      }
      const seq = tracker.nextSeq(pair);
      if (seq === null) throw new Error(`pair ${pair} sent more than the schedule allows`);
      const sentAt = now();
      ws.send(sendFrame(messageId(runId, pair, seq), receiverNames[pair]!, seq, sentAt, payloadBytes));
      tracker.onSent(pair, seq, sentAt);
    }
  };

  let second = 0;
  const phaseOf = (n: number): Phase => {
    const startMs = t0 + n * 1000;
    return startMs < measureStartMs ? "warmup" : startMs < measureEndMs ? "measure" : "grace";
  };
  const emitSecond = () => {
    const phase = phaseOf(second);
    const interval = tracker.takeInterval();
    series.push({
      second,
      phase,
      sent: interval.sent,
      acked_ok: interval.ackedOk,
      acked_failed: interval.ackedFailed,
      delivered: interval.delivered,
      latency_ms: latencyMs(interval.latencyUs),
    });
    const pending = tracker.pending();
    const soFar = tracker.endToEndSoFar();
    log(
      progressLine({
        second,
        phase,
        interval,
        measuredP99Us: soFar.count === 0 ? null : soFar.p99,
        failures: tracker.failures,
        unexpectedCloses: [...unexpectedCloses.values()].reduce((a, b) => a + b, 0),
        pendingAcks: pending.acks,
        pendingDeliveries: pending.deliveries,
      }),
    );
    second++;
  };

  log(
    `sending ${options.ratePerS} msgs/s over ${pairs} senders: ${options.warmupS}s warmup, ` +
      `${options.durationS}s measured, up to ${options.graceS}s grace`,
  );
  await new Promise<void>((done) => {
    let lastTick = t0;
    const timer = setInterval(() => {
      const t = now();
      tickLatenessUs.record(Math.max(0, t - lastTick - TICK_MS) * 1000);
      lastTick = t;
      if (cpuAtMeasureStart === null && t >= measureStartMs) {
        cpuAtMeasureStart = process.cpuUsage();
        ticksAtStart = options.pids.map((p) => processTicks(p.pid));
        measureSampledAt = t;
      }
      if (signal.aborted && aborted === null) {
        aborted = "interrupted (SIGINT)";
        graceEndMs = Math.min(graceEndMs, t + options.graceS * 1000);
      }
      const stopSending = t >= measureEndMs || aborted !== null;
      if (!stopSending) sendDue(t);
      else if (cpuMeasured === null) {
        if (aborted === null) sendDue(t);
        cpuMeasured =
          cpuAtMeasureStart === null ? { user: 0, system: 0 } : process.cpuUsage(cpuAtMeasureStart);
        ticksAtEnd = options.pids.map((p) => processTicks(p.pid));
        measureSampledEnd = t;
      }
      // A stalled loop owes several seconds; each gets its (possibly empty) point, boundedly.
      for (let i = 0; i < 100 && t >= t0 + (second + 1) * 1000; i++) emitSecond();
      if (stopSending) {
        const p = tracker.pending();
        if ((p.acks === 0 && p.deliveries === 0) || t >= graceEndMs) {
          clearInterval(timer);
          done();
        }
      }
    }, TICK_MS);
  });
  const last = tracker.takeInterval();
  if (last.sent + last.ackedOk + last.ackedFailed + last.delivered > 0) {
    series.push({
      second,
      phase: phaseOf(second),
      sent: last.sent,
      acked_ok: last.ackedOk,
      acked_failed: last.ackedFailed,
      delivered: last.delivered,
      latency_ms: latencyMs(last.latencyUs),
    });
  }

  closing = true;
  const closed = await closeSockets([...senders, ...receivers]);

  const measuredWallS = Math.max(0.001, (measureSampledEnd - measureSampledAt) / 1000);
  const measuredS =
    aborted === null
      ? options.durationS
      : Math.max(0.001, Math.min(options.durationS, (measureSampledEnd - measureStartMs) / 1000));
  const cpu: NodeJS.CpuUsage = cpuMeasured ?? { user: 0, system: 0 };
  const generatorCpu = {
    user_s: cpu.user / 1e6,
    system_s: cpu.system / 1e6,
    cores_used: Math.round(((cpu.user + cpu.system) / 1e6 / measuredWallS) * 1000) / 1000,
    whole_run_cpu_s: (() => {
      const u = process.cpuUsage(cpuAtRunStart);
      return (u.user + u.system) / 1e6;
    })(),
  };
  const processes: ProcessCpu[] = options.pids.map((p, i) => {
    const a = ticksAtStart[i] ?? null;
    const b = ticksAtEnd[i] ?? null;
    if (a === null || b === null) {
      return { ...p, cpu_s: null, cores_used: null, error: `cannot read /proc/${p.pid}/stat (exited?)` };
    }
    const cpuS = (b - a) / clk;
    return { ...p, cpu_s: cpuS, cores_used: Math.round((cpuS / measuredWallS) * 1000) / 1000 };
  });
  const totals = tracker.totals();
  const generator = {
    skipped_behind_schedule: pacer.skipped,
    skipped_backpressure: skippedBackpressure,
    skipped_closed_sender: skippedClosed,
    tick_lateness_ms: latencyMs(tickLatenessUs.summary()),
  };
  return buildResult({
    runId,
    startedAt,
    commandLine,
    options,
    secretSource,
    machine,
    measuredS,
    totals,
    series,
    connections: {
      opened: senders.length + receivers.length,
      redirected: sockets.redirected,
      connect_ms: connectMs,
      per_node: Object.fromEntries(sockets.perNode),
      local_addresses: [...sockets.localAddresses].sort((a, b) =>
        a.localeCompare(b, "en", { numeric: true }),
      ),
      unexpected_closes: Object.fromEntries(unexpectedCloses),
      error_frames: Object.fromEntries(errorFrames),
      close_ms: closed.ms,
      close_terminated: closed.terminated,
    },
    generator,
    generatorCpu,
    processes,
    warnings: [...warnings, ...resultWarnings({ generatorCpu, generator, totals })],
    aborted,
  });
}
