/**
 * The backbone a churn run brings up for itself: one router and N gateways as child processes
 * on the given Kafka, with the run's own topic prefix and token secret, on free loopback ports.
 * `start` returns once the gateways' consumer group is Stable and every partition has an owner
 * (as the router sees it), or stops what it started and throws.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { getJson, startService, type LogCount, type Service } from "./services.ts";

/** The run could not start, or its environment cannot hold it: one line says why. */
export class ChurnSetupError extends Error {
  override readonly name = "ChurnSetupError";
}

export interface BackboneOptions {
  readonly brokers: readonly string[];
  readonly gateways: number;
  readonly partitions: number;
  readonly sessionTimeoutMs: number;
  readonly secret: string;
  readonly topicPrefix: string;
  readonly runId: string;
  /** Where the services' output goes (capped); null: nowhere. */
  readonly logFile: string | null;
  /** More environment for every gateway, and for the router (they win over the defaults). */
  readonly gatewayEnv?: Readonly<Record<string, string>>;
  readonly routerEnv?: Readonly<Record<string, string>>;
  /** More `node` arguments for every gateway (after `--import tsx`, before the entry point). */
  readonly gatewayNodeArgs?: readonly string[];
}

interface Started {
  readonly service: Service;
  url: string | null;
  port: number | null;
  readyMs: number | null;
}

const POLL_MS = 250;
/** Longest wait for the first run to start the services (tsx compiles them) and settle the group. */
export const STARTUP_MAX_MS = 120_000;

export class Backbone {
  readonly #o: BackboneOptions;
  readonly #started: Started[] = [];
  #routerUrl: string | null = null;
  #stopping: Promise<Record<string, number>> | null = null;

  private constructor(options: BackboneOptions) {
    this.#o = options;
  }

  /** The node id of gateway `name` (gw1, gw2, ...), as its welcome frames name it. */
  nodeId(name: string): string {
    return `lt-${this.#o.runId}-${name}`;
  }

  /** Gateway index (0 for gw1) of a node id; -1 for anything else. */
  nodeIndex(node: string): number {
    const m = /-gw(\d{1,3})$/.exec(node);
    return m === null || node !== this.nodeId(`gw${m[1]}`) ? -1 : Number(m[1]) - 1;
  }

  get routerUrl(): string {
    if (this.#routerUrl === null) throw new Error("the router is not ready");
    return this.#routerUrl;
  }

  /** Gateways in start order (gw1 first; a replacement last). */
  get gateways(): Service[] {
    return this.#started.filter((s) => s.service.kind === "gateway").map((s) => s.service);
  }

  /** Every process started, with its role, for CPU sampling. */
  processes(): { name: string; pid: number }[] {
    return this.#started.map((s) => ({ name: s.service.name, pid: s.service.pid }));
  }

  #gatewayEnv(name: string): Record<string, string> {
    const o = this.#o;
    return {
      RT_KAFKA_BROKERS: o.brokers.join(","),
      RT_TOPIC_PREFIX: o.topicPrefix,
      RT_GATEWAY_PORT: "0",
      RT_GATEWAY_HOST: "127.0.0.1",
      RT_GATEWAY_NODE_ID: this.nodeId(name),
      RT_JWT_SECRET: o.secret,
      RT_GATEWAY_SESSION_TIMEOUT_MS: String(o.sessionTimeoutMs),
      RT_DELIVERIES_PARTITIONS: String(o.partitions),
      RT_LOG_LEVEL: "warn",
      ...o.gatewayEnv,
    };
  }

  #spawn(kind: "gateway" | "router", name: string, env: Record<string, string>): Started {
    const nodeArgs = kind === "gateway" ? (this.#o.gatewayNodeArgs ?? []) : [];
    const entry: Started = {
      service: startService(kind, name, env, this.#o.logFile, nodeArgs),
      url: null,
      port: null,
      readyMs: null,
    };
    this.#started.push(entry);
    return entry;
  }

  async #ready(entry: Started, timeoutMs: number): Promise<void> {
    const r = await entry.service.ready(timeoutMs);
    entry.url = r.url;
    entry.port = r.port;
    entry.readyMs = Date.now() - entry.service.startedAtMs;
  }

  /** Starts a router and the gateways and waits until the group is Stable with every partition owned. */
  static async start(
    o: BackboneOptions,
    signal: AbortSignal,
    log: (line: string) => void,
  ): Promise<Backbone> {
    const b = new Backbone(o);
    const deadline = Date.now() + STARTUP_MAX_MS;
    try {
      const router = b.#spawn("router", "router", {
        RT_KAFKA_BROKERS: o.brokers.join(","),
        RT_TOPIC_PREFIX: o.topicPrefix,
        RT_ROUTER_PORT: "0",
        RT_ROUTER_HOST: "127.0.0.1",
        RT_JWT_SECRET: o.secret,
        RT_DELIVERIES_PARTITIONS: String(o.partitions),
        RT_LOG_LEVEL: "warn",
        ...o.routerEnv,
      });
      const gateways = Array.from({ length: o.gateways }, (_, i) =>
        b.#spawn("gateway", `gw${i + 1}`, b.#gatewayEnv(`gw${i + 1}`)),
      );
      await Promise.all([router, ...gateways].map((s) => b.#ready(s, deadline - Date.now())));
      b.#routerUrl = router.url;
      log(
        `services up: router ${router.url}; ` +
          gateways.map((g) => `${g.service.name} ${g.url} (pid ${g.service.pid})`).join(", "),
      );
      let last = "";
      for (;;) {
        if (signal.aborted) throw new ChurnSetupError("interrupted while starting the services");
        const why = await b.#notStable(gateways.map((g) => g.port!));
        if (why === null) break;
        if (why !== last) log(`waiting for the gateways' group: ${why}`);
        last = why;
        if (Date.now() > deadline) {
          throw new ChurnSetupError(`the backbone did not settle within ${STARTUP_MAX_MS / 1000} s: ${why}`);
        }
        await sleep(POLL_MS);
      }
      return b;
    } catch (e) {
      await b.stop();
      if (e instanceof ChurnSetupError) throw e;
      throw new ChurnSetupError(`starting the backbone failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Null once every gateway is ready and the router sees a Stable group owning every partition. */
  async #notStable(gatewayPorts: readonly number[]): Promise<string | null> {
    for (const port of gatewayPorts) {
      const r = await getJson(`http://127.0.0.1:${port}/readyz`);
      if (r?.status !== 200) {
        const reason = (r?.body as { reason?: string } | null)?.reason ?? "no answer";
        return `gateway on port ${port} not ready (${reason})`;
      }
    }
    const r = await getJson(`${this.routerUrl}/readyz`);
    const body = (r?.body ?? {}) as { groupState?: string; members?: number; ownedPartitions?: number };
    if (r?.status !== 200)
      return `router not ready (${JSON.stringify(r?.body ?? "no answer").slice(0, 200)})`;
    if (body.groupState !== "Stable" || body.members !== gatewayPorts.length) {
      return `group ${body.groupState ?? "?"} with ${body.members ?? "?"} of ${gatewayPorts.length} members`;
    }
    if (body.ownedPartitions !== this.#o.partitions) {
      return `${body.ownedPartitions ?? "?"} of ${this.#o.partitions} partitions owned`;
    }
    return null;
  }

  /** Starts one more gateway (a replacement); it joins the group by itself. */
  startGateway(name: string, timeoutMs: number): { service: Service; ready: Promise<void> } {
    const entry = this.#spawn("gateway", name, this.#gatewayEnv(name));
    return { service: entry.service, ready: this.#ready(entry, timeoutMs) };
  }

  /** A gateway's /v1/stats `connections` and `owned`; null when it does not answer. */
  async gatewayStats(name: string): Promise<{ connections: number; owned: number[] } | null> {
    const entry = this.#started.find((s) => s.service.name === name);
    if (entry === undefined || entry.port === null || entry.service.exitCode !== null) return null;
    const r = await getJson(`http://127.0.0.1:${entry.port}/v1/stats`);
    const body = r?.body as { connections?: unknown; owned?: unknown } | null | undefined;
    if (r?.status !== 200 || typeof body?.connections !== "number") return null;
    return {
      connections: body.connections,
      owned: Array.isArray(body.owned) ? (body.owned as number[]) : [],
    };
  }

  /** Each partition's owner, as the gateways' /v1/stats say, by the owner's WebSocket URL. */
  async owners(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (const s of this.#started) {
      if (s.service.kind !== "gateway" || s.url === null) continue;
      const stats = await this.gatewayStats(s.service.name);
      for (const p of stats?.owned ?? []) out.set(p, s.url);
    }
    return out;
  }

  /** The router's GET /v1/stats body; null when it does not answer. */
  async routerStats(): Promise<unknown> {
    const r = await getJson(`${this.routerUrl}/v1/stats`);
    return r?.status === 200 ? r.body : null;
  }

  records(): {
    name: string;
    kind: "gateway" | "router";
    pid: number;
    url: string | null;
    ready_ms: number | null;
    exit_code: number | null;
  }[] {
    return this.#started.map((s) => ({
      name: s.service.name,
      kind: s.service.kind,
      pid: s.service.pid,
      url: s.url,
      ready_ms: s.readyMs,
      exit_code: s.service.exitCode,
    }));
  }

  logCounts(top: number): Record<string, LogCount[]> {
    return Object.fromEntries(
      this.#started.map((s) => [s.service.name, s.service.logCounts().slice(0, top)]),
    );
  }

  /** SIGTERM to every service (they drain), SIGKILL after `graceMs`. Exit codes by name. Safe twice. */
  stop(graceMs = 25_000): Promise<Record<string, number>> {
    this.#stopping ??= (async () => {
      const codes = await Promise.all(
        this.#started.map(async (s) => [s.service.name, await s.service.stop("SIGTERM", graceMs)] as const),
      );
      return Object.fromEntries(codes);
    })();
    return this.#stopping;
  }
}
