/**
 * What the `room`, `broadcast`, `connect` and `storm` runs share: setup and teardown around the scenario itself.
 *
 * 1. Checks: the open-files limit of every generator process, then Kafka.
 * 2. Its own router and gateways (churn-backbone.ts) on that Kafka, with a random token secret,
 *    topic prefix and router id, and the limits the run needs (fanout-layout.ts); for rooms,
 *    until the router's fanout owns every room partition with its membership rebuilt.
 * 3. Generator processes (fanout-generators.ts), each connecting its share of the clients
 *    straight to the gateway that owns each user's partition; their clocks are calibrated.
 * 4. The scenario (room.ts, broadcast.ts, connect.ts, storm.ts).
 * 5. Teardown, on every path: generators closed, services stopped, the run's topics deleted.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Backbone, ChurnSetupError, STARTUP_MAX_MS } from "./churn-backbone.ts";
import { coresBetween, cpuBetween, CpuSampler, type ProcRef, type Sample } from "./cpu-sampler.ts";
import type { ConnectOptions, StormOptions } from "./connect-args.ts";
import type { BroadcastOptions, RoomOptions } from "./fanout-args.ts";
import { GeneratorError, Generators } from "./fanout-generators.ts";
import { latencyHistogram } from "./fanout-tracker.ts";
import type { ConnectReport, WorkerConfig } from "./fanout-ipc.ts";
import { clientUsers, gatewayFileCheck, generatorFileCheck, serviceEnv, shares } from "./fanout-layout.ts";
import { roomSenderUser } from "./fanout-protocol.ts";
import {
  clockTicksPerSecond,
  machineCpuTicks,
  machineInfo,
  openFilesLimit,
  type MachineInfo,
} from "./machine.ts";
import { latencyMs, type LatencyMs, type ProcessCpu } from "./report.ts";
import type { Histogram } from "./histogram.ts";
import { checkKafka, deleteTopics, liveServiceCount, type LogCount } from "./services.ts";

const KAFKA_CHECK_MS = 10_000;
const TOPICS_DELETE_MS = 15_000;
const TEARDOWN_MAX_S = 60;
/** After the last client was due to start connecting, how long the connect phase may go on. */
export const CONNECT_SLACK_S = 90;
/** Longest wait for the router's fanout to own every room partition. */
const FANOUT_READY_MS = 60_000;
const LOG_TOP = 15;

/** The run could not start, or its environment cannot hold it: one line says why. */
export class FanoutSetupError extends Error {
  override readonly name = "FanoutSetupError";
}

export type FanoutOptions = RoomOptions | BroadcastOptions | ConnectOptions | StormOptions;

/** One second of the connect phase: totals so far, and the connects welcomed in that second. */
export interface ConnectPoint {
  readonly second: number;
  readonly connected: number;
  readonly failed: number;
  readonly closed: number;
  readonly welcomed: number;
  /** Start to welcome of the connects welcomed in that second. */
  readonly connect_ms: { count: number; p50: number; p99: number; max: number };
  readonly cores: Record<string, number | null>;
}

/** What a scenario may add to the shared setup. */
export interface FanoutHooks {
  /** Runs once the services are up, before any client connects (e.g. a memory baseline). */
  readonly beforeConnect?: (backbone: Backbone) => Promise<void>;
  /** The generator processes' entry point (default loadtest/fanout-worker.ts). */
  readonly workerScript?: string;
  /** Connect failures are a result of the scenario, not a reason to stop (connect). */
  readonly keepFailedConnects?: boolean;
  /** More `node` arguments for every gateway (connect: a full GC on SIGUSR2, gc-preload.ts). */
  readonly gatewayNodeArgs?: readonly string[];
  /** Extra node flags of the generator processes (a CPU profile). */
  readonly generatorNodeArgs?: readonly string[];
  /** Called once a second while connecting with the clients welcomed so far (not awaited). */
  readonly onConnectProgress?: (backbone: Backbone, connected: number) => void;
}

export const clientCount = (o: FanoutOptions): number => (o.scenario === "room" ? o.members : o.clients);

/** The setup's share of the hard deadline, in seconds: startup, Kafka check, connecting. */
export function setupDeadlineS(o: FanoutOptions): number {
  return (
    STARTUP_MAX_MS / 1000 +
    FANOUT_READY_MS / 1000 +
    KAFKA_CHECK_MS / 1000 +
    clientCount(o) / o.connectRatePerS +
    CONNECT_SLACK_S +
    TEARDOWN_MAX_S
  );
}

export const now = (): number => performance.timeOrigin + performance.now();

export interface ConnectSummary {
  readonly clients: number;
  readonly connected: number;
  readonly failed: number;
  readonly first_error: string | null;
  readonly redirected: number;
  readonly wall_ms: number;
  /** The longest generator's connect phase alone (its process start not included). */
  readonly generators_wall_ms: number;
  readonly per_node: Record<string, number>;
  readonly local_addresses: string[];
  readonly per_generator: { name: string; pid: number; first: number; clients: number; connected: number }[];
}

export interface Teardown {
  readonly generators_close_ms: number;
  readonly sockets_terminated: number;
  readonly services_exit_codes: Record<string, number>;
  readonly processes_left_running: number;
  readonly topics_deleted: number | null;
  readonly topics_error: string | null;
}

/** CPU over a window: each process, the machine as a whole, and what that leaves for others. */
export interface CpuWindow {
  readonly seconds: number;
  readonly processes: ProcessCpu[];
  /** Busy cores of the whole machine (/proc/stat), everything included. */
  readonly machine_busy_cores: number | null;
  /** Busy cores not accounted for by the run's processes (other work on the machine). */
  readonly other_busy_cores: number | null;
}

export interface FanoutContext {
  readonly runId: string;
  readonly secret: string;
  readonly tokenTtlS: number;
  readonly topicPrefix: string;
  readonly machine: MachineInfo;
  readonly warnings: string[];
  readonly backbone: Backbone;
  readonly generators: Generators;
  readonly connect: ConnectSummary;
  /** The connect phase second by second, and its CPU. */
  readonly connectSeries: readonly ConnectPoint[];
  readonly connectCpu: CpuWindow;
  /** Start to welcome of every client, over the connect phase. */
  readonly connectLatency: LatencyMs;
  readonly clock: { name: string; offset_ms: number; rtt_ms: number }[];
  readonly startupMs: number;
  readonly kafkaBrokers: number;
  readonly serviceEnv: { gateway: Record<string, string>; router: Record<string, string> };
  readonly highestLatencyUs: number;
  /** Each deliveries partition's gateway (its WebSocket URL). */
  readonly owners: ReadonlyMap<number, string>;
  readonly cpu: CpuSampler;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
  /** CPU of every process between two samples taken with `sampleCpu`. */
  cpuWindow(a: CpuMark, b: CpuMark): CpuWindow;
  sampleCpu(): CpuMark;
  /** Cores each process used since the previous call (for the per-second series). */
  coresSinceLast(): Record<string, number | null>;
  serviceLogs(): Record<string, LogCount[]>;
  /** Closes the generators, stops the services, deletes the topics. Safe to call twice. */
  tearDown(): Promise<Teardown>;
}

export interface CpuMark {
  readonly atMs: number;
  readonly procs: Sample;
  readonly machine: { busy: number; total: number } | null;
}

/** Waits until the router's fanout owns every room partition and rebuilds none. */
async function fanoutReady(
  backbone: Backbone,
  roomPartitions: number,
  signal: AbortSignal,
  log: (l: string) => void,
) {
  const deadline = Date.now() + FANOUT_READY_MS;
  let last = "";
  for (;;) {
    const body = (await backbone.routerStats()) as {
      fanout?: { owned?: number[]; rebuilding?: number[] } | null;
    } | null;
    const f = body?.fanout;
    const why =
      f === undefined || f === null
        ? "the router's fanout is not running yet"
        : (f.owned?.length ?? 0) !== roomPartitions || (f.rebuilding?.length ?? 1) !== 0
          ? `the router's fanout owns ${f.owned?.length ?? "?"} of ${roomPartitions} room partitions, rebuilding ${JSON.stringify(f.rebuilding ?? "?")}`
          : null;
    if (why === null) return;
    if (why !== last) log(`waiting: ${why}`);
    last = why;
    if (signal.aborted) throw new FanoutSetupError("interrupted while waiting for the router's fanout");
    if (Date.now() > deadline)
      throw new FanoutSetupError(`not ready within ${FANOUT_READY_MS / 1000} s: ${why}`);
    await sleep(250);
  }
}

/** Sets up, runs `scenario`, and tears down on every path. */
export async function runFanout<R>(
  o: FanoutOptions,
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string | null,
  highestLatencyUs: number,
  workerShape: (
    runId: string,
  ) => Pick<WorkerConfig, "groups" | "slots" | "perSlot" | "join"> &
    Partial<Pick<WorkerConfig, "backoffBaseMs" | "backoffCapMs" | "handshakesInFlight">>,
  scenario: (ctx: FanoutContext) => Promise<R>,
  hooks: FanoutHooks = {},
): Promise<R> {
  const machine = machineInfo();
  const warnings: string[] = [];
  if (machine.load_average_1m_at_start > machine.cores * 0.5) {
    warnings.push(
      `load average ${machine.load_average_1m_at_start} on ${machine.cores} cores at start: ` +
        `the machine was not idle, so the numbers may be noisy`,
    );
  }
  const clients = clientCount(o);
  const limit = openFilesLimit();
  const fdProblem = generatorFileCheck(clients, o.generators, limit);
  if (fdProblem !== null) throw new FanoutSetupError(fdProblem);
  const runId = randomBytes(4).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const topicPrefix = `lt-${runId}.`;
  log(
    `run ${runId}: checking Kafka at ${o.brokers.join(",")} (open files per process: ${limit ?? "unknown"})`,
  );
  const kafka = await checkKafka(o.brokers, KAFKA_CHECK_MS);
  if (!kafka.ok) throw new FanoutSetupError(kafka.message);

  const env = serviceEnv(o, runId);
  log(`starting a router and ${o.gateways} gateways (topics ${topicPrefix}*, ${o.partitions} partitions)`);
  const setupStart = Date.now();
  let backbone: Backbone;
  try {
    backbone = await Backbone.start(
      {
        brokers: o.brokers,
        gateways: o.gateways,
        partitions: o.partitions,
        sessionTimeoutMs: 10_000,
        secret,
        topicPrefix,
        runId,
        logFile,
        gatewayEnv: env.gateway,
        routerEnv: env.router,
        ...(hooks.gatewayNodeArgs === undefined ? {} : { gatewayNodeArgs: hooks.gatewayNodeArgs }),
      },
      signal,
      log,
    );
  } catch (e) {
    await deleteTopics(o.brokers, topicPrefix, TOPICS_DELETE_MS);
    throw e instanceof ChurnSetupError ? new FanoutSetupError(e.message, { cause: e }) : e;
  }
  let generators: Generators | null = null;
  let teardown: Promise<Teardown> | null = null;
  const tearDown = () =>
    (teardown ??= (async () => {
      const closed = generators === null ? { ms: 0, terminated: 0 } : await generators.close();
      const codes = await backbone.stop();
      const topics = await deleteTopics(o.brokers, topicPrefix, TOPICS_DELETE_MS);
      return {
        generators_close_ms: closed.ms,
        sockets_terminated: closed.terminated,
        services_exit_codes: codes,
        processes_left_running: liveServiceCount(),
        topics_deleted: "deleted" in topics ? topics.deleted : null,
        topics_error: "error" in topics ? topics.error : null,
      };
    })());

  try {
    if (o.scenario === "room") await fanoutReady(backbone, o.roomPartitions, signal, log);
    const startupMs = Date.now() - setupStart;
    const owners = await backbone.owners();
    const users = clientUsers(runId, clients);
    if (o.scenario === "room" && o.via === "member") {
      for (let r = 0; r < o.rooms; r++) users.push(roomSenderUser(runId, r));
    }
    const gwProblem = gatewayFileCheck(users, o.partitions, owners, limit);
    if (gwProblem !== null) throw new FanoutSetupError(gwProblem);
    if (hooks.beforeConnect !== undefined) await hooks.beforeConnect(backbone);

    const tokenTtlS = Math.ceil(setupDeadlineS(o)) + 3600;
    const parts = shares(clients, o.generators);
    const shape = workerShape(runId);
    const configs: WorkerConfig[] = parts.map((p, index) => ({
      scenario: o.scenario,
      runId,
      index,
      secret,
      tokenTtlS,
      first: p.first,
      count: p.count,
      ...shape,
      partitions: o.partitions,
      owners: Object.fromEntries([...owners].map(([k, v]) => [String(k), v])),
      localAddresses: o.localAddresses,
      connectRatePerS: (o.connectRatePerS * p.count) / clients,
      highestLatencyUs,
      allowRemote: o.allowRemote,
    }));
    log(`connecting ${clients} clients from ${o.generators} generator processes at ${o.connectRatePerS}/s`);
    const g = Generators.start(configs, highestLatencyUs, hooks.workerScript, hooks.generatorNodeArgs);
    generators = g;
    const ticksPerS = clockTicksPerSecond();
    const extra: ProcRef[] = [
      ...(o.kafkaPid === undefined ? [] : [{ name: "kafka", pid: o.kafkaPid }]),
      { name: "main", pid: process.pid },
    ];
    const cpu = new CpuSampler(() => [...backbone.processes(), ...g.processes(), ...extra]);
    const sampleCpu = (): CpuMark => ({ atMs: now(), procs: cpu.sample(), machine: machineCpuTicks() });
    let last = sampleCpu();
    const coresSinceLast = () => {
      const next = sampleCpu();
      const r = coresBetween(last.procs, next.procs, (next.atMs - last.atMs) / 1000, ticksPerS);
      last = next;
      return r;
    };
    const cpuWindow = (a: CpuMark, b: CpuMark): CpuWindow => {
      const seconds = Math.max(0.001, (b.atMs - a.atMs) / 1000);
      const processes = cpuBetween(cpu.procs(), a.procs, b.procs, seconds, ticksPerS);
      const machineBusy =
        a.machine === null || b.machine === null || b.machine.total === a.machine.total
          ? null
          : round3(((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * machine.cores);
      const ours = processes.reduce((sum, p) => sum + (p.cores_used ?? 0), 0);
      return {
        seconds: round3(seconds),
        processes,
        machine_busy_cores: machineBusy,
        other_busy_cores: machineBusy === null ? null : round3(Math.max(0, machineBusy - ours)),
      };
    };
    const connectSeries: ConnectPoint[] = [];
    const connectTotalUs = latencyHistogram(highestLatencyUs);
    const connectCpuStart = last;
    const connectStart = now();
    const connectedP = g.connected((clients / o.connectRatePerS + CONNECT_SLACK_S) * 1000);
    let doneConnecting = false;
    void connectedP.then(
      () => (doneConnecting = true),
      () => (doneConnecting = true),
    );
    for (let second = 1; !doneConnecting; second++) {
      await Promise.race([sleep(1000), connectedP.catch(() => {})]);
      if (doneConnecting) break;
      const a = g.aggregate();
      const c = g.takeConnects();
      const h = latencyHistogram(highestLatencyUs);
      h.addSparse(c.connectUs);
      const cs = h.summary();
      connectTotalUs.addSparse(c.connectUs);
      const closed = Object.values(a.closes).reduce((x, y) => x + y, 0);
      connectSeries.push({
        second: second - 1,
        connected: a.connected,
        failed: a.connectFailed,
        closed,
        welcomed: c.welcomed,
        connect_ms: {
          count: cs.count,
          p50: round3(cs.p50 / 1000),
          p99: round3(cs.p99 / 1000),
          max: round3(cs.max / 1000),
        },
        cores: coresSinceLast(),
      });
      log(
        `[${String(second).padStart(4)}s connect]  connected ${a.connected}/${clients} (+${c.welcomed}/s, p99 ${round3(cs.p99 / 1000)} ms)  failed ${a.connectFailed}` +
          (o.scenario === "room" ? `  joined ${a.joined}` : "") +
          `  closed ${Object.values(a.closes).reduce((x, y) => x + y, 0)}  generator loop delay p99 ${a.eventLoopDelayP99Ms} ms`,
      );
      hooks.onConnectProgress?.(backbone, a.connected);
      if (signal.aborted) throw new FanoutSetupError("interrupted while connecting");
    }
    const reports: ConnectReport[] = await connectedP;
    connectTotalUs.addSparse(g.takeConnects().connectUs);
    const connect = summarizeConnect(reports, configs, g, Math.round(now() - connectStart));
    log(
      `connected ${connect.connected}/${clients} in ${connect.wall_ms} ms (${connect.redirected} redirected; ` +
        `${Object.entries(connect.per_node)
          .map(([n, c]) => `${n}: ${c}`)
          .join(", ")})`,
    );
    const connectCpu = cpuWindow(connectCpuStart, sampleCpu());
    if (connect.connected === 0 || (!hooks.keepFailedConnects && connect.failed > clients * 0.01)) {
      throw new FanoutSetupError(
        `${connect.failed} of ${clients} clients could not connect; first: ${connect.first_error}`,
      );
    }
    if (connect.failed > 0) {
      warnings.push(
        `${connect.failed} of ${clients} clients could not connect (first: ${connect.first_error})`,
      );
    }
    const clock = await g.calibrate();
    last = sampleCpu();
    const ctx: FanoutContext = {
      runId,
      secret,
      tokenTtlS,
      topicPrefix,
      machine,
      warnings,
      backbone,
      generators: g,
      connect,
      connectSeries,
      connectCpu,
      connectLatency: latencyMs(connectTotalUs.summary()),
      clock,
      startupMs,
      kafkaBrokers: kafka.brokers,
      serviceEnv: env,
      highestLatencyUs,
      owners,
      cpu,
      log,
      signal,
      sampleCpu,
      cpuWindow,
      coresSinceLast,
      serviceLogs: () => backbone.logCounts(LOG_TOP),
      tearDown,
    };
    return await scenario(ctx);
  } catch (e) {
    if (e instanceof GeneratorError) throw new FanoutSetupError(e.message, { cause: e });
    throw e;
  } finally {
    await tearDown();
  }
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function summarizeConnect(
  reports: readonly ConnectReport[],
  configs: readonly WorkerConfig[],
  g: Generators,
  wallMs: number,
): ConnectSummary {
  const perNode: Record<string, number> = {};
  const addresses = new Set<string>();
  for (const r of reports) {
    for (const [n, c] of Object.entries(r.perNode)) perNode[n] = (perNode[n] ?? 0) + c;
    for (const a of r.localAddresses) addresses.add(a);
  }
  const procs = g.processes();
  return {
    clients: configs.reduce((a, c) => a + c.count, 0),
    connected: reports.reduce((a, r) => a + r.ok, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    first_error: reports.find((r) => r.firstError !== null)?.firstError ?? null,
    redirected: reports.reduce((a, r) => a + r.redirected, 0),
    wall_ms: wallMs,
    generators_wall_ms: reports.reduce((a, r) => Math.max(a, r.wallMs), 0),
    per_node: perNode,
    local_addresses: [...addresses].sort((a, b) => a.localeCompare(b, "en", { numeric: true })),
    per_generator: configs.map((c, i) => ({
      name: procs[i]!.name,
      pid: procs[i]!.pid,
      first: c.first,
      clients: c.count,
      connected: reports[i]!.ok,
    })),
  };
}

/**
 * The parts of a room or broadcast result every fanout run has: the run, the machine, the setup of
 * the services, the connect phase and the generator's own health.
 */
export function commonResultFields(
  ctx: FanoutContext,
  run: { readonly startedAt: string; readonly commandLine: readonly string[] },
  aborted: string | null,
  generator: { tickLateness: Histogram; eventLoopDelayP99Ms: number; rssBytes: number },
) {
  return {
    runId: ctx.runId,
    startedAt: run.startedAt,
    commandLine: run.commandLine,
    machine: ctx.machine,
    aborted,
    setup: {
      services: ctx.backbone.records(),
      startup_ms: ctx.startupMs,
      kafka_brokers: ctx.kafkaBrokers,
      topic_prefix: ctx.topicPrefix,
      service_env: ctx.serviceEnv,
      clock: ctx.clock,
    },
    connect: ctx.connect,
    generator: {
      tick_lateness_ms: latencyMs(generator.tickLateness.summary()),
      event_loop_delay_p99_ms: generator.eventLoopDelayP99Ms,
      rss_bytes: generator.rssBytes,
    },
    warnings: ctx.warnings,
  };
}
