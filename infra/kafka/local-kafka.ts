/**
 * A real Apache Kafka on loopback for development and tests: KRaft combined mode
 * (broker+controller in one JVM per node), one node by default, three for durability tests.
 * Each JVM runs under watchdog.sh, which stops it if this Node process dies, so no broker
 * outlives the process that started it. Readiness is a real metadata call.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, readFileSync, closeSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createKafka } from "../../common/kafka/kafkajs.ts";
import type { Logger } from "../../common/log.ts";
import { KAFKA_DIR, LocalKafkaError, ensureKafkaJars } from "./fetch.ts";

export interface LocalKafkaOptions {
  /** Broker port of node 1 (nodes n use port + n - 1); 0 picks free ports. */
  readonly port: number;
  /** Controller port of node 1; 0 picks free ports. */
  readonly controllerPort: number;
  /**
   * The port node 1 tells clients to use (node n: + n - 1), when something else listens there and
   * forwards to `port`, e.g. a test's TCP proxy that can stall the network. `brokers` then lists
   * these ports. Default: `port` itself.
   */
  readonly advertisedPort?: number;
  /** Folder for logs and broker data; reused across runs (formatted only when new). */
  readonly dataDir: string;
  readonly nodes: 1 | 3;
  readonly logger: Logger;
  readonly cacheDir?: string;
  readonly heapMb?: number;
  readonly readyTimeoutMs?: number;
}

export interface LocalKafka {
  /** Bootstrap servers, e.g. "127.0.0.1:9092". */
  readonly brokers: string[];
  readonly dataDir: string;
  /** The nodes, by id (1..n): each is one broker+controller JVM. */
  readonly nodes: readonly LocalKafkaNode[];
  /** Stops every node (clean shutdown, then SIGKILL after a bound). Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Stops one node of a running cluster. "crash" kills its JVM with SIGKILL (no controlled
   * shutdown: partitions it leads have no leader until the controller fences it); "clean"
   * sends SIGTERM (Kafka moves its leaderships away first). Resolves once the JVM has exited;
   * a node already stopped is left alone.
   */
  stopNode(id: number, how: "crash" | "clean"): Promise<void>;
  /**
   * Starts a node stopped by `stopNode` again, with its data, and resolves once the cluster
   * lists it as a registered broker (which needs a controller quorum: a majority of nodes).
   */
  startNode(id: number, opts?: { readonly readyTimeoutMs?: number }): Promise<void>;
  /** Whether the node's JVM is running. */
  isRunning(id: number): boolean;
}

export interface LocalKafkaNode {
  /** Kafka's node.id (also its broker id in metadata). */
  readonly id: number;
  readonly port: number;
  readonly controllerPort: number;
  /** "127.0.0.1:<advertised port>": what clients connect to. */
  readonly broker: string;
  readonly logFile: string;
}

interface NodePorts {
  readonly id: number;
  readonly port: number;
  readonly controllerPort: number;
  /** The port in advertised.listeners (the broker's own port unless something forwards to it). */
  readonly advertisedPort: number;
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => done(port));
    });
  });
}

export async function assertPortFree(port: number, variable: string): Promise<void> {
  await new Promise<void>((done, fail) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) =>
      fail(
        e.code === "EADDRINUSE"
          ? new LocalKafkaError(
              "port_busy",
              `port ${port} on 127.0.0.1 is already in use: stop what holds it or choose another port with ${variable}`,
            )
          : e,
      ),
    );
    srv.listen(port, "127.0.0.1", () => srv.close(() => done()));
  });
}

function serverProperties(node: NodePorts, all: readonly NodePorts[], dataDir: string): string {
  const n = all.length;
  const rf = Math.min(3, n);
  const props: Record<string, string | number> = {
    "process.roles": "broker,controller",
    "node.id": node.id,
    "controller.quorum.voters": all.map((x) => `${x.id}@127.0.0.1:${x.controllerPort}`).join(","),
    listeners: `PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${node.advertisedPort}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "log.dirs": join(dataDir, `node-${node.id}`, "data"),
    "metadata.log.dir": join(dataDir, `node-${node.id}`, "meta"),
    "num.partitions": 1,
    "default.replication.factor": rf,
    "min.insync.replicas": n >= 3 ? 2 : 1,
    // An out-of-sync replica never becomes leader: that would drop acknowledged records.
    "unclean.leader.election.enable": "false",
    "offsets.topic.replication.factor": rf,
    "offsets.topic.num.partitions": 8,
    "transaction.state.log.replication.factor": rf,
    "transaction.state.log.min.isr": n >= 3 ? 2 : 1,
    "transaction.state.log.num.partitions": 4,
    "share.coordinator.state.topic.replication.factor": rf,
    "share.coordinator.state.topic.min.isr": n >= 3 ? 2 : 1,
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "auto.create.topics.enable": "false",
    "delete.topic.enable": "true",
    "log.retention.check.interval.ms": 30_000,
    "num.network.threads": 2,
    "num.io.threads": 4,
    // Loopback clusters for development and tests notice a dead node sooner than Kafka's
    // defaults (9 s to fence a broker, 30 s to drop a stalled follower from the ISR), so the
    // durability tests fail over in seconds. Production keeps the defaults (docs/OPERATIONS.md).
    ...(n >= 3
      ? {
          "broker.heartbeat.interval.ms": 1_000,
          "broker.session.timeout.ms": 6_000,
          "replica.lag.time.max.ms": 10_000,
        }
      : {}),
  };
  return Object.entries(props)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

async function waitReady(
  brokers: string[],
  ready: (info: { brokers: readonly { nodeId: number }[]; controllerId: number | null }) => string | null,
  timeoutMs: number,
  logger: Logger,
  alive: () => string | null,
) {
  const deadline = Date.now() + timeoutMs;
  const kafka = createKafka({
    brokers,
    clientId: "rt-local-kafka-ready",
    logger: logger.child({}, { level: "silent" }),
    retries: 0,
  });
  let lastError = "";
  while (Date.now() < deadline) {
    const dead = alive();
    if (dead !== null) throw new LocalKafkaError("start_failed", dead);
    try {
      const admin = await kafka.admin();
      try {
        const info = await admin.describeCluster();
        const notYet = ready(info);
        if (notYet === null) return;
        lastError = notYet;
      } finally {
        await admin.close();
      }
    } catch (e) {
      lastError = (e as Error).message;
    }
    await sleep(250);
  }
  throw new LocalKafkaError("not_ready", `Kafka did not become ready in ${timeoutMs} ms: ${lastError}`);
}

function logTail(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, "utf8").split("\n");
    const errors = text.filter((l) => / (ERROR|FATAL) /.test(l)).slice(-5);
    return (errors.length > 0 ? errors : text.slice(-lines)).join("\n");
  } catch {
    return "";
  }
}

interface RunningNode {
  readonly child: ChildProcess;
  readonly pidFile: string;
}

export async function startLocalKafka(opts: LocalKafkaOptions): Promise<LocalKafka> {
  const log = opts.logger.child({ component: "local-kafka" });
  const libs = await ensureKafkaJars(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir });
  const nodes: NodePorts[] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const port = opts.port === 0 ? await freePort() : opts.port + i;
    const controllerPort = opts.controllerPort === 0 ? await freePort() : opts.controllerPort + i;
    if (opts.port !== 0) await assertPortFree(port, "RT_KAFKA_PORT");
    if (opts.controllerPort !== 0) await assertPortFree(controllerPort, "RT_KAFKA_CONTROLLER_PORT");
    const advertisedPort = opts.advertisedPort === undefined ? port : opts.advertisedPort + i;
    nodes.push({ id: i + 1, port, controllerPort, advertisedPort });
  }
  mkdirSync(opts.dataDir, { recursive: true });
  // A reused data dir keeps its cluster id; the voters must not change between runs.
  const idFile = join(opts.dataDir, "cluster-id");
  const clusterId = existsSync(idFile)
    ? readFileSync(idFile, "utf8").trim()
    : randomBytes(16).toString("base64url");
  writeFileSync(idFile, clusterId);
  const brokers = nodes.map((n) => `127.0.0.1:${n.advertisedPort}`);
  const nodeDir = (node: NodePorts) => join(opts.dataDir, `node-${node.id}`);
  const logFileOf = (node: NodePorts) => join(nodeDir(node), "kafka.log");
  const jvmBase = [`-Dlog4j2.configurationFile=${join(KAFKA_DIR, "log4j2.properties")}`, "-cp", `${libs}/*`];

  /** Writes the node's config, formats its storage once, and starts its JVM under the watchdog. */
  const spawnNode = (node: NodePorts): RunningNode => {
    const dir = nodeDir(node);
    mkdirSync(dir, { recursive: true });
    const propsFile = join(dir, "server.properties");
    writeFileSync(propsFile, serverProperties(node, nodes, opts.dataDir) + "\n");
    if (!existsSync(join(dir, "meta", "meta.properties"))) {
      const fmt = spawnSync(
        "java",
        [
          ...jvmBase,
          "kafka.tools.StorageTool",
          "format",
          "-t",
          clusterId,
          "-c",
          propsFile,
          "--ignore-formatted",
        ],
        { encoding: "utf8" },
      );
      if (fmt.status !== 0) {
        throw new LocalKafkaError(
          "start_failed",
          `formatting Kafka storage failed: ${fmt.stderr || fmt.stdout}`,
        );
      }
    }
    const logFile = logFileOf(node);
    const pidFile = join(dir, "jvm.pid");
    const fd = openSync(logFile, "a");
    const heap = opts.heapMb ?? 768;
    const child = spawn(
      join(KAFKA_DIR, "watchdog.sh"),
      [
        "java",
        `-Xms${Math.min(256, heap)}m`,
        `-Xmx${heap}m`,
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        ...jvmBase,
        "kafka.Kafka",
        propsFile,
      ],
      {
        stdio: ["ignore", fd, fd],
        env: { ...process.env, RT_WATCH_PID: String(process.pid), RT_JVM_PID_FILE: pidFile },
      },
    );
    closeSync(fd);
    log.info({ node: node.id, port: node.port, log: logFile }, "kafka node starting");
    return { child, pidFile };
  };

  const running = new Map<number, RunningNode>();
  const exitedDuringStart = (only?: number) => (): string | null => {
    for (const [id, p] of running) {
      if (only !== undefined && id !== only) continue;
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        const file = logFileOf(nodes[id - 1]!);
        return `Kafka node ${id} exited during start (see ${file}):\n${logTail(file)}`;
      }
    }
    return null;
  };
  const stopAll = async () => {
    await Promise.all([...running.values()].map((p) => stopNode(p.child, p.pidFile)));
  };
  const nodeById = (id: number): NodePorts => {
    const node = nodes[id - 1];
    if (node === undefined) throw new RangeError(`no Kafka node ${id} (nodes are 1..${nodes.length})`);
    return node;
  };
  const isRunning = (id: number) => {
    const p = running.get(id);
    return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
  };

  try {
    for (const node of nodes) running.set(node.id, spawnNode(node));
    await waitReady(
      brokers,
      (info) =>
        info.brokers.length >= nodes.length && info.controllerId !== null
          ? null
          : `${info.brokers.length}/${nodes.length} brokers registered`,
      opts.readyTimeoutMs ?? 90_000,
      log,
      exitedDuringStart(),
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  log.info({ brokers }, "kafka ready");
  let stopping: Promise<void> | null = null;
  return {
    brokers,
    dataDir: opts.dataDir,
    nodes: nodes.map((n) => ({ ...n, broker: `127.0.0.1:${n.advertisedPort}`, logFile: logFileOf(n) })),
    stop: () => (stopping ??= stopAll()),
    isRunning: (id) => isRunning(nodeById(id).id),
    async stopNode(id, how) {
      const node = nodeById(id);
      const p = running.get(node.id);
      if (p === undefined || !isRunning(node.id)) return;
      log.info({ node: node.id, how }, "stopping kafka node");
      if (how === "clean") await stopNode(p.child, p.pidFile);
      else await killNode(p.child, p.pidFile);
    },
    async startNode(id, startOpts = {}) {
      const node = nodeById(id);
      if (stopping !== null) throw new Error("the local Kafka is stopped");
      if (isRunning(node.id)) return;
      running.set(node.id, spawnNode(node));
      // Only a majority of voters elects a controller; with it the node registers again.
      try {
        await waitReady(
          brokers,
          (info) =>
            info.brokers.some((b) => b.nodeId === node.id) && info.controllerId !== null
              ? null
              : `node ${node.id} not registered yet (${info.brokers.map((b) => b.nodeId).join(",")} are)`,
          startOpts.readyTimeoutMs ?? opts.readyTimeoutMs ?? 90_000,
          log,
          exitedDuringStart(node.id),
        );
      } catch (e) {
        const p = running.get(node.id);
        if (p !== undefined) await stopNode(p.child, p.pidFile);
        throw e;
      }
      log.info({ node: node.id }, "kafka node back");
    },
  };
}

async function stopNode(child: ChildProcess, pidFile: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  const clean = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
  if (clean) return;
  // The JVM did not finish its controlled shutdown in time: kill it and its wrapper.
  killJvm(pidFile);
  child.kill("SIGKILL");
  await exited;
}

/** A crash: SIGKILL to the JVM itself; its watchdog then exits with it. */
async function killNode(child: ChildProcess, pidFile: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  if (!killJvm(pidFile)) child.kill("SIGKILL");
  const gone = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!gone) {
    child.kill("SIGKILL");
    await exited;
  }
}

function killJvm(pidFile: string): boolean {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (pid > 0) {
      process.kill(pid, "SIGKILL");
      return true;
    }
  } catch {
    // already gone
  }
  return false;
}
