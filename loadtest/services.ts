/**
 * The gateways and the router a churn run starts as child processes (`node --import tsx
 * gateway/main.ts`, as `npm run gateway` does), and the checks of the Kafka they use.
 *
 * Every child is registered until it exits, so `killAllNow()` can SIGKILL whatever is left from
 * any path, synchronously (an `exit` handler, a hard deadline). The children also run with
 * RT_EXIT_WITH_PARENT=1: if this process dies anyway, they drain and exit by themselves.
 *
 * A child's output is read line by line and never kept whole: JSON log lines are counted by
 * level and message with a few examples each (the evidence of what the services complained
 * about), the last lines are kept for error messages, and everything goes to a log file
 * capped in size.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { createLogger } from "../common/log.ts";
import { REPO_ROOT } from "./machine.ts";

const TAIL_LINES = 40;
const MAX_LOG_KEYS = 200;
const EXAMPLES_PER_KEY = 2;
const EXAMPLE_CHARS = 600;
const LOG_FILE_CAP_BYTES = 32 * 1024 * 1024;

export type ServiceKind = "gateway" | "router";

export interface LogCount {
  readonly level: string;
  readonly msg: string;
  readonly count: number;
  readonly examples: readonly string[];
}

export interface Service {
  readonly name: string;
  readonly kind: ServiceKind;
  readonly pid: number;
  readonly startedAtMs: number;
  /** Resolves with the `{"event":"<kind>_ready",...}` line's fields; rejects on exit or timeout. */
  ready(timeoutMs: number): Promise<{ url: string; port: number }>;
  /** Resolves with the exit code, or 128 + the signal number. */
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  /** Sends `signal`; SIGKILL after `graceMs`. Resolves once exited. Safe to call twice. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<number>;
  /** The last lines of output, for an error message. */
  tail(): string[];
  /** JSON log lines by level and message, most frequent first. */
  logCounts(): LogCount[];
}

const live = new Set<ChildProcess>();

/** SIGKILLs every child still running. Synchronous: safe in an `exit` handler. */
export function killAllNow(): number {
  let n = 0;
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      n++;
    }
  }
  return n;
}

/** Registers another child of this run (a load generator) so `killAllNow` covers it until it exits. */
export function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once("close", () => live.delete(child));
  child.once("error", () => live.delete(child));
}

export function liveServiceCount(): number {
  return live.size;
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** The child's environment: this process's, minus every RT_* variable, plus `env`. */
function childEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("RT_")) out[k] = v;
  return { ...out, RT_EXIT_WITH_PARENT: "1", ...env };
}

export function startService(
  kind: ServiceKind,
  name: string,
  env: Readonly<Record<string, string>>,
  logFile: string | null,
  nodeArgs: readonly string[] = [],
): Service {
  const entry = kind === "gateway" ? "gateway/main.ts" : "router/main.ts";
  const child = spawn(process.execPath, ["--import", "tsx", ...nodeArgs, entry], {
    cwd: REPO_ROOT,
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  const startedAtMs = Date.now();
  const exited = new Promise<number>((done) => {
    child.once("close", (code, signal) => {
      live.delete(child);
      done(code ?? 128 + (SIGNAL_NUMBERS[signal ?? ""] ?? 0));
    });
    // A failed spawn emits `error` and may never emit `close`.
    child.once("error", () => {
      live.delete(child);
      done(127);
    });
  });
  let exitCode: number | null = null;
  void exited.then((c) => (exitCode = c));

  const tail: string[] = [];
  const counts = new Map<string, { level: string; msg: string; count: number; examples: string[] }>();
  let file: WriteStream | null = null;
  let fileBytes = 0;
  if (logFile !== null) {
    file = createWriteStream(logFile, { flags: "a" });
    file.on("error", () => (file = null));
  }
  let readyLine: { url: string; port: number } | null = null;
  const readyWaiters: ((r: { url: string; port: number }) => void)[] = [];
  const readyEvent = `${kind}_ready`;

  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    if (file !== null && fileBytes < LOG_FILE_CAP_BYTES) {
      fileBytes += line.length + 1;
      file.write(fileBytes < LOG_FILE_CAP_BYTES ? `${name} ${line}\n` : `${name} [log file cap reached]\n`);
    }
    if (!line.startsWith("{")) return;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (v["event"] === readyEvent && typeof v["url"] === "string" && typeof v["port"] === "number") {
      readyLine = { url: v["url"], port: v["port"] };
      for (const w of readyWaiters.splice(0)) w(readyLine);
      return;
    }
    if (typeof v["level"] !== "string") return;
    const level = v["level"];
    const msg = typeof v["msg"] === "string" ? v["msg"] : "";
    const key =
      counts.size < MAX_LOG_KEYS || counts.has(`${level} ${msg}`) ? `${level} ${msg}` : `${level} *`;
    let entry = counts.get(key);
    if (entry === undefined) {
      entry = { level, msg: key === `${level} *` ? "(other messages)" : msg, count: 0, examples: [] };
      counts.set(key, entry);
    }
    entry.count++;
    if (entry.examples.length < EXAMPLES_PER_KEY) entry.examples.push(line.slice(0, EXAMPLE_CHARS));
  };
  for (const stream of [child.stdout, child.stderr]) {
    if (stream !== null) createInterface({ input: stream, crlfDelay: Infinity }).on("line", onLine);
  }
  void exited.then(() => setTimeout(() => file?.end(), 100));

  let stopping: Promise<number> | null = null;
  return {
    name,
    kind,
    pid: child.pid ?? -1,
    startedAtMs,
    exited,
    get exitCode() {
      return exitCode;
    },
    ready(timeoutMs) {
      if (readyLine !== null) return Promise.resolve(readyLine);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name} printed no ${readyEvent} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        readyWaiters.push((r) => {
          clearTimeout(timer);
          resolve(r);
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${code}) before it was ready: ${tail.slice(-5).join(" | ")}`));
        });
      });
    },
    stop(signal, graceMs) {
      if (exitCode !== null) return exited;
      stopping ??= (async () => {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      })();
      return stopping;
    },
    tail: () => [...tail],
    logCounts: () =>
      [...counts.values()]
        .sort((a, b) => b.count - a.count || a.msg.localeCompare(b.msg))
        .map((e) => ({ ...e, examples: [...e.examples] })),
  };
}

/** GET a JSON endpoint of a service; null on any failure (it is polled, never trusted). */
export async function getJson(
  url: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: unknown } | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) as unknown };
    } catch {
      return { status: res.status, body: null };
    }
  } catch {
    return null;
  }
}

/** GET a text endpoint of a service (e.g. /metrics); null unless it answers 200 in time. */
export async function getText(url: string, timeoutMs = 2000): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return res.status === 200 ? text : null;
  } catch {
    return null;
  }
}

/** Whether a TCP connection to host:port opens within `timeoutMs`. */
export function tcpAnswers(hostPort: string, timeoutMs: number): Promise<boolean> {
  const i = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  const port = Number(hostPort.slice(i + 1));
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

export type KafkaCheck = { ok: true; brokers: number } | { ok: false; message: string };

/** One real metadata round trip (after a TCP check), bounded by about `timeoutMs`. */
export async function checkKafka(brokers: readonly string[], timeoutMs: number): Promise<KafkaCheck> {
  const answering = await Promise.all(brokers.map((b) => tcpAnswers(b, Math.min(3000, timeoutMs))));
  if (!answering.some(Boolean)) {
    return {
      ok: false,
      message:
        `no Kafka broker answers at ${brokers.join(",")}: start one (\`npm run kafka -- start\` or ` +
        "`npm start`) or point --brokers at yours",
    };
  }
  const log = createLogger({ service: "loadtest", level: "silent" });
  const kafka = createKafka({
    brokers,
    clientId: "rt-loadtest",
    logger: log,
    connectionTimeoutMs: 3000,
    requestTimeoutMs: timeoutMs,
    retries: 1,
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<KafkaCheck>((done) => {
    timer = setTimeout(
      () =>
        done({
          ok: false,
          message: `Kafka at ${brokers.join(",")} accepts connections but sent no metadata within ${timeoutMs} ms`,
        }),
      timeoutMs,
    );
  });
  const probe = (async (): Promise<KafkaCheck> => {
    try {
      const admin = await kafka.admin();
      try {
        const info = await admin.describeCluster();
        return { ok: true, brokers: info.brokers.length };
      } finally {
        await admin.close().catch(() => {});
      }
    } catch (e) {
      return { ok: false, message: `Kafka at ${brokers.join(",")} does not answer: ${(e as Error).message}` };
    }
  })();
  try {
    return await Promise.race([probe, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Deletes the topics whose names start with `prefix` (the run's own); the count, or an error message. */
export async function deleteTopics(
  brokers: readonly string[],
  prefix: string,
  timeoutMs: number,
): Promise<{ deleted: number } | { error: string }> {
  const kafka = createKafka({
    brokers,
    clientId: "rt-loadtest",
    logger: createLogger({ service: "loadtest", level: "silent" }),
    connectionTimeoutMs: 3000,
    requestTimeoutMs: timeoutMs,
    retries: 1,
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<{ error: string }>((done) => {
    timer = setTimeout(() => done({ error: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const work = (async () => {
    try {
      const admin = await kafka.admin();
      try {
        const mine = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
        if (mine.length > 0) await admin.deleteTopics(mine);
        return { deleted: mine.length };
      } finally {
        await admin.close().catch(() => {});
      }
    } catch (e) {
      return { error: (e as Error).message };
    }
  })();
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
