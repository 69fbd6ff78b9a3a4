/**
 * The results of the `room` and `broadcast` runs, as data (the JSON file) and as text (the
 * summary on stdout), and the verdict on what limited a run. Pure: the runs hand in what they
 * measured; nothing here reads a clock or a file.
 */
import type { BroadcastOptions, RoomOptions } from "./fanout-args.ts";
import { membersInRoom } from "./fanout-protocol.ts";
import type { ConnectSummary, CpuWindow, Teardown } from "./fanout-run.ts";
import { sparseSummary, type FanoutTotals } from "./fanout-tracker.ts";
import type { HistogramSummary } from "./histogram.ts";
import type { MachineInfo } from "./machine.ts";
import { GENERATOR_CPU_WARN_FRACTION, latencyMs, type LatencyMs } from "./report.ts";
import type { LogCount } from "./services.ts";

export const ROOM_SCHEMA = "rt-loadtest-room/1";
export const BROADCAST_SCHEMA = "rt-loadtest-broadcast/1";
/** Share of the machine's cores above which it counts as saturated. */
export const MACHINE_SATURATED_FRACTION = 0.85;
/** Cores of other work (not the run's processes) above which a result says so. */
export const OTHER_WORK_WARN_CORES = 0.25;

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));

export interface FanoutSeriesPoint {
  readonly second: number;
  readonly phase: string;
  readonly sent: number;
  readonly accepted: number;
  readonly delivered: number;
  /** Latency of the deliveries that arrived in this second. */
  readonly latency_ms: { count: number; p50: number; p99: number; max: number };
  readonly cores: Readonly<Record<string, number | null>>;
}

export function seriesLatency(us: HistogramSummary): FanoutSeriesPoint["latency_ms"] {
  return {
    count: us.count,
    p50: round3(us.p50 / 1000),
    p99: round3(us.p99 / 1000),
    max: round3(us.max / 1000),
  };
}

/** Single-threaded processes: at about one core they are the limit, whatever the machine has left. */
const isNodeProcess = (name: string) => name !== "kafka";
const isGenerator = (name: string) => name === "main" || /^gen\d+$/.test(name);

/** What the CPU numbers of the measured window say: warnings, and the one line on what limited it. */
export function cpuVerdict(w: CpuWindow, cores: number): { warnings: string[]; limited_by: string } {
  const warnings: string[] = [];
  const procs = w.processes
    .filter((p): p is typeof p & { cores_used: number } => p.cores_used !== null)
    .sort((a, b) => b.cores_used - a.cores_used);
  const list = (ps: typeof procs) => ps.map((p) => `${p.name} ${fmt(p.cores_used)}`).join(", ");
  for (const p of procs) {
    if (isGenerator(p.name) && p.cores_used > GENERATOR_CPU_WARN_FRACTION) {
      warnings.push(
        `load generator ${p.name} used ${Math.round(p.cores_used * 100)}% of one core while measuring: ` +
          `the numbers may measure the generator, not the backbone (add --generators, or lower the load)`,
      );
    }
  }
  const saturated =
    w.machine_busy_cores !== null && w.machine_busy_cores >= cores * MACHINE_SATURATED_FRACTION;
  if (saturated) {
    warnings.push(
      `the machine's ${cores} cores were ${Math.round((w.machine_busy_cores! / cores) * 100)}% busy while measuring ` +
        `(busiest: ${list(procs.slice(0, 3))}): every process competed for CPU`,
    );
  }
  if (w.other_busy_cores !== null && w.other_busy_cores > OTHER_WORK_WARN_CORES) {
    warnings.push(`other work on the machine used ${fmt(w.other_busy_cores)} cores while measuring`);
  }
  const hot = procs.filter((p) => isNodeProcess(p.name) && p.cores_used >= GENERATOR_CPU_WARN_FRACTION);
  const limited_by =
    hot.length > 0
      ? `${list(hot)} cores: ${hot.length === 1 ? "a single-threaded process at" : "single-threaded processes at"} ` +
        `about one core` +
        (saturated ? `, on a saturated machine (${fmt(w.machine_busy_cores!)} of ${cores} cores busy)` : "")
      : saturated
        ? `the machine's CPU: ${fmt(w.machine_busy_cores!)} of ${cores} cores busy (busiest: ${list(procs.slice(0, 3))})`
        : `nothing saturated (${w.machine_busy_cores === null ? "?" : fmt(w.machine_busy_cores)} of ${cores} cores busy; ` +
          `busiest: ${list(procs.slice(0, 2))}): the offered load`;
  return { warnings, limited_by };
}

/** Indices of the samples that bracket [startMs, endMs]: the last at or before, the first at or after. */
export function bracket(times: readonly number[], startMs: number, endMs: number): [number, number] | null {
  if (times.length < 2) return null;
  let a = 0;
  while (a + 1 < times.length && times[a + 1]! <= startMs) a++;
  let b = times.length - 1;
  while (b - 1 > a && times[b - 1]! >= endMs) b--;
  return b > a ? [a, b] : null;
}

/** Several CPU windows as one: CPU seconds added up, over their seconds added up. */
export function sumWindows(windows: readonly CpuWindow[]): CpuWindow | null {
  if (windows.length === 0) return null;
  const seconds = windows.reduce((a, w) => a + w.seconds, 0);
  const first = windows[0]!;
  const processes = first.processes.map((p, i) => {
    const parts = windows.map((w) => w.processes[i]);
    if (parts.some((q) => q === undefined || q.name !== p.name || q.cpu_s === null)) {
      return {
        name: p.name,
        pid: p.pid,
        cpu_s: null,
        cores_used: null,
        error: "not sampled in every window",
      };
    }
    const cpuS = parts.reduce((a, q) => a + q!.cpu_s!, 0);
    return { name: p.name, pid: p.pid, cpu_s: round3(cpuS), cores_used: round3(cpuS / seconds) };
  });
  const machine = windows.every((w) => w.machine_busy_cores !== null)
    ? round3(windows.reduce((a, w) => a + w.machine_busy_cores! * w.seconds, 0) / seconds)
    : null;
  const ours = processes.reduce((a, p) => a + (p.cores_used ?? 0), 0);
  return {
    seconds: round3(seconds),
    processes,
    machine_busy_cores: machine,
    other_busy_cores: machine === null ? null : round3(Math.max(0, machine - ours)),
  };
}

function correctnessWarnings(t: FanoutTotals): string[] {
  const w: string[] = [];
  if (t.lost > 0) w.push(`${t.lost} expected deliveries never arrived at connected clients`);
  if (t.duplicates > 0) w.push(`${t.duplicates} deliveries arrived twice`);
  if (t.outOfOrder > 0) w.push(`${t.outOfOrder} deliveries arrived out of order`);
  if (t.closedClients > 0) {
    w.push(
      `${t.closedClients} clients' sockets closed during the run (${t.undeliveredClosed} deliveries missed by them)`,
    );
  }
  if (t.unexpected > 0) w.push(`${t.unexpected} deliveries of messages whose send was refused or unanswered`);
  if (t.foreign > 0) w.push(`${t.foreign} events of the run's type could not be placed (foreign)`);
  return w;
}

interface CommonInput {
  readonly runId: string;
  readonly startedAt: string;
  readonly commandLine: readonly string[];
  readonly machine: MachineInfo;
  readonly aborted: string | null;
  readonly setup: {
    readonly services: unknown;
    readonly startup_ms: number;
    readonly kafka_brokers: number;
    readonly topic_prefix: string;
    readonly service_env: { gateway: Record<string, string>; router: Record<string, string> };
    readonly clock: readonly { name: string; offset_ms: number; rtt_ms: number }[];
  };
  readonly connect: ConnectSummary;
  readonly totals: FanoutTotals;
  readonly cpu: CpuWindow;
  readonly generator: {
    readonly tick_lateness_ms: LatencyMs;
    readonly event_loop_delay_p99_ms: number;
    readonly rss_bytes: number;
  };
  readonly series: readonly FanoutSeriesPoint[];
  readonly serviceLogs: Readonly<Record<string, readonly LogCount[]>>;
  readonly teardown: Teardown;
  readonly warnings: readonly string[];
}

function teardownWarnings(t: Teardown): string[] {
  const w: string[] = [];
  if (t.processes_left_running > 0)
    w.push(`${t.processes_left_running} child processes were still running after the teardown`);
  if (t.topics_error !== null) w.push(`the run's topics were not deleted: ${t.topics_error}`);
  return w;
}

function logWarnings(logs: Readonly<Record<string, readonly LogCount[]>>): string[] {
  const w: string[] = [];
  for (const [name, list] of Object.entries(logs)) {
    const errors = list
      .filter((l) => l.level === "error" || l.level === "fatal")
      .reduce((a, l) => a + l.count, 0);
    if (errors > 0) w.push(`${name} logged ${errors} error lines (see service_logs)`);
  }
  return w;
}

function totalsJson(t: FanoutTotals) {
  return {
    clients: t.clients,
    delivered: t.delivered,
    lost: t.lost,
    duplicates: t.duplicates,
    out_of_order: t.outOfOrder,
    undelivered_closed_client: t.undeliveredClosed,
    closed_clients: t.closedClients,
    delivered_unexpected: t.unexpected,
    foreign_events: t.foreign,
  };
}

function common(
  input: CommonInput,
  schema: string,
  scenario: string,
  verdict: { warnings: string[]; limited_by: string },
) {
  return {
    schema,
    scenario,
    run_id: input.runId,
    started_at: input.startedAt,
    command_line: input.commandLine,
    completed: input.aborted === null,
    aborted: input.aborted,
    machine: input.machine,
    setup: input.setup,
    connect: input.connect,
    cpu: input.cpu,
    limited_by: verdict.limited_by,
    generator: input.generator,
  };
}

// ---- room ----

export interface RoomRunInput extends CommonInput {
  readonly options: RoomOptions;
  readonly join: {
    readonly ms: number;
    readonly joined: number;
    readonly refused: Readonly<Record<string, number>>;
  };
  readonly sends: {
    readonly sent: number;
    readonly accepted: number;
    readonly failed: Readonly<Record<string, number>>;
    readonly no_answer: number;
    readonly skipped_behind_schedule: number;
    readonly skipped_backpressure: number;
    readonly skipped_closed_sender: number;
  };
  readonly expectedDeliveries: number;
  readonly measuredS: number;
  readonly sentInWindow: number;
  readonly acceptedInWindow: number;
  readonly ackUs: HistogramSummary;
  /** The router's /v1/stats `fanout` at the start and end of the measured window. */
  readonly router: { readonly measure_start: RouterFanout | null; readonly measure_end: RouterFanout | null };
}

export interface RouterFanout {
  readonly events: number;
  readonly deliveries: number;
  readonly transactions: number;
  readonly aborted?: number;
  readonly members?: number;
  readonly rooms?: number;
}

/** Deliveries per second the offered rate asks for: every recipient of each room gets its messages. */
export function offeredDeliveriesPerS(o: RoomOptions): number {
  const senders = o.via === "member" ? 1 : 0;
  let perRoomRecipients = 0;
  for (let r = 0; r < o.rooms; r++) perRoomRecipients += membersInRoom(r, o.members, o.rooms) + senders;
  return round3((o.ratePerS / o.rooms) * perRoomRecipients);
}

export function buildRoomResult(input: RoomRunInput) {
  const o = input.options;
  const t = input.totals;
  const perS = (n: number) => round3(n / input.measuredS);
  const verdict = cpuVerdict(input.cpu, input.machine.cores);
  const s = input.sends;
  const failedSends = Object.entries(s.failed);
  const a = input.router.measure_start;
  const b = input.router.measure_end;
  const sendWarnings: string[] = [];
  if (failedSends.length > 0)
    sendWarnings.push(`sends failed (${failedSends.map(([c, n]) => `${c}=${n}`).join(" ")})`);
  if (s.no_answer > 0) sendWarnings.push(`${s.no_answer} sends never got an answer`);
  if (s.skipped_behind_schedule > 0)
    sendWarnings.push(`${s.skipped_behind_schedule} sends skipped: the sender fell over 1 s behind schedule`);
  if (s.skipped_backpressure > 0)
    sendWarnings.push(
      `${s.skipped_backpressure} sends skipped: the sender's socket or publish requests were backed up`,
    );
  if (s.skipped_closed_sender > 0)
    sendWarnings.push(`${s.skipped_closed_sender} sends skipped: a sender's socket closed`);
  if (input.generator.tick_lateness_ms.p99 > 50) {
    sendWarnings.push(
      `the send timer fired up to ${input.generator.tick_lateness_ms.p99} ms late (p99): the main process is busy`,
    );
  }
  return {
    ...common(input, ROOM_SCHEMA, "room", verdict),
    parameters: {
      brokers: o.brokers,
      gateways: o.gateways,
      generators: o.generators,
      members: o.members,
      rooms: o.rooms,
      senders: o.via === "member" ? o.rooms : 0,
      via: o.via,
      offered_rate_per_s: o.ratePerS,
      offered_deliveries_per_s: offeredDeliveriesPerS(o),
      warmup_s: o.warmupS,
      duration_s: o.durationS,
      grace_s: o.graceS,
      partitions: o.partitions,
      room_partitions: o.roomPartitions,
      payload_bytes: o.payloadBytes,
      connect_rate_per_s: o.connectRatePerS,
      local_addresses: o.localAddresses,
      kafka_pid: o.kafkaPid ?? null,
      allow_remote: o.allowRemote,
    },
    join: input.join,
    sends: input.sends,
    totals: { ...totalsJson(t), expected_deliveries: input.expectedDeliveries },
    measured: {
      seconds: input.measuredS,
      sent: input.sentInWindow,
      accepted: input.acceptedInWindow,
      delivered: t.deliveredInWindow,
      sent_per_s: perS(input.sentInWindow),
      delivered_per_s: perS(t.deliveredInWindow),
      router_deliveries_per_s: a === null || b === null ? null : perS(b.deliveries - a.deliveries),
      router_transactions_per_s: a === null || b === null ? null : perS(b.transactions - a.transactions),
      end_to_end_latency_ms: latencyMs(sparseSummary(t.latencyUs)),
      ack_latency_ms: latencyMs(input.ackUs),
    },
    router: input.router,
    warnings: [
      ...input.warnings,
      ...verdict.warnings,
      ...sendWarnings,
      ...correctnessWarnings(t),
      ...logWarnings(input.serviceLogs),
      ...teardownWarnings(input.teardown),
    ],
    service_logs: input.serviceLogs,
    teardown: input.teardown,
    series: input.series,
  };
}

export type RoomResult = ReturnType<typeof buildRoomResult>;

function cpuLine(c: CpuWindow, cores: number): string {
  const procs = c.processes
    .map((p) => `${p.name} ${p.cores_used === null ? "?" : fmt(p.cores_used)}`)
    .join("  ");
  const machine =
    c.machine_busy_cores === null
      ? ""
      : `  | machine ${fmt(c.machine_busy_cores)}/${cores} busy (others ${fmt(c.other_busy_cores ?? 0)})`;
  return `${procs}${machine}`;
}

const lat = (l: LatencyMs) =>
  `p50 ${fmt(l.p50)}  p90 ${fmt(l.p90)}  p99 ${fmt(l.p99)}  p99.9 ${fmt(l.p99_9)}  max ${fmt(l.max)}  (n=${l.count})`;

export function roomSummaryText(r: RoomResult, outPath: string): string {
  const p = r.parameters;
  const m = r.measured;
  const t = r.totals;
  const failed = Object.entries(r.sends.failed)
    .map(([c, n]) => `${c}=${n}`)
    .join(" ");
  return [
    `room: ${p.members} members in ${p.rooms} room(s)` +
      (p.senders > 0 ? ` + ${p.senders} sending member(s)` : "") +
      ` via ${p.via}, ${p.gateways} gateways, ${p.generators} generator(s); offered ${fmt(p.offered_rate_per_s)} msgs/s ` +
      `= ${fmt(p.offered_deliveries_per_s)} deliveries/s; ${p.warmup_s}s warmup + ${p.duration_s}s measured` +
      (r.completed ? "" : `  ABORTED: ${r.aborted}`),
    `  rates (measured):  sent ${fmt(m.sent_per_s)}/s  delivered ${fmt(m.delivered_per_s)}/s` +
      (m.router_deliveries_per_s === null ? "" : `  (router wrote ${fmt(m.router_deliveries_per_s)}/s)`),
    `  end-to-end ms:     ${lat(m.end_to_end_latency_ms)}`,
    `  send ack ms:       p50 ${fmt(m.ack_latency_ms.p50)}  p99 ${fmt(m.ack_latency_ms.p99)}  max ${fmt(m.ack_latency_ms.max)}`,
    `  totals:            sent ${r.sends.sent}  accepted ${r.sends.accepted}  failed ${failed === "" ? "0" : failed}  ` +
      `no answer ${r.sends.no_answer}  expected deliveries ${t.expected_deliveries}  delivered ${t.delivered}`,
    `  correctness:       lost ${t.lost}  duplicates ${t.duplicates}  out-of-order ${t.out_of_order}` +
      (t.undelivered_closed_client > 0 ? `  missed by closed clients ${t.undelivered_closed_client}` : ""),
    `  cpu (cores):       ${cpuLine(r.cpu, r.machine.cores)}`,
    `  limited by:        ${r.limited_by}`,
    `  setup:             ${r.connect.connected}/${r.connect.clients} connected in ${r.connect.wall_ms} ms, ` +
      `all joined in ${r.join.ms} ms`,
    ...r.warnings.map((w) => `  WARNING: ${w}`),
    `  result: ${outPath}`,
  ].join("\n");
}

// ---- broadcast ----

export interface BroadcastSent {
  readonly k: number;
  /** Seconds after the first broadcast. */
  readonly at_s: number;
  /** Time to the publish API's answer. */
  readonly publish_ms: number | null;
  readonly ok: boolean;
  readonly code: string | null;
}

export interface BroadcastRunInput extends CommonInput {
  readonly options: BroadcastOptions;
  readonly probes: {
    readonly sent: number;
    readonly ms: number;
    readonly nodes: readonly string[];
    readonly covered: readonly string[];
  };
  readonly sent: readonly BroadcastSent[];
  /** CPU while broadcasts were being delivered: from each publish to its last client, added up. */
  readonly deliveryCpu: CpuWindow | null;
}

export function buildBroadcastResult(input: BroadcastRunInput) {
  const o = input.options;
  const t = input.totals;
  // Broadcasts are bursts: what limits them shows while they are delivered, not on average.
  const verdict = cpuVerdict(input.deliveryCpu ?? input.cpu, input.machine.cores);
  const connected = input.connect.connected;
  const per = input.sent.map((b) => {
    const slot = t.slots[b.k];
    const s = slot === undefined ? null : sparseSummary(slot.latencyUs);
    return {
      ...b,
      received: slot?.received ?? 0,
      missed: b.ok ? (slot?.lost ?? 0) : null,
      latency_ms: s === null ? null : latencyMs(s),
      time_to_last_ms: s === null || s.count === 0 ? null : round3(s.max / 1000),
    };
  });
  const toLast = per
    .filter((b) => b.ok && b.time_to_last_ms !== null)
    .map((b) => b.time_to_last_ms!)
    .sort((x, y) => x - y);
  const accepted = input.sent.filter((b) => b.ok).length;
  const failed = input.sent.filter((b) => !b.ok);
  const w: string[] = [];
  if (failed.length > 0)
    w.push(
      `${failed.length} broadcasts were refused by the publish API (${failed.map((b) => b.code).join(", ")})`,
    );
  if (input.probes.covered.length < input.probes.nodes.length) {
    w.push(
      `probe broadcasts never reached clients on ${input.probes.nodes.filter((n) => !input.probes.covered.includes(n)).join(", ")}`,
    );
  }
  return {
    ...common(input, BROADCAST_SCHEMA, "broadcast", verdict),
    parameters: {
      brokers: o.brokers,
      gateways: o.gateways,
      generators: o.generators,
      clients: o.clients,
      broadcasts: o.broadcasts,
      interval_s: o.intervalS,
      grace_s: o.graceS,
      partitions: o.partitions,
      payload_bytes: o.payloadBytes,
      connect_rate_per_s: o.connectRatePerS,
      local_addresses: o.localAddresses,
      kafka_pid: o.kafkaPid ?? null,
      allow_remote: o.allowRemote,
    },
    probes: input.probes,
    cpu_during_deliveries: input.deliveryCpu,
    totals: {
      ...totalsJson(t),
      broadcasts_sent: input.sent.length,
      broadcasts_accepted: accepted,
      expected_deliveries: accepted * connected,
      missed: t.lost,
    },
    measured: {
      latency_ms: latencyMs(sparseSummary(t.latencyUs)),
      time_to_last_client_ms: {
        p50: toLast.length === 0 ? null : toLast[Math.floor((toLast.length - 1) / 2)]!,
        max: toLast.at(-1) ?? null,
      },
    },
    broadcasts: per,
    warnings: [
      ...input.warnings,
      ...verdict.warnings,
      ...w,
      ...correctnessWarnings(t),
      ...logWarnings(input.serviceLogs),
      ...teardownWarnings(input.teardown),
    ],
    service_logs: input.serviceLogs,
    teardown: input.teardown,
    series: input.series,
  };
}

export type BroadcastResult = ReturnType<typeof buildBroadcastResult>;

export function broadcastSummaryText(r: BroadcastResult, outPath: string): string {
  const p = r.parameters;
  const t = r.totals;
  const m = r.measured;
  const per = r.broadcasts
    .slice(0, 20)
    .map(
      (b) =>
        `    #${b.k} at ${fmt(b.at_s)}s: ` +
        (b.ok
          ? `${b.received}/${r.connect.connected} (missed ${b.missed}), p50 ${fmt(b.latency_ms?.p50 ?? 0)}  ` +
            `p99 ${fmt(b.latency_ms?.p99 ?? 0)}  last ${b.time_to_last_ms === null ? "-" : fmt(b.time_to_last_ms)} ms  ` +
            `(publish answered in ${b.publish_ms === null ? "-" : fmt(b.publish_ms)} ms)`
          : `refused: ${b.code}`),
    );
  return [
    `broadcast: ${r.connect.connected}/${p.clients} clients on ${p.gateways} gateways from ${p.generators} generator(s), ` +
      `${p.broadcasts} broadcasts every ${p.interval_s} s via POST /v1/publish to channel:*` +
      (r.completed ? "" : `  ABORTED: ${r.aborted}`),
    `  per-client ms:     ${lat(m.latency_ms)}`,
    `  to last client ms: median ${m.time_to_last_client_ms.p50 ?? "-"}  worst ${m.time_to_last_client_ms.max ?? "-"}`,
    `  per broadcast:`,
    ...per,
    ...(r.broadcasts.length > per.length
      ? [`    ... ${r.broadcasts.length - per.length} more in the result file`]
      : []),
    `  totals:            accepted ${t.broadcasts_accepted}/${t.broadcasts_sent}  expected ${t.expected_deliveries}  ` +
      `delivered ${t.delivered}  missed ${t.missed}  duplicates ${t.duplicates}` +
      (t.undelivered_closed_client > 0 ? `  missed by closed clients ${t.undelivered_closed_client}` : ""),
    `  cpu (cores):       ${cpuLine(r.cpu, r.machine.cores)}`,
    ...(r.cpu_during_deliveries === null
      ? []
      : [
          `  while delivering:  ${cpuLine(r.cpu_during_deliveries, r.machine.cores)}  (${fmt(r.cpu_during_deliveries.seconds)} s)`,
        ]),
    `  limited by:        ${r.limited_by}`,
    `  setup:             ${r.connect.connected} connected in ${r.connect.wall_ms} ms; probes reached every gateway after ${r.probes.ms} ms`,
    ...r.warnings.map((w) => `  WARNING: ${w}`),
    `  result: ${outPath}`,
  ].join("\n");
}
