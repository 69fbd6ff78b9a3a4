/**
 * The result of a run, as data (the JSON file) and as text (the summary on stdout). Pure: the
 * run hands in what it measured; nothing here reads a clock or a file.
 */
import type { DirectOptions } from "./args.ts";
import type { HistogramSummary } from "./histogram.ts";
import type { MachineInfo } from "./machine.ts";
import type { Totals } from "./tracker.ts";

export const RESULT_SCHEMA = "rt-loadtest-direct/1";

/** Above this share of one core, the generator is likely the bottleneck. */
export const GENERATOR_CPU_WARN_FRACTION = 0.85;

export interface LatencyMs {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p99_9: number;
  readonly max: number;
}

export type Phase = "warmup" | "measure" | "grace";

export interface SeriesPoint {
  /** Seconds since the first send; the point covers [second, second + 1). */
  readonly second: number;
  readonly phase: Phase;
  readonly sent: number;
  readonly acked_ok: number;
  readonly acked_failed: number;
  readonly delivered: number;
  /** End-to-end latency of the deliveries that arrived in this second. */
  readonly latency_ms: LatencyMs;
}

export interface ProcessCpu {
  readonly name: string;
  readonly pid: number;
  readonly cpu_s: number | null;
  /** cpu_s / measured seconds: 1.0 is one core busy the whole time. */
  readonly cores_used: number | null;
  readonly error?: string;
}

export interface GeneratorCpu {
  readonly user_s: number;
  readonly system_s: number;
  readonly cores_used: number;
  readonly whole_run_cpu_s: number;
}

export interface ConnectionStats {
  readonly opened: number;
  readonly redirected: number;
  readonly connect_ms: number;
  readonly per_node: Readonly<Record<string, number>>;
  readonly local_addresses: readonly string[];
  /** Closes the run did not ask for, by close code. */
  readonly unexpected_closes: Readonly<Record<string, number>>;
  readonly error_frames: Readonly<Record<string, number>>;
  /** Time to close every socket at the end, and how many had to be terminated. */
  readonly close_ms: number;
  readonly close_terminated: number;
}

export interface GeneratorStats {
  readonly skipped_behind_schedule: number;
  readonly skipped_backpressure: number;
  readonly skipped_closed_sender: number;
  /** How late the 10 ms send timer fired: a busy generator shows here first. */
  readonly tick_lateness_ms: LatencyMs;
}

export interface RunInput {
  readonly runId: string;
  readonly startedAt: string;
  readonly commandLine: readonly string[];
  readonly options: DirectOptions;
  readonly secretSource: "flag" | "RT_JWT_SECRET" | "dev-secret";
  readonly machine: MachineInfo;
  readonly measuredS: number;
  readonly totals: Totals;
  readonly series: readonly SeriesPoint[];
  readonly connections: ConnectionStats;
  readonly generator: GeneratorStats;
  readonly generatorCpu: GeneratorCpu;
  readonly processes: readonly ProcessCpu[];
  readonly warnings: readonly string[];
  readonly aborted: string | null;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/** A microsecond histogram summary in milliseconds. */
export function latencyMs(us: HistogramSummary): LatencyMs {
  return {
    count: us.count,
    min: round3(us.min / 1000),
    mean: round3(us.mean / 1000),
    p50: round3(us.p50 / 1000),
    p90: round3(us.p90 / 1000),
    p99: round3(us.p99 / 1000),
    p99_9: round3(us.p999 / 1000),
    max: round3(us.max / 1000),
  };
}

/**
 * The warnings a result earns from its own numbers (the run adds its own, e.g. a busy machine).
 * `moreSenders` is the flag that adds senders, named when sends were rate limited.
 */
export function resultWarnings(
  input: Pick<RunInput, "generatorCpu" | "generator" | "totals">,
  moreSenders = "--pairs",
): string[] {
  const w: string[] = [];
  if (input.generatorCpu.cores_used > GENERATOR_CPU_WARN_FRACTION) {
    w.push(
      `the load generator used ${Math.round(input.generatorCpu.cores_used * 100)}% of one core while measuring: ` +
        `the numbers may measure the generator, not the backbone (use fewer connections or run several generators)`,
    );
  }
  const g = input.generator;
  if (g.skipped_behind_schedule > 0) {
    w.push(
      `${g.skipped_behind_schedule} sends were skipped because the generator fell over 1 s behind schedule`,
    );
  }
  if (g.skipped_backpressure > 0) {
    w.push(`${g.skipped_backpressure} sends were skipped because a sender socket's buffer was full`);
  }
  if (g.tick_lateness_ms.p99 > 50) {
    w.push(
      `the send timer fired up to ${g.tick_lateness_ms.p99} ms late (p99): the generator's event loop is busy`,
    );
  }
  const t = input.totals;
  const failed = Object.entries(t.ackedFailed);
  if (failed.length > 0) {
    const codes = failed.map(([code, n]) => `${code}=${n}`).join(" ");
    w.push(
      `sends failed (${codes})` +
        (t.ackedFailed["rate_limited"]
          ? `: a sender went over the gateway's RT_SENDS_PER_S, add ${moreSenders}`
          : ""),
    );
  }
  if (t.lost > 0) w.push(`${t.lost} acked messages were never delivered`);
  if (t.ackMissing > 0) w.push(`${t.ackMissing} sends never got an ack`);
  return w;
}

export function buildResult(input: RunInput) {
  const t = input.totals;
  const o = input.options;
  const perS = (n: number) => round3(n / input.measuredS);
  return {
    schema: RESULT_SCHEMA,
    scenario: o.scenario,
    run_id: input.runId,
    started_at: input.startedAt,
    command_line: input.commandLine,
    completed: input.aborted === null,
    aborted: input.aborted,
    parameters: {
      gateway: o.gateway,
      pairs: o.pairs,
      offered_rate_per_s: o.ratePerS,
      per_sender_rate_per_s: round3(o.ratePerS / o.pairs),
      duration_s: o.durationS,
      warmup_s: o.warmupS,
      grace_s: o.graceS,
      payload_bytes: o.payloadBytes,
      local_addresses: o.localAddresses,
      per_connection_max: o.perConnectionMax,
      allow_remote: o.allowRemote,
      token_secret: input.secretSource,
      pids: o.pids,
    },
    machine: input.machine,
    totals: {
      sent: t.sent,
      acked_ok: t.ackedOk,
      acked_failed: t.ackedFailed,
      ack_missing: t.ackMissing,
      delivered: t.delivered,
      lost: t.lost,
      undelivered_closed_receiver: t.undeliveredClosedReceiver,
      delivered_without_ok_ack: t.deliveredWithoutOkAck,
      duplicates: t.duplicates,
      out_of_order: t.outOfOrder,
      pairs_out_of_order: t.pairsOutOfOrder,
      unknown_acks: t.unknownAcks,
      duplicate_acks: t.duplicateAcks,
      foreign_events: t.foreignEvents,
      closed_receivers: t.closedReceivers,
    },
    measured: {
      seconds: input.measuredS,
      sent: t.measured.sent,
      acked_ok: t.measured.ackedOk,
      acked_failed: t.measured.ackedFailed,
      delivered: t.measured.delivered,
      sent_per_s: perS(t.measured.sent),
      acked_per_s: perS(t.measured.ackedOk),
      delivered_per_s: perS(t.measured.delivered),
      end_to_end_latency_ms: latencyMs(t.endToEndUs),
      ack_latency_ms: latencyMs(t.ackUs),
    },
    cpu: { generator: input.generatorCpu, processes: input.processes },
    connections: input.connections,
    generator: input.generator,
    warnings: input.warnings,
    series: input.series,
  };
}

export type DirectResult = ReturnType<typeof buildResult>;

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));

/** The human summary: a few lines, the numbers a reader compares first. */
export function summaryText(r: DirectResult, outPath: string): string {
  const m = r.measured;
  const e = m.end_to_end_latency_ms;
  const a = m.ack_latency_ms;
  const t = r.totals;
  const failed = Object.entries(t.acked_failed)
    .map(([code, n]) => `${code}=${n}`)
    .join(" ");
  const procs = r.cpu.processes
    .map((p) =>
      p.cpu_s === null ? `${p.name}=?` : `${p.name}=${fmt(p.cpu_s)}s (${fmt(p.cores_used ?? 0)} cores)`,
    )
    .join("  ");
  const lines = [
    `direct: ${r.parameters.pairs} pairs, offered ${fmt(r.parameters.offered_rate_per_s)} msgs/s, ` +
      `${r.parameters.warmup_s}s warmup + ${r.parameters.duration_s}s measured, via ${r.parameters.gateway}` +
      (r.completed ? "" : `  ABORTED: ${r.aborted}`),
    `  rates (measured):  sent ${fmt(m.sent_per_s)}/s  acked ${fmt(m.acked_per_s)}/s  delivered ${fmt(m.delivered_per_s)}/s`,
    `  end-to-end ms:     p50 ${fmt(e.p50)}  p90 ${fmt(e.p90)}  p99 ${fmt(e.p99)}  p99.9 ${fmt(e.p99_9)}  max ${fmt(e.max)}  (n=${e.count})`,
    `  ack ms:            p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  max ${fmt(a.max)}`,
    `  totals:            sent ${t.sent}  acked ${t.acked_ok}  failed ${failed === "" ? "0" : failed}  ` +
      `no-ack ${t.ack_missing}  delivered ${t.delivered}`,
    `  correctness:       lost ${t.lost}  duplicates ${t.duplicates}  out-of-order ${t.out_of_order}` +
      (t.undelivered_closed_receiver > 0
        ? `  undelivered (receiver closed) ${t.undelivered_closed_receiver}`
        : ""),
    `  cpu:               generator ${fmt(r.cpu.generator.cores_used)} cores` +
      (procs === "" ? "" : `  ${procs}`),
    `  connections:       ${r.connections.opened} opened (${r.connections.redirected} redirected) in ${r.connections.connect_ms} ms, ` +
      `closed in ${r.connections.close_ms} ms`,
    ...r.warnings.map((w) => `  WARNING: ${w}`),
    `  result: ${outPath}`,
  ];
  return lines.join("\n");
}
