/**
 * The `connect` scenario's result as data (the JSON file) and as text (the summary). Pure: the
 * run hands in what it measured.
 */
import type { ConnectOptions } from "./connect-args.ts";
import type { ConnectPoint, ConnectSummary, CpuWindow, Teardown } from "./fanout-run.ts";
import type { LogCount } from "./services.ts";
import type { LatencyMs } from "./report.ts";
import type { MachineInfo } from "./machine.ts";

export const CONNECT_SCHEMA = "rt-loadtest-connect/1";

export interface MemoryReading {
  readonly rss_bytes: number | null;
  readonly heap_used_bytes: number | null;
}

export interface GatewayMemoryRow {
  readonly name: string;
  /** Live sessions (/v1/stats) when the memory was read at the end of the hold. */
  readonly connections: number | null;
  readonly before: MemoryReading;
  readonly after: MemoryReading;
  readonly rss_per_connection_bytes: number | null;
  readonly heap_per_connection_bytes: number | null;
  /**
   * Read once a tenth of the clients were connected: memory the process grows once under load
   * (V8's young generation, buffers) is in it, so (after - early) / (connections - early
   * connections) is what each further connection costs.
   */
  readonly early: (MemoryReading & { readonly connections: number | null }) | null;
  readonly rss_incremental_per_connection_bytes: number | null;
  readonly heap_incremental_per_connection_bytes: number | null;
}

export interface HoldPoint {
  readonly second: number;
  readonly phase: "connect" | "hold";
  readonly held: number;
  readonly failed: number;
  readonly drops: number;
  readonly welcomed_per_s: number;
  readonly connect_ms: ConnectPoint["connect_ms"] | null;
  /** All gateways together, when read that second (every --sample-every seconds while holding). */
  readonly gateways_rss_mib: number | null;
  readonly gateways_heap_mib: number | null;
  readonly cores: Readonly<Record<string, number | null>>;
}

export interface ConnectRunInput {
  readonly runId: string;
  readonly startedAt: string;
  readonly commandLine: readonly string[];
  readonly options: ConnectOptions;
  readonly machine: MachineInfo;
  readonly aborted: string | null;
  readonly openFilesLimit: number | null;
  readonly plan: string;
  readonly setup: Record<string, unknown>;
  readonly connect: ConnectSummary;
  readonly connectLatency: LatencyMs;
  readonly hold: {
    readonly seconds: number;
    readonly heldAtStart: number;
    readonly heldAtEnd: number;
    readonly drops: Readonly<Record<string, number>>;
  };
  readonly gatewayCloses: Readonly<Record<string, number>>;
  readonly memory: readonly GatewayMemoryRow[];
  readonly generatorsRssBytes: number;
  readonly cpu: { readonly connect: CpuWindow; readonly hold: CpuWindow | null };
  readonly series: readonly HoldPoint[];
  readonly serviceLogs: Readonly<Record<string, readonly LogCount[]>>;
  readonly teardown: Teardown;
  readonly warnings: readonly string[];
}

const perConn = (a: number | null, b: number | null, n: number | null): number | null =>
  a === null || b === null || n === null || n <= 0 ? null : Math.round((b - a) / n);

/** Bytes per connection of one gateway, from its readings before and after. */
export function memoryRow(
  name: string,
  connections: number | null,
  before: MemoryReading,
  after: MemoryReading,
  early: (MemoryReading & { readonly connections: number | null }) | null = null,
): GatewayMemoryRow {
  const more =
    early === null || early.connections === null || connections === null
      ? null
      : connections - early.connections;
  return {
    name,
    connections,
    before,
    after,
    rss_per_connection_bytes: perConn(before.rss_bytes, after.rss_bytes, connections),
    heap_per_connection_bytes: perConn(before.heap_used_bytes, after.heap_used_bytes, connections),
    early,
    rss_incremental_per_connection_bytes: perConn(early?.rss_bytes ?? null, after.rss_bytes, more),
    heap_incremental_per_connection_bytes: perConn(
      early?.heap_used_bytes ?? null,
      after.heap_used_bytes,
      more,
    ),
  };
}

/** All gateways together: the deltas summed over the connections summed. */
export function memoryTotal(rows: readonly GatewayMemoryRow[]) {
  let n = 0;
  let rss = 0;
  let heap = 0;
  let rssOk = true;
  let heapOk = true;
  for (const r of rows) {
    n += r.connections ?? 0;
    if (r.before.rss_bytes === null || r.after.rss_bytes === null) rssOk = false;
    else rss += r.after.rss_bytes - r.before.rss_bytes;
    if (r.before.heap_used_bytes === null || r.after.heap_used_bytes === null) heapOk = false;
    else heap += r.after.heap_used_bytes - r.before.heap_used_bytes;
  }
  let more = 0;
  let rssMore = 0;
  let heapMore = 0;
  let earlyOk = rows.length > 0;
  for (const r of rows) {
    const e = r.early;
    if (
      e === null ||
      e.connections === null ||
      r.connections === null ||
      e.rss_bytes === null ||
      e.heap_used_bytes === null ||
      r.after.rss_bytes === null ||
      r.after.heap_used_bytes === null
    ) {
      earlyOk = false;
      continue;
    }
    more += r.connections - e.connections;
    rssMore += r.after.rss_bytes - e.rss_bytes;
    heapMore += r.after.heap_used_bytes - e.heap_used_bytes;
  }
  return {
    connections: n,
    rss_delta_bytes: rssOk ? rss : null,
    heap_delta_bytes: heapOk ? heap : null,
    rss_per_connection_bytes: rssOk && n > 0 ? Math.round(rss / n) : null,
    heap_per_connection_bytes: heapOk && n > 0 ? Math.round(heap / n) : null,
    rss_incremental_per_connection_bytes: earlyOk && more > 0 ? Math.round(rssMore / more) : null,
    heap_incremental_per_connection_bytes: earlyOk && more > 0 ? Math.round(heapMore / more) : null,
  };
}

export function limitedBy(input: Pick<ConnectRunInput, "connect" | "cpu" | "machine">): string {
  const busy = input.cpu.connect.machine_busy_cores;
  if (busy !== null && busy > input.machine.cores * 0.9) {
    const top = [...input.cpu.connect.processes]
      .sort((a, b) => (b.cores_used ?? 0) - (a.cores_used ?? 0))
      .slice(0, 3)
      .map((p) => `${p.name} ${p.cores_used}`)
      .join(", ");
    return `the machine's CPU while connecting (${busy} of ${input.machine.cores} cores busy; busiest: ${top})`;
  }
  return "the offered --connect-rate (the machine had CPU to spare while connecting)";
}

export function buildConnectResult(input: ConnectRunInput) {
  const o = input.options;
  const c = input.connect;
  const dropsTotal = Object.values(input.hold.drops).reduce((a, b) => a + b, 0);
  return {
    schema: CONNECT_SCHEMA,
    scenario: "connect",
    run_id: input.runId,
    started_at: input.startedAt,
    command_line: input.commandLine,
    completed: input.aborted === null,
    aborted: input.aborted,
    parameters: {
      clients: o.clients,
      connect_rate_per_s: o.connectRatePerS,
      hold_s: o.holdS,
      gateways: o.gateways,
      generators: o.generators,
      partitions: o.partitions,
      ping_interval_ms: o.pingIntervalMs,
      sample_every_s: o.sampleEveryS,
      gateway_node_options: o.gatewayNodeOptions ?? null,
      local_addresses: o.localAddresses,
      brokers: o.brokers,
      open_files_limit: input.openFilesLimit,
    },
    plan: input.plan,
    machine: input.machine,
    setup: input.setup,
    connect: {
      ...c,
      rate_per_s:
        c.generators_wall_ms > 0 ? Math.round((c.connected / c.generators_wall_ms) * 1000 * 10) / 10 : null,
      connect_ms: input.connectLatency,
    },
    hold: {
      seconds: input.hold.seconds,
      held_at_start: input.hold.heldAtStart,
      held_at_end: input.hold.heldAtEnd,
      unexpected_drops: dropsTotal,
      drops_by_code: input.hold.drops,
      gateway_closes: input.gatewayCloses,
    },
    memory: {
      gateways: input.memory,
      total: memoryTotal(input.memory),
      generators_rss_bytes: input.generatorsRssBytes,
    },
    cpu: input.cpu,
    limited_by: limitedBy(input),
    service_logs: input.serviceLogs,
    teardown: input.teardown,
    warnings: input.warnings,
    series: input.series,
  };
}

export type ConnectResult = ReturnType<typeof buildConnectResult>;

const kib = (b: number | null | undefined): string =>
  b === null || b === undefined ? "?" : `${(b / 1024).toFixed(2)} KiB`;
const mib = (b: number | null | undefined): string =>
  b === null || b === undefined ? "?" : `${Math.round(b / 1048576)} MiB`;

export function connectSummaryText(r: ConnectResult, file: string): string {
  const p = r.parameters;
  const c = r.connect;
  const t = r.memory.total;
  const lines = [
    `connect: ${p.clients} connections at ${p.connect_rate_per_s}/s on ${p.gateways} gateways from ${p.generators} generators, held ${p.hold_s} s (ping every ${p.ping_interval_ms / 1000} s)`,
    `  plan:          ${r.plan}`,
    `  connect:       ${c.connected}/${c.clients} welcomed in ${(c.generators_wall_ms / 1000).toFixed(1)} s (${c.rate_per_s ?? "?"}/s), failed ${c.failed}${c.first_error === null ? "" : ` (first: ${c.first_error})`}`,
    `                 to welcome ms p50 ${c.connect_ms.p50}  p99 ${c.connect_ms.p99}  max ${c.connect_ms.max}`,
    `  hold:          ${r.hold.held_at_start} -> ${r.hold.held_at_end} held over ${r.hold.seconds} s, unexpected drops ${r.hold.unexpected_drops}` +
      (r.hold.unexpected_drops > 0 ? ` (${JSON.stringify(r.hold.drops_by_code)})` : ""),
    `  memory/conn:   RSS ${kib(t.rss_per_connection_bytes)}  V8 heap ${kib(t.heap_per_connection_bytes)}  (${t.connections} connections; RSS +${mib(t.rss_delta_bytes)}, heap +${mib(t.heap_delta_bytes)})`,
    `  incremental:   RSS ${kib(t.rss_incremental_per_connection_bytes)}  V8 heap ${kib(t.heap_incremental_per_connection_bytes)}  per connection after the first tenth`,
    ...r.memory.gateways.map(
      (g) =>
        `                 ${g.name}: ${g.connections ?? "?"} conns, RSS ${mib(g.before.rss_bytes)} -> ${mib(g.after.rss_bytes)} (${kib(g.rss_per_connection_bytes)}/conn), heap ${mib(g.before.heap_used_bytes)} -> ${mib(g.after.heap_used_bytes)} (${kib(g.heap_per_connection_bytes)}/conn)`,
    ),
    `  generators:    RSS ${mib(r.memory.generators_rss_bytes)} in all`,
    `  limited by:    ${r.limited_by}`,
  ];
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  lines.push(`  result: ${file}`);
  return lines.join("\n");
}
