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
  /** Stops every node (clean shutdown, then SIGKILL after a bound). Safe to call twice. */
  stop(): Promise<void>;
}

interface NodePorts {
  readonly id: number;
  readonly port: number;
  readonly controllerPort: number;
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
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${node.port}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "log.dirs": join(dataDir, `node-${node.id}`, "data"),
    "metadata.log.dir": join(dataDir, `node-${node.id}`, "meta"),
    "num.partitions": 1,
    "default.replication.factor": rf,
    "min.insync.replicas": n >= 3 ? 2 : 1,
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
  };
  return Object.entries(props)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

async function waitReady(
  brokers: string[],
  expectNodes: number,
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
        if (info.brokers.length >= expectNodes && info.controllerId !== null) return;
        lastError = `${info.brokers.length}/${expectNodes} brokers registered`;
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

export async function startLocalKafka(opts: LocalKafkaOptions): Promise<LocalKafka> {
  const log = opts.logger.child({ component: "local-kafka" });
  const libs = await ensureKafkaJars(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir });
  const nodes: NodePorts[] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const port = opts.port === 0 ? await freePort() : opts.port + i;
    const controllerPort = opts.controllerPort === 0 ? await freePort() : opts.controllerPort + i;
    if (opts.port !== 0) await assertPortFree(port, "RT_KAFKA_PORT");
    if (opts.controllerPort !== 0) await assertPortFree(controllerPort, "RT_KAFKA_CONTROLLER_PORT");
    nodes.push({ id: i + 1, port, controllerPort });
  }
  mkdirSync(opts.dataDir, { recursive: true });
  // A reused data dir keeps its cluster id; the voters must not change between runs.
  const idFile = join(opts.dataDir, "cluster-id");
  const clusterId = existsSync(idFile)
    ? readFileSync(idFile, "utf8").trim()
    : randomBytes(16).toString("base64url");
  writeFileSync(idFile, clusterId);

  const procs: { child: ChildProcess; pidFile: string; node: NodePorts; logFile: string }[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => stopNode(p.child, p.pidFile)));
  };
  try {
    for (const node of nodes) {
      const nodeDir = join(opts.dataDir, `node-${node.id}`);
      mkdirSync(nodeDir, { recursive: true });
      const propsFile = join(nodeDir, "server.properties");
      writeFileSync(propsFile, serverProperties(node, nodes, opts.dataDir) + "\n");
      const classpath = `${libs}/*`;
      const jvmBase = [
        `-Dlog4j2.configurationFile=${join(KAFKA_DIR, "log4j2.properties")}`,
        "-cp",
        classpath,
      ];
      if (!existsSync(join(nodeDir, "meta", "meta.properties"))) {
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
      const logFile = join(nodeDir, "kafka.log");
      const pidFile = join(nodeDir, "jvm.pid");
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
      procs.push({ child, pidFile, node, logFile });
      log.info({ node: node.id, port: node.port, log: logFile }, "kafka node starting");
    }
    const brokers = nodes.map((n) => `127.0.0.1:${n.port}`);
    await waitReady(brokers, nodes.length, opts.readyTimeoutMs ?? 90_000, log, () => {
      for (const p of procs) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) {
          return `Kafka node ${p.node.id} exited during start (see ${p.logFile}):\n${logTail(p.logFile)}`;
        }
      }
      return null;
    });
    log.info({ brokers }, "kafka ready");
    let stopping: Promise<void> | null = null;
    return { brokers, dataDir: opts.dataDir, stop: () => (stopping ??= stop()) };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function stopNode(child: ChildProcess, pidFile: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  const clean = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
  if (clean) return;
  // The JVM did not finish its controlled shutdown in time: kill it and its wrapper.
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
  child.kill("SIGKILL");
  await exited;
}
