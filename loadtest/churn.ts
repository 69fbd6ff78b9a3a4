/**
 * The `churn` scenario: what happens to clients and messages when a gateway dies under load.
 *
 * 1. Setup: checks the open-files limit and Kafka, brings up a router and N gateways of its own
 *    (churn-backbone.ts) with a random token secret and topic prefix.
 * 2. Connect (churn-connect.ts): starts the reference clients at --connect-rate through the
 *    router, each bound to a 127.0.0.x source address, until every one is welcomed; reads the
 *    gateways' memory before and after.
 * 3. Traffic (churn-traffic.ts): open-loop sends on the seeded schedule (churn-plan.ts), one
 *    gateway killed (or drained) at --kill-after, optionally a replacement, then a grace period.
 * 4. Teardown, on every path: clients closed, services stopped, the run's topics deleted.
 *
 * This file is the orchestration; bookkeeping lives in tracker.ts (messages) and
 * churn-sessions.ts (sessions), and churn-report.ts shapes the result.
 */
import { randomBytes, randomInt } from "node:crypto";
import { monitorEventLoopDelay, performance, type IntervalHistogram } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { ChurnOptions } from "./churn-args.ts";
import { Backbone, ChurnSetupError, STARTUP_MAX_MS } from "./churn-backbone.ts";
import { connectAll, CONNECT_SLACK_S } from "./churn-connect.ts";
import { Counts, Fleet } from "./churn-fleet.ts";
import { createRouterFetch, type RouterFetch } from "./churn-net.ts";
import { makePlan, seededRandom } from "./churn-plan.ts";
import { buildChurnResult, TARGETS, type ChurnResult, type GatewayMemory } from "./churn-report.ts";
import { SessionLog, type SessionsSummary } from "./churn-sessions.ts";
import { runTraffic, type TrafficOutcome } from "./churn-traffic.ts";
import { cpuBetween, CpuSampler, type ProcRef } from "./cpu-sampler.ts";
import { clockTicksPerSecond, machineInfo, openFilesLimit, processRssBytes } from "./machine.ts";
import { Pacer } from "./pacer.ts";
import { latencyMs, resultWarnings } from "./report.ts";
import { checkKafka, deleteTopics, liveServiceCount, type LogCount } from "./services.ts";

export { ChurnSetupError };

/** Sockets the router fetch may hold open at once. */
const ROUTER_SOCKETS = 256;
/** Files this process needs besides the clients' sockets: the router pool, stdio, libraries, slack. */
const FD_OVERHEAD = ROUTER_SOCKETS + 300;
/** Files a gateway needs besides its clients' sockets: Kafka connections, libraries, slack. */
const GATEWAY_FD_OVERHEAD = 300;
/** After connecting, a pause before memory is read and traffic starts. */
const SETTLE_MS = 2_000;
const TEARDOWN_MAX_S = 60;
const KAFKA_CHECK_MS = 10_000;
const TOPICS_DELETE_MS = 15_000;
/** Log messages kept per service in the result, most frequent first. */
const LOG_TOP = 15;

/** The hard deadline of a run: every phase's own bound, plus slack. */
export function churnDeadlineS(o: ChurnOptions): number {
  return Math.ceil(
    STARTUP_MAX_MS / 1000 +
      KAFKA_CHECK_MS / 1000 +
      o.clients / o.connectRatePerS +
      CONNECT_SLACK_S +
      SETTLE_MS / 1000 +
      o.durationS +
      o.graceS +
      TEARDOWN_MAX_S +
      30,
  );
}

const now = (): number => performance.timeOrigin + performance.now();

/** The generator's event-loop delay since the last reset, in ms: a busy generator shows here first. */
function loopDelayMs(h: IntervalHistogram): { p50: number; p99: number; max: number } {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const r =
    h.count === 0
      ? { p50: 0, p99: 0, max: 0 }
      : { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
  h.reset();
  return r;
}
const mib = (b: number | null): string => (b === null ? "?" : String(Math.round(b / 1048576)));

/** Refuses a run the open-files limit cannot hold, before anything starts. */
function checkFileLimit(o: ChurnOptions): void {
  const limit = openFilesLimit();
  if (limit === null) return;
  if (o.clients + FD_OVERHEAD > limit) {
    throw new ChurnSetupError(
      `--clients: ${o.clients} clients need about ${o.clients + FD_OVERHEAD} open files in this process, ` +
        `but it may open ${limit} (ulimit -n): use --clients ${Math.max(0, limit - FD_OVERHEAD)} or fewer, or raise the limit`,
    );
  }
  const perSurvivor = Math.ceil(o.clients / (o.gateways - 1));
  if (perSurvivor + GATEWAY_FD_OVERHEAD > limit) {
    throw new ChurnSetupError(
      `--clients: once one of ${o.gateways} gateways is gone each survivor holds about ${perSurvivor} sockets, ` +
        `over the open-files limit of ${limit} (ulimit -n): add --gateways or use fewer --clients`,
    );
  }
}

/** What the numbers say is worth a reader's attention. */
function churnWarnings(
  o: ChurnOptions,
  traffic: TrafficOutcome | null,
  sessions: SessionsSummary,
  logs: Readonly<Record<string, readonly LogCount[]>>,
  down: ChurnResult["teardown"],
): string[] {
  const w: string[] = [];
  if (traffic !== null) {
    w.push(
      ...resultWarnings(
        { generatorCpu: traffic.generatorCpu, generator: traffic.generator, totals: traffic.totals },
        "--clients",
      ),
    );
  }
  const main = sessions.disruptions[1];
  if (main !== undefined) {
    if (main.notResumed > 0)
      w.push(`${main.notResumed} clients dropped by ${main.name} never got a welcome again`);
    if (main.recoveredFalse > 0) {
      w.push(`${main.recoveredFalse} clients resumed with recovered: false after ${main.name}`);
    }
    if (main.affected > 0 && main.toWelcomeUs.p99 / 1000 >= TARGETS.p99ToWelcomeMs) {
      w.push(
        `p99 from ${main.name} to the next welcome is ${Math.round(main.toWelcomeUs.p99 / 1000)} ms, over the ` +
          `${TARGETS.p99ToWelcomeMs} ms target (session timeout ${o.sessionTimeoutMs} ms)`,
      );
    }
  }
  for (const [name, list] of Object.entries(logs)) {
    const errors = list
      .filter((l) => l.level === "error" || l.level === "fatal")
      .reduce((a, l) => a + l.count, 0);
    if (errors > 0) w.push(`${name} logged ${errors} error lines (see service_logs)`);
  }
  if (down.services_left_running > 0)
    w.push(`${down.services_left_running} services were still running after the teardown`);
  if (down.sockets_terminated > 0)
    w.push(`${down.sockets_terminated} client sockets had to be terminated at the end`);
  if (down.topics_error !== null) w.push(`the run's topics were not deleted: ${down.topics_error}`);
  return w;
}

export async function runChurn(
  options: ChurnOptions,
  commandLine: readonly string[],
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string | null,
): Promise<ChurnResult> {
  const o = options;
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const warnings: string[] = [];
  if (machine.load_average_1m_at_start > machine.cores * 0.5) {
    warnings.push(
      `load average ${machine.load_average_1m_at_start} on ${machine.cores} cores at start: ` +
        `the machine was not idle, so the numbers may be noisy`,
    );
  }
  checkFileLimit(o);
  const runId = randomBytes(4).toString("hex");
  const seed = o.seed ?? randomInt(0, 1_000_000_000);
  const random = seededRandom(seed);
  const secret = randomBytes(32).toString("base64url");
  const topicPrefix = `lt-${runId}.`;
  log(`run ${runId}, seed ${seed} (replay with --seed ${seed}): checking Kafka at ${o.brokers.join(",")}`);
  const kafka = await checkKafka(o.brokers, KAFKA_CHECK_MS);
  if (!kafka.ok) throw new ChurnSetupError(kafka.message);

  const messages = new Pacer({ ratePerS: o.ratePerS, startMs: 0, endMs: o.durationS * 1000, maxBacklogMs: 0 })
    .total;
  const plan = makePlan(o.clients, o.peers, messages, random);
  const victimIndex = Math.min(o.gateways - 1, Math.floor(random() * o.gateways));

  log(`starting a router and ${o.gateways} gateways (topics ${topicPrefix}*, ${o.partitions} partitions)`);
  const setupStart = Date.now();
  const backbone = await Backbone.start(
    {
      brokers: o.brokers,
      gateways: o.gateways,
      partitions: o.partitions,
      sessionTimeoutMs: o.sessionTimeoutMs,
      secret,
      topicPrefix,
      runId,
      logFile,
    },
    signal,
    log,
  );
  const startupMs = Date.now() - setupStart;
  let router: RouterFetch | null = null;
  let fleet: Fleet | null = null;
  let teardown: Promise<ChurnResult["teardown"]> | null = null;
  const tearDown = () =>
    (teardown ??= (async () => {
      const closed = fleet === null ? { ms: 0, terminated: 0 } : await fleet.closeAll();
      router?.close();
      const codes = await backbone.stop();
      const topics = await deleteTopics(o.brokers, topicPrefix, TOPICS_DELETE_MS);
      return {
        clients_close_ms: closed.ms,
        sockets_terminated: closed.terminated,
        services_exit_codes: codes,
        services_left_running: liveServiceCount(),
        topics_deleted: "deleted" in topics ? topics.deleted : null,
        topics_error: "error" in topics ? topics.error : null,
      };
    })());

  try {
    const ticksPerS = clockTicksPerSecond();
    const extra: ProcRef[] = [
      ...(o.kafkaPid === undefined ? [] : [{ name: "kafka", pid: o.kafkaPid }]),
      { name: "generator", pid: process.pid },
    ];
    const cpu = new CpuSampler(() => [...backbone.processes(), ...extra]);
    const highestMs = churnDeadlineS(o) * 1000;
    const sessions = new SessionLog(o.clients, highestMs);
    const r = createRouterFetch(ROUTER_SOCKETS);
    router = r;
    const routerAnswers = new Counts();
    const takeRouter = () => {
      const c = r.takeCounts();
      for (const [k, n] of c) routerAnswers.bump(k, n);
      return Object.fromEntries(c);
    };
    const f = new Fleet({
      clients: o.clients,
      runId,
      routerUrl: backbone.routerUrl,
      secret,
      tokenTtlS: Math.ceil(highestMs / 1000) + 600,
      localAddresses: o.localAddresses,
      backoff: { baseMs: o.backoffBaseMs, capMs: o.backoffCapMs },
      router: r,
      sessions,
      nodeIndex: (node) => backbone.nodeIndex(node),
      now,
    });
    fleet = f;
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const timings = () => {
      const t = f.takeTimings();
      return {
        router_ms: latencyMs(r.takeLatency()),
        upgrade_ms: latencyMs(t.upgradeUs),
        hello_to_welcome_ms: latencyMs(t.helloToWelcomeUs),
        generator_event_loop_delay_ms: loopDelayMs(loopDelay),
      };
    };

    // ---- connect ----
    const initial = backbone.gateways;
    const rssBefore = new Map(initial.map((g) => [g.name, processRssBytes(g.pid)]));
    const generatorRssBefore = process.memoryUsage().rss;
    const ticksConnectStart = cpu.sample();
    log(`connecting ${o.clients} clients at ${o.connectRatePerS}/s via ${backbone.routerUrl}`);
    const connected = await connectAll({
      clients: o.clients,
      ratePerS: o.connectRatePerS,
      fleet: f,
      sessions,
      signal,
      log,
      takeRouter,
      now,
    });
    const cpuConnect = cpuBetween(
      cpu.procs(),
      ticksConnectStart,
      cpu.sample(),
      connected.wallMs / 1000,
      ticksPerS,
    );
    takeRouter();
    const connect = {
      wallMs: connected.wallMs,
      started: f.started,
      socketsOpened: f.socketsOpened.total()["opened"] ?? 0,
      routerAnswers: routerAnswers.total(),
      socketErrors: f.socketErrors.total(),
      perGateway: {} as Record<string, number>,
      localAddresses: f.localAddresses,
      timings: timings(),
    };
    log(
      connected.aborted === null
        ? `connected ${o.clients} clients in ${connected.wallMs} ms`
        : `connect phase failed: ${connected.aborted}`,
    );
    if (connected.aborted === null) await sleep(SETTLE_MS);
    const after = new Map<string, { rss: number | null; connections: number | null }>();
    for (const g of initial) {
      const stats = await backbone.gatewayStats(g.name);
      after.set(g.name, { rss: processRssBytes(g.pid), connections: stats?.connections ?? null });
      if (stats !== null) connect.perGateway[g.name] = stats.connections;
    }
    const generatorRssAfter = process.memoryUsage().rss;
    log(
      `memory: ` +
        initial
          .map((g) => {
            const a = after.get(g.name)!;
            return `${g.name} ${a.connections ?? "?"} conns, RSS ${mib(rssBefore.get(g.name) ?? null)} -> ${mib(a.rss)} MiB`;
          })
          .join("; "),
    );

    // ---- traffic ----
    const traffic =
      connected.aborted === null
        ? await runTraffic({
            options: o,
            runId,
            plan,
            fleet: f,
            sessions,
            backbone,
            victimIndex,
            cpu,
            ticksPerS,
            highestMs,
            takeRouter,
            signal,
            log,
            warn: (w) => warnings.push(w),
            now,
          })
        : null;

    // ---- what the teardown would change: read it first ----
    const memory: GatewayMemory[] = [];
    for (const g of backbone.gateways) {
      const before = rssBefore.get(g.name) ?? null;
      const a = after.get(g.name);
      const conns = a?.connections ?? null;
      const end = await backbone.gatewayStats(g.name);
      memory.push({
        name: g.name,
        rss_before_bytes: before,
        rss_after_bytes: a?.rss ?? null,
        connections_after: conns,
        bytes_per_connection:
          before !== null && a !== undefined && a.rss !== null && conns !== null && conns > 0
            ? Math.round((a.rss - before) / conns)
            : null,
        rss_end_bytes: g.exitCode === null ? processRssBytes(g.pid) : null,
        connections_end: end?.connections ?? null,
      });
    }
    const sessionsSummary = sessions.summary();
    takeRouter();
    const counters = {
      timings: timings(),
      clientErrors: f.clientErrors.total(),
      resyncs: f.resyncs.total(),
      socketErrors: f.socketErrors.total(),
      routerAnswers: routerAnswers.total(),
      socketsOpened: f.socketsOpened.total()["opened"] ?? 0,
    };
    const serviceLogs = backbone.logCounts(LOG_TOP);

    log("stopping clients and services");
    const down = await tearDown();
    warnings.push(...churnWarnings(o, traffic, sessionsSummary, serviceLogs, down));
    return buildChurnResult({
      runId,
      seed,
      startedAt,
      commandLine,
      options: o,
      machine,
      aborted: connected.aborted ?? traffic?.aborted ?? null,
      topicPrefix,
      kafkaBrokers: kafka.brokers,
      services: backbone.records(),
      startupMs,
      connect,
      sessions: sessionsSummary,
      trafficStartMs: traffic?.startMs ?? null,
      disruptionDetails: traffic?.details ?? [],
      memory: {
        gateways: memory,
        generator: {
          rss_before_bytes: generatorRssBefore,
          rss_after_bytes: generatorRssAfter,
          bytes_per_client:
            sessionsSummary.connected > 0
              ? Math.round((generatorRssAfter - generatorRssBefore) / sessionsSummary.connected)
              : null,
        },
      },
      totals: traffic?.totals ?? null,
      cpu: { connect: cpuConnect, traffic: traffic?.cpu ?? [] },
      generatorCpu: traffic?.generatorCpu ?? { user_s: 0, system_s: 0, cores_used: 0, whole_run_cpu_s: 0 },
      generator: traffic?.generator ?? {
        skipped_behind_schedule: 0,
        skipped_backpressure: 0,
        skipped_closed_sender: 0,
        sent_while_sender_down: 0,
        tick_lateness_ms: latencyMs({ count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 }),
      },
      counters,
      serviceLogs,
      teardown: down,
      series: traffic?.series ?? [],
      warnings,
    });
  } finally {
    await tearDown();
  }
}
