/**
 * The main process's side of a fanout run's generator processes (fanout-worker.ts): starts them
 * (`node --import tsx`, IPC), keeps their latest progress, and runs the request/answer steps of
 * fanout-ipc.ts with a bound on each. Every generator is registered with services.ts, so the
 * `exit` handler SIGKILLs any still running; they also exit by themselves when this process dies
 * (their IPC channel closes).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import type { ProcRef } from "./cpu-sampler.ts";
import {
  clockOffset,
  type ClockSample,
  type ConnectReport,
  type FromWorker,
  type Progress,
  type StormReport,
  type ToWorker,
  type WorkerConfig,
} from "./fanout-ipc.ts";
import { latencyHistogram, type Expected, type FanoutTotals } from "./fanout-tracker.ts";
import type { Histogram, SparseHistogram } from "./histogram.ts";
import { REPO_ROOT } from "./machine.ts";
import { trackChild } from "./services.ts";

const TAIL_LINES = 20;
const CLOCK_SAMPLES = 7;
const EXIT_WAIT_MS = 10_000;

const now = (): number => performance.timeOrigin + performance.now();

/** A generator failed or did not answer in time: the run cannot go on. */
export class GeneratorError extends Error {
  override readonly name = "GeneratorError";
}

interface Worker {
  readonly name: string;
  readonly child: ChildProcess;
  readonly tail: string[];
  readonly waiters: Map<FromWorker["kind"], ((m: FromWorker) => void)[]>;
  progress: Progress | null;
  exitCode: number | null;
  fatal: string | null;
}

export interface Aggregate {
  readonly connected: number;
  readonly connectFailed: number;
  readonly joined: number;
  readonly joinRefused: Record<string, number>;
  readonly closes: Record<string, number>;
  readonly errorFrames: Record<string, number>;
  readonly probeNodes: Set<string>;
  readonly duplicates: number;
  readonly eventLoopDelayP99Ms: number;
  readonly rssBytes: number;
  readonly resumed: number;
  readonly resumeFailures: number;
}

function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export class Generators {
  readonly #workers: Worker[];
  readonly #highestLatencyUs: number;
  readonly #interval: Histogram;
  readonly #connectInterval: Histogram;
  #welcomed = 0;
  #intervalDelivered = 0;
  #deliveredTotal = 0;

  private constructor(workers: Worker[], highestLatencyUs: number) {
    this.#workers = workers;
    this.#highestLatencyUs = highestLatencyUs;
    this.#interval = latencyHistogram(highestLatencyUs);
    this.#connectInterval = latencyHistogram(highestLatencyUs);
  }

  /** Connects welcomed and their time to welcome reported since the last call (connect, storm). */
  takeConnects(): { welcomed: number; connectUs: SparseHistogram } {
    const r = { welcomed: this.#welcomed, connectUs: this.#connectInterval.toSparse() };
    this.#welcomed = 0;
    this.#connectInterval.reset();
    return r;
  }

  /** Starts one process per config and hands it its config. */
  static start(
    configs: readonly WorkerConfig[],
    highestLatencyUs: number,
    script = "loadtest/fanout-worker.ts",
    nodeArgs: readonly string[] = [],
  ): Generators {
    const workers = configs.map((config, i) => {
      const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", script], {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe", "ipc"],
        serialization: "json",
      });
      trackChild(child);
      const w: Worker = {
        name: `gen${i + 1}`,
        child,
        tail: [],
        waiters: new Map(),
        progress: null,
        exitCode: null,
        fatal: null,
      };
      for (const stream of [child.stdout, child.stderr]) {
        if (stream === null) continue;
        createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
          w.tail.push(line.slice(0, 500));
          if (w.tail.length > TAIL_LINES) w.tail.shift();
        });
      }
      child.once("close", (code, signal) => {
        w.exitCode = code ?? (signal === null ? 1 : 128);
      });
      child.send({ kind: "start", config } satisfies ToWorker);
      return w;
    });
    const g = new Generators(workers, highestLatencyUs);
    for (const w of workers) w.child.on("message", (m: FromWorker) => g.#onMessage(w, m));
    return g;
  }

  #onMessage(w: Worker, m: FromWorker): void {
    if (m.kind === "progress") {
      w.progress = m.progress;
      this.#intervalDelivered += m.progress.delivered;
      this.#deliveredTotal += m.progress.delivered;
      this.#interval.addSparse(m.progress.latencyUs);
      if (m.progress.connectUs !== undefined) this.#connectInterval.addSparse(m.progress.connectUs);
      this.#welcomed += m.progress.welcomed ?? 0;
      return;
    }
    if (m.kind === "fatal") w.fatal = m.message;
    const list = w.waiters.get(m.kind);
    const next = list?.shift();
    if (next !== undefined) next(m);
  }

  processes(): ProcRef[] {
    return this.#workers.map((w) => ({ name: w.name, pid: w.child.pid ?? -1 }));
  }

  get count(): number {
    return this.#workers.length;
  }

  /** Deliveries reported so far (progress lags by up to a second). */
  get delivered(): number {
    return this.#deliveredTotal;
  }

  /** Deliveries and their latency reported since the last call. */
  takeInterval(): { delivered: number; latencyUs: SparseHistogram } {
    const r = { delivered: this.#intervalDelivered, latencyUs: this.#interval.toSparse() };
    this.#intervalDelivered = 0;
    this.#interval.reset();
    return r;
  }

  /** The latest progress of every generator, added up. */
  aggregate(): Aggregate {
    const a = {
      connected: 0,
      connectFailed: 0,
      joined: 0,
      joinRefused: {} as Record<string, number>,
      closes: {} as Record<string, number>,
      errorFrames: {} as Record<string, number>,
      probeNodes: new Set<string>(),
      duplicates: 0,
      eventLoopDelayP99Ms: 0,
      rssBytes: 0,
      resumed: 0,
      resumeFailures: 0,
    };
    for (const w of this.#workers) {
      const p = w.progress;
      if (p === null) continue;
      a.connected += p.connected;
      a.connectFailed += p.connectFailed;
      a.joined += p.joined;
      addCounts(a.joinRefused, p.joinRefused);
      addCounts(a.closes, p.closes);
      addCounts(a.errorFrames, p.errorFrames);
      for (const n of p.probeNodes) a.probeNodes.add(n);
      a.duplicates += p.duplicates;
      a.eventLoopDelayP99Ms = Math.max(a.eventLoopDelayP99Ms, p.eventLoopDelayP99Ms);
      a.rssBytes += p.rssBytes;
      a.resumed += p.resumed ?? 0;
      a.resumeFailures += p.resumeFailures ?? 0;
    }
    return a;
  }

  /** Whether a generator died or reported a fatal error (then: why). */
  failure(): string | null {
    for (const w of this.#workers) {
      if (w.fatal !== null) return `${w.name} failed: ${w.fatal.split("\n")[0]}`;
      if (w.exitCode !== null) {
        return `${w.name} exited (${w.exitCode}) unexpectedly: ${w.tail.slice(-3).join(" | ") || "no output"}`;
      }
    }
    return null;
  }

  #next<K extends FromWorker["kind"]>(
    w: Worker,
    kind: K,
    timeoutMs: number,
  ): Promise<Extract<FromWorker, { kind: K }>> {
    return new Promise((resolve, reject) => {
      const list = w.waiters.get(kind) ?? [];
      w.waiters.set(kind, list);
      const waiter = (m: FromWorker) => {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(m as Extract<FromWorker, { kind: K }>);
      };
      list.push(waiter);
      const fail = (message: string) => {
        clearInterval(poll);
        clearTimeout(timer);
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        reject(new GeneratorError(message));
      };
      const timer = setTimeout(() => fail(`${w.name} sent no ${kind} within ${timeoutMs} ms`), timeoutMs);
      const poll = setInterval(() => {
        const why = this.failure();
        if (why !== null) fail(why);
      }, 100);
    });
  }

  #all<K extends FromWorker["kind"]>(
    kind: K,
    timeoutMs: number,
    message?: (w: Worker) => ToWorker,
  ): Promise<Extract<FromWorker, { kind: K }>[]> {
    return Promise.all(
      this.#workers.map((w) => {
        const answer = this.#next(w, kind, timeoutMs);
        if (message !== undefined) w.child.send(message(w));
        return answer;
      }),
    );
  }

  /** Waits until every generator has finished its connect phase. */
  async connected(timeoutMs: number): Promise<ConnectReport[]> {
    return (await this.#all("connected", timeoutMs)).map((m) => m.report);
  }

  /** Measures each generator's clock offset and hands it over. */
  async calibrate(): Promise<{ name: string; offset_ms: number; rtt_ms: number }[]> {
    const out = [];
    let id = 0;
    for (const w of this.#workers) {
      const samples: ClockSample[] = [];
      for (let i = 0; i < CLOCK_SAMPLES; i++) {
        const sentMs = now();
        const pingId = ++id;
        const answer = this.#next(w, "pong", 5_000);
        w.child.send({ kind: "ping", id: pingId } satisfies ToWorker);
        const pong = await answer;
        samples.push({ sentMs, workerMs: pong.nowMs, receivedMs: now() });
      }
      const { offsetMs, rttMs } = clockOffset(samples);
      w.child.send({ kind: "offset", offsetMs } satisfies ToWorker);
      out.push({
        name: w.name,
        offset_ms: Math.round(offsetMs * 1000) / 1000,
        rtt_ms: Math.round(rttMs * 1000) / 1000,
      });
    }
    return out;
  }

  /** Sets the measured window (main clock) in every generator; resolves once all have it. */
  async setWindow(startMs: number, endMs: number): Promise<void> {
    await this.#all("window-set", 10_000, () => ({ kind: "window", startMs, endMs }));
  }

  /** Every generator's totals, given what was sent. */
  async totals(expected: Expected, timeoutMs: number): Promise<FanoutTotals[]> {
    return (await this.#all("totals", timeoutMs, () => ({ kind: "finish", expected }))).map((m) => m.totals);
  }

  /** storm: every generator drops all its sockets at once; the sockets that were open. */
  async drop(timeoutMs: number): Promise<number> {
    const answers = await this.#all("dropped", timeoutMs, () => ({ kind: "drop" }));
    return answers.reduce((a, m) => a + m.dropped, 0);
  }

  /** storm: every client reconnects with its cursor; resolves with each generator's report. */
  async resume(expected: number, spreadMs: number, deadlineMs: number): Promise<StormReport[]> {
    const answers = await this.#all("resumed", deadlineMs + 30_000, () => ({
      kind: "resume",
      expected,
      spreadMs,
      deadlineMs,
    }));
    return answers.map((m) => m.report);
  }

  /** Closes every generator's sockets, waits for the processes to exit (SIGKILL after a bound). */
  async close(): Promise<{ ms: number; terminated: number }> {
    const start = Date.now();
    let terminated = 0;
    await Promise.all(
      this.#workers.map(async (w) => {
        if (w.exitCode !== null || w.child.connected === false) return;
        try {
          const closed = this.#next(w, "closed", EXIT_WAIT_MS);
          w.child.send({ kind: "close" } satisfies ToWorker);
          terminated += (await closed).terminated;
        } catch {
          // It will be killed below.
        }
      }),
    );
    await Promise.all(
      this.#workers.map(async (w) => {
        const deadline = Date.now() + EXIT_WAIT_MS;
        while (w.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        if (w.exitCode === null) w.child.kill("SIGKILL");
      }),
    );
    return { ms: Date.now() - start, terminated };
  }

  get highestLatencyUs(): number {
    return this.#highestLatencyUs;
  }
}
