/**
 * The result of a churn run, as data (the JSON file) and as text (the summary on stdout). Pure:
 * the run hands in what it measured; nothing here reads a clock, a process or a file.
 */
import type { ChurnOptions } from "./churn-args.ts";
import type { SessionsSummary } from "./churn-sessions.ts";
import type { MachineInfo } from "./machine.ts";
import {
  latencyMs,
  type GeneratorCpu,
  type GeneratorStats,
  type LatencyMs,
  type Phase,
  type ProcessCpu,
} from "./report.ts";
import type { LogCount } from "./services.ts";
import type { Totals } from "./tracker.ts";

export const CHURN_RESULT_SCHEMA = "rt-loadtest-churn/1";

/** What the design promises for a gateway loss: nothing acked is lost, clients are back soon. */
export const TARGETS = { lost: 0, p99ToWelcomeMs: 10_000 } as const;

export interface ServiceRecord {
  readonly name: string;
  readonly kind: "gateway" | "router";
  readonly pid: number;
  readonly url: string | null;
  /** From spawn to its ready line. */
  readonly ready_ms: number | null;
  readonly exit_code: number | null;
}

export interface GatewayMemory {
  readonly name: string;
  readonly rss_before_bytes: number | null;
  readonly rss_after_bytes: number | null;
  readonly connections_after: number | null;
  /** (after - before) / connections_after. */
  readonly bytes_per_connection: number | null;
  readonly rss_end_bytes: number | null;
  readonly connections_end: number | null;
}

export interface DisruptionDetail {
  /** The gateway acted on (for a restart: the replacement). */
  readonly gateway: string;
  readonly signal: "SIGKILL" | "SIGTERM" | "start";
  /** Exit code of the acted-on gateway and how long after the signal it exited; for a start, ready time. */
  readonly exit_code: number | null;
  readonly exit_after_ms: number | null;
  readonly ready_after_ms: number | null;
}

export interface ChurnSeriesPoint {
  readonly second: number;
  readonly phase: Phase;
  readonly sent: number;
  readonly acked_ok: number;
  readonly acked_failed: number;
  readonly delivered: number;
  readonly latency_p99_ms: number | null;
  /** Clients with a live session at the end of the second, and clients waiting to be welcomed again. */
  readonly open: number;
  readonly waiting: number;
  readonly drops: Readonly<Record<string, number>>;
  readonly welcomes: Readonly<Record<string, number>>;
  readonly sockets_opened: number;
  readonly socket_errors: Readonly<Record<string, number>>;
  readonly router_answers: Readonly<Record<string, number>>;
  /** Cores each process used in this second (null: not running). */
  readonly cpu_cores: Readonly<Record<string, number | null>>;
}

export interface Timings {
  readonly router_ms: LatencyMs;
  readonly upgrade_ms: LatencyMs;
  readonly hello_to_welcome_ms: LatencyMs;
  readonly generator_event_loop_delay_ms: {
    readonly p50: number;
    readonly p99: number;
    readonly max: number;
  };
}

export interface ChurnRunInput {
  readonly runId: string;
  readonly seed: number;
  readonly startedAt: string;
  readonly commandLine: readonly string[];
  readonly options: ChurnOptions;
  readonly machine: MachineInfo;
  readonly aborted: string | null;
  readonly topicPrefix: string;
  readonly kafkaBrokers: number;
  readonly services: readonly ServiceRecord[];
  readonly startupMs: number;
  readonly connect: {
    readonly wallMs: number;
    readonly started: number;
    readonly socketsOpened: number;
    readonly routerAnswers: Readonly<Record<string, number>>;
    readonly socketErrors: Readonly<Record<string, number>>;
    readonly perGateway: Readonly<Record<string, number>>;
    readonly localAddresses: readonly string[];
    /** Where connect time goes: router request, socket upgrade, hello to welcome; and how busy the generator was. */
    readonly timings: Timings;
  };
  readonly sessions: SessionsSummary;
  /** Epoch ms when traffic started (null: it never did); disruption times are reported from it. */
  readonly trafficStartMs: number | null;
  readonly disruptionDetails: readonly DisruptionDetail[];
  readonly memory: {
    readonly gateways: readonly GatewayMemory[];
    readonly generator: {
      readonly rss_before_bytes: number;
      readonly rss_after_bytes: number;
      readonly bytes_per_client: number | null;
    };
  };
  readonly totals: Totals | null;
  readonly cpu: { readonly connect: readonly ProcessCpu[]; readonly traffic: readonly ProcessCpu[] };
  readonly generatorCpu: GeneratorCpu;
  readonly generator: GeneratorStats & {
    /** Sends made while the sender had no live session: they wait in the client's queue. */
    readonly sent_while_sender_down: number;
  };
  readonly counters: {
    /** As `connect.timings`, for every (re)connect after the connect phase. */
    readonly timings: Timings;
    readonly clientErrors: Readonly<Record<string, number>>;
    readonly resyncs: Readonly<Record<string, number>>;
    readonly socketErrors: Readonly<Record<string, number>>;
    readonly routerAnswers: Readonly<Record<string, number>>;
    readonly socketsOpened: number;
  };
  readonly serviceLogs: Readonly<Record<string, readonly LogCount[]>>;
  readonly teardown: {
    readonly clients_close_ms: number;
    readonly sockets_terminated: number;
    readonly services_exit_codes: Readonly<Record<string, number>>;
    readonly services_left_running: number;
    readonly topics_deleted: number | null;
    readonly topics_error: string | null;
  };
  readonly series: readonly ChurnSeriesPoint[];
  readonly warnings: readonly string[];
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

export function buildChurnResult(input: ChurnRunInput) {
  const o = input.options;
  const s = input.sessions;
  const t = input.totals;
  const t0 = input.trafficStartMs;
  const disruptions = s.disruptions.map((d, i) => {
    const detail = i === 0 ? null : (input.disruptionDetails[i - 1] ?? null);
    return {
      name: d.name,
      at_s: i === 0 || t0 === null ? null : round3((d.atMs - t0) / 1000),
      ...(detail === null ? {} : { detail }),
      clients_on_gateway: d.openOnNode < 0 ? null : d.openOnNode,
      affected: d.affected,
      resumed: d.resumed,
      not_resumed: d.notResumed,
      recovered_true: d.recoveredTrue,
      recovered_false: d.recoveredFalse,
      re_drops: d.reDrops,
      to_welcome_ms: latencyMs(d.toWelcomeUs),
      outage_ms: latencyMs(d.outageUs),
      drops: d.drops,
    };
  });
  const main = disruptions[1];
  const resumeP99 = main === undefined || main.affected === 0 ? null : main.to_welcome_ms.p99;
  return {
    schema: CHURN_RESULT_SCHEMA,
    scenario: "churn" as const,
    run_id: input.runId,
    seed: input.seed,
    started_at: input.startedAt,
    command_line: input.commandLine,
    completed: input.aborted === null,
    aborted: input.aborted,
    targets: {
      lost: TARGETS.lost,
      p99_to_welcome_ms: TARGETS.p99ToWelcomeMs,
      lost_met: t === null ? null : t.lost <= TARGETS.lost,
      resume_met:
        resumeP99 === null || main === undefined
          ? null
          : main.not_resumed === 0 && resumeP99 < TARGETS.p99ToWelcomeMs,
    },
    parameters: {
      brokers: o.brokers,
      gateways: o.gateways,
      clients: o.clients,
      connect_rate_per_s: o.connectRatePerS,
      offered_rate_per_s: o.ratePerS,
      per_client_rate_per_s: round3(o.ratePerS / o.clients),
      peers: o.peers,
      warmup_s: o.warmupS,
      duration_s: o.durationS,
      kill_after_s: o.killAfterS,
      action: o.action,
      restart: o.restart,
      restart_after_s: o.restart ? o.restartAfterS : null,
      grace_s: o.graceS,
      session_timeout_ms: o.sessionTimeoutMs,
      partitions: o.partitions,
      payload_bytes: o.payloadBytes,
      local_addresses: o.localAddresses,
      client_backoff_ms: { base: o.backoffBaseMs, cap: o.backoffCapMs },
      kafka_pid: o.kafkaPid ?? null,
      topic_prefix: input.topicPrefix,
    },
    machine: input.machine,
    setup: { startup_ms: input.startupMs, kafka_brokers: input.kafkaBrokers, services: input.services },
    connect: {
      clients: o.clients,
      started: input.connect.started,
      connected: s.connected,
      wall_ms: input.connect.wallMs,
      achieved_per_s: input.connect.wallMs > 0 ? round3(s.connected / (input.connect.wallMs / 1000)) : null,
      connect_ms: latencyMs(s.connectUs),
      sockets_opened: input.connect.socketsOpened,
      router_answers: input.connect.routerAnswers,
      socket_errors: input.connect.socketErrors,
      per_gateway: input.connect.perGateway,
      local_addresses: input.connect.localAddresses,
      timings: input.connect.timings,
    },
    memory: input.memory,
    disruptions,
    totals:
      t === null
        ? null
        : {
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
            foreign_events: t.foreignEvents,
            closed_receivers: t.closedReceivers,
          },
    latency:
      t === null
        ? null
        : {
            measured_sent: t.measured.sent,
            end_to_end_ms: latencyMs(t.endToEndUs),
            ack_ms: latencyMs(t.ackUs),
          },
    sessions_at_end: { open: s.openAtEnd, closed_for_good: s.closedForGood },
    cpu: { generator: input.generatorCpu, connect: input.cpu.connect, traffic: input.cpu.traffic },
    generator: input.generator,
    client: {
      reconnect_timings: input.counters.timings,
      errors: input.counters.clientErrors,
      resyncs: input.counters.resyncs,
      sockets_opened: input.counters.socketsOpened,
      socket_errors: input.counters.socketErrors,
      router_answers: input.counters.routerAnswers,
    },
    service_logs: input.serviceLogs,
    teardown: input.teardown,
    warnings: input.warnings,
    series: input.series,
  };
}

export type ChurnResult = ReturnType<typeof buildChurnResult>;

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const pairs = (r: Readonly<Record<string, number>>): string =>
  Object.entries(r)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ") || "none";
const ms = (l: LatencyMs): string =>
  `p50 ${fmt(l.p50)}  p90 ${fmt(l.p90)}  p99 ${fmt(l.p99)}  max ${fmt(l.max)}  (n=${l.count})`;

function cpuLine(list: readonly ProcessCpu[]): string {
  return list
    .map((p) => (p.cores_used === null ? `${p.name} ?` : `${p.name} ${fmt(p.cores_used)}`))
    .join("  ");
}

/** The human summary: the numbers a reader compares first. */
export function churnSummaryText(r: ChurnResult, outPath: string): string {
  const p = r.parameters;
  const c = r.connect;
  const lines = [
    `churn: ${p.clients} clients via the router on ${p.gateways} gateways, ${fmt(p.offered_rate_per_s)} msgs/s for ` +
      `${p.duration_s} s (${p.warmup_s} s warmup), ${p.action === "kill" ? "SIGKILL" : "SIGTERM"} one gateway at ` +
      `${p.kill_after_s} s${p.restart ? `, replacement after ${p.restart_after_s} s` : ""}; seed ${r.seed}` +
      (r.completed ? "" : `  ABORTED: ${r.aborted}`),
    `  connect:        ${c.connected}/${c.clients} in ${fmt(c.wall_ms / 1000)} s (${c.achieved_per_s ?? "-"}/s); ` +
      `per client ms ${ms(c.connect_ms)}; on ${pairs(c.per_gateway)}`,
    `                  ` +
      Object.entries(c.timings)
        .map(([k, l]) => `${k.replace(/_ms$/, "").replace(/_/g, " ")} p50 ${fmt(l.p50)} p99 ${fmt(l.p99)}`)
        .join("  ") +
      " (ms)",
  ];
  const mem = r.memory.gateways
    .filter((g) => g.rss_before_bytes !== null && g.rss_after_bytes !== null)
    .map(
      (g) =>
        `${g.name} ${mib(g.rss_before_bytes!)} -> ${mib(g.rss_after_bytes!)}` +
        (g.bytes_per_connection === null ? "" : ` (${kib(g.bytes_per_connection)}/conn)`),
    );
  const gen = r.memory.generator;
  lines.push(
    `  memory (RSS):   ${mem.join("  ")}  generator ${mib(gen.rss_before_bytes)} -> ${mib(gen.rss_after_bytes)}` +
      (gen.bytes_per_client === null ? "" : ` (${kib(gen.bytes_per_client)}/client)`),
  );
  const t = r.totals;
  if (t !== null) {
    lines.push(
      `  traffic:        sent ${t.sent}  acked ${t.acked_ok}  failed ${pairs(t.acked_failed)}  no-ack ${t.ack_missing}  ` +
        `delivered ${t.delivered}`,
      `  correctness:    lost ${t.lost}  duplicates ${t.duplicates}  out-of-order ${t.out_of_order}` +
        (t.undelivered_closed_receiver > 0
          ? `  undelivered (receiver closed) ${t.undelivered_closed_receiver}`
          : "") +
        `  (target 0 lost: ${r.targets.lost_met ? "met" : "NOT met"})`,
    );
  }
  for (const d of r.disruptions) {
    if (d.at_s === null && d.affected === 0) continue;
    const at = d.at_s === null ? "" : ` @${fmt(d.at_s)} s`;
    const on = d.clients_on_gateway === null ? "" : `${d.clients_on_gateway} on it, `;
    lines.push(
      `  ${d.name}${at}: ${on}${d.affected} dropped; resumed ${d.resumed} (recovered ${d.recovered_true} / not ${d.recovered_false}), ` +
        `not resumed ${d.not_resumed}, re-drops ${d.re_drops}; drops ${pairs(d.drops)}`,
      `      to next welcome ms: ${ms(d.to_welcome_ms)}`,
    );
  }
  if (r.targets.resume_met !== null) {
    lines.push(
      `  resume target:  p99 to welcome < ${r.targets.p99_to_welcome_ms} ms with every client back: ` +
        (r.targets.resume_met ? "met" : "NOT met"),
    );
  }
  if (r.latency !== null) {
    lines.push(
      `  end-to-end ms:  ${ms(r.latency.end_to_end_ms)}`,
      `  ack ms:         ${ms(r.latency.ack_ms)}`,
    );
  }
  lines.push(
    `  cpu cores:      connect: ${cpuLine(r.cpu.connect)}`,
    `                  traffic: ${cpuLine(r.cpu.traffic)}`,
    ...r.warnings.map((w) => `  WARNING: ${w}`),
    `  result: ${outPath}`,
  );
  return lines.join("\n");
}
