/**
 * The `storm` scenario's result as data (the JSON file) and as text (the summary). Pure.
 */
import type { StormOptions } from "./connect-args.ts";
import type { ConnectSummary, CpuWindow, Teardown } from "./fanout-run.ts";
import type { StormReport } from "./fanout-ipc.ts";
import { latencyHistogram } from "./fanout-tracker.ts";
import type { MachineInfo } from "./machine.ts";
import { latencyMs, type LatencyMs } from "./report.ts";
import type { LogCount } from "./services.ts";

export const STORM_SCHEMA = "rt-loadtest-storm/1";

export interface StormPoint {
  readonly second: number;
  readonly phase: "storm";
  /** Sessions live at the end of the second; resumed and failed reconnects so far, and in the second. */
  readonly live: number;
  readonly resumed: number;
  readonly failures: number;
  readonly resumed_per_s: number;
  readonly failures_per_s: number;
  readonly delivered: number;
  readonly to_welcome_ms: { count: number; p50: number; p99: number; max: number };
  readonly cores: Readonly<Record<string, number | null>>;
}

export interface StormRunInput {
  readonly runId: string;
  readonly startedAt: string;
  readonly commandLine: readonly string[];
  readonly options: StormOptions;
  readonly machine: MachineInfo;
  readonly aborted: string | null;
  readonly plan: string;
  readonly setup: Record<string, unknown>;
  readonly connect: ConnectSummary;
  readonly connectLatency: LatencyMs;
  readonly before: { readonly written: number; readonly delivered: number; readonly ms: number };
  readonly drop: { readonly dropped: number; readonly gatewaysEmptyMs: number | null };
  readonly during: { readonly written: number; readonly ms: number };
  readonly reports: readonly StormReport[];
  readonly highestLatencyUs: number;
  readonly gateways: {
    readonly upgradesRefused: Readonly<Record<string, number>>;
    readonly closes: Readonly<Record<string, number>>;
  };
  readonly cpu: { readonly storm: CpuWindow };
  /** Connections the kernel dropped because an accept queue was full, over the storm (machine-wide). */
  readonly listenOverflows: number | null;
  readonly series: readonly StormPoint[];
  readonly serviceLogs: Readonly<Record<string, readonly LogCount[]>>;
  readonly teardown: Teardown;
  readonly warnings: readonly string[];
}

function add(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export function mergeStormReports(reports: readonly StormReport[], highestLatencyUs: number) {
  const toWelcome = latencyHistogram(highestLatencyUs);
  const toCaughtUp = latencyHistogram(highestLatencyUs);
  const failures: Record<string, number> = {};
  const closes: Record<string, number> = {};
  let wallMs = 0;
  const sum = (f: (r: StormReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  for (const r of reports) {
    toWelcome.addSparse(r.toWelcomeUs);
    toCaughtUp.addSparse(r.toCaughtUpUs);
    add(failures, r.failures);
    add(closes, r.closesAfterResume);
    wallMs = Math.max(wallMs, r.wallMs);
  }
  const dropped = sum((r) => r.dropped);
  const resumed = sum((r) => r.resumed);
  return {
    resume: {
      dropped,
      resumed,
      not_resumed: dropped - resumed,
      recovered_true: sum((r) => r.recoveredTrue),
      recovered_false: sum((r) => r.recoveredFalse),
      caught_up: sum((r) => r.caughtUp),
      attempts: sum((r) => r.attempts),
      failed_attempts: failures,
      first_failure: reports.find((r) => r.firstFailure !== null)?.firstFailure ?? null,
      to_welcome_ms: latencyMs(toWelcome.summary()),
      to_caught_up_ms: latencyMs(toCaughtUp.summary()),
      closes_after_resume: closes,
      wall_ms: wallMs,
    },
    messages: {
      expected: sum((r) => r.expected),
      received: sum((r) => r.received),
      lost: sum((r) => r.lost),
      duplicates: sum((r) => r.duplicates),
    },
  };
}

export function buildStormResult(input: StormRunInput) {
  const o = input.options;
  const merged = mergeStormReports(input.reports, input.highestLatencyUs);
  const refused = Object.values(input.gateways.upgradesRefused).reduce((a, b) => a + b, 0);
  const gws = input.cpu.storm.processes.filter((p) => /^gw\d+$/.test(p.name));
  const busiestGateway = gws.reduce((a, p) => Math.max(a, p.cores_used ?? 0), 0);
  return {
    schema: STORM_SCHEMA,
    scenario: "storm",
    run_id: input.runId,
    started_at: input.startedAt,
    command_line: input.commandLine,
    completed: input.aborted === null,
    aborted: input.aborted,
    parameters: {
      clients: o.clients,
      gateways: o.gateways,
      generators: o.generators,
      partitions: o.partitions,
      connect_rate_per_s: o.connectRatePerS,
      messages_before: o.messagesBefore,
      messages_during: o.messagesDuring,
      reconnect_spread_ms: o.reconnectSpreadMs,
      backoff_base_ms: o.backoffBaseMs,
      backoff_cap_ms: o.backoffCapMs,
      handshakes_in_flight_per_generator: o.handshakesInFlight,
      resume_timeout_s: o.resumeTimeoutS,
      local_addresses: o.localAddresses,
      brokers: o.brokers,
    },
    plan: input.plan,
    machine: input.machine,
    setup: input.setup,
    connect: { ...input.connect, connect_ms: input.connectLatency },
    before: { written: input.before.written, delivered: input.before.delivered, ms: input.before.ms },
    drop: { dropped: input.drop.dropped, gateways_empty_ms: input.drop.gatewaysEmptyMs },
    during: { written: input.during.written, ms: input.during.ms },
    resume: merged.resume,
    messages: merged.messages,
    overload: {
      upgrades_refused: input.gateways.upgradesRefused,
      upgrades_refused_total: refused,
      gateway_closes: input.gateways.closes,
      kernel_listen_overflows: input.listenOverflows,
      busiest_gateway_cores: Math.round(busiestGateway * 1000) / 1000,
      machine_busy_cores: input.cpu.storm.machine_busy_cores,
    },
    cpu: input.cpu,
    limited_by: stormLimitedBy(input.cpu.storm, input.machine.cores),
    service_logs: input.serviceLogs,
    teardown: input.teardown,
    warnings: input.warnings,
    series: input.series,
  };
}

/** The busiest processes over the storm, and whether the machine was saturated. */
export function stormLimitedBy(cpu: CpuWindow, cores: number): string {
  const top = [...cpu.processes]
    .sort((a, b) => (b.cores_used ?? 0) - (a.cores_used ?? 0))
    .slice(0, 3)
    .map((p) => `${p.name} ${p.cores_used}`)
    .join(", ");
  const busy = cpu.machine_busy_cores;
  const saturated = busy !== null && busy > cores * 0.9;
  return (
    `${saturated ? "the machine's CPU" : "not the machine's CPU"} (${busy ?? "?"} of ${cores} cores busy over ` +
    `${cpu.seconds} s; busiest: ${top})`
  );
}

export type StormResult = ReturnType<typeof buildStormResult>;

export function stormSummaryText(r: StormResult, file: string): string {
  const p = r.parameters;
  const s = r.resume;
  const lat = (l: LatencyMs) => `p50 ${l.p50}  p99 ${l.p99}  max ${l.max}  (n=${l.count})`;
  const fails = Object.entries(s.failed_attempts)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const lines = [
    `storm: ${p.clients} clients on ${p.gateways} gateways from ${p.generators} generators; ${p.messages_before} events before the drop, ${p.messages_during} while away; reconnect spread ${p.reconnect_spread_ms} ms`,
    `  plan:          ${r.plan}`,
    `  connect:       ${r.connect.connected}/${r.connect.clients} in ${(r.connect.wall_ms / 1000).toFixed(1)} s; before the drop ${r.before.delivered}/${r.before.written} events delivered`,
    `  drop:          ${r.drop.dropped} sockets terminated at once; gateways had none left after ${r.drop.gateways_empty_ms ?? "?"} ms; ${r.during.written} events written while away`,
    `  resume:        ${s.resumed}/${s.dropped} back (recovered true ${s.recovered_true} / false ${s.recovered_false}), not back ${s.not_resumed}, in ${(s.wall_ms / 1000).toFixed(1)} s`,
    `    to welcome ms:   ${lat(s.to_welcome_ms)}`,
    `    to caught up ms: ${lat(s.to_caught_up_ms)}; caught up ${s.caught_up}`,
    `    attempts ${s.attempts}, failed ${Object.values(s.failed_attempts).reduce((a, b) => a + b, 0)}${fails === "" ? "" : ` (${fails})`}`,
    `  messages:      expected ${r.messages.expected}  received ${r.messages.received}  lost ${r.messages.lost}  duplicates ${r.messages.duplicates}`,
    `  overload:      upgrades refused ${r.overload.upgrades_refused_total}${r.overload.upgrades_refused_total > 0 ? ` ${JSON.stringify(r.overload.upgrades_refused)}` : ""}; kernel accept-queue overflows ${r.overload.kernel_listen_overflows ?? "?"}; gateway closes ${JSON.stringify(r.overload.gateway_closes)}; busiest gateway ${r.overload.busiest_gateway_cores} cores, machine ${r.overload.machine_busy_cores ?? "?"} cores busy`,
  ];
  lines.push(`  limited by:    ${r.limited_by}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  lines.push(`  result: ${file}`);
  return lines.join("\n");
}
