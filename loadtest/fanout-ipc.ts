/**
 * The messages between a fanout run's main process and its generator processes
 * (fanout-worker.ts), over Node's IPC channel (JSON). The main process sends `start`, then
 * drives the phases; a generator answers and reports `progress` once a second.
 *
 * Clock: each process reads `performance.timeOrigin + performance.now()`. The main process
 * measures each generator's offset (`ping`/`pong`, the sample with the shortest round trip) and
 * sends it back (`offset`); from then on a generator converts its arrival times into the main
 * process's clock, the one every send time comes from.
 */
import type { SparseHistogram } from "./histogram.ts";
import type { Expected, FanoutTotals } from "./fanout-tracker.ts";

export interface WorkerConfig {
  readonly scenario: "room" | "broadcast" | "connect" | "storm";
  readonly runId: string;
  readonly index: number;
  readonly secret: string;
  readonly tokenTtlS: number;
  /** Global client indices [first, first + count). */
  readonly first: number;
  readonly count: number;
  /** Rooms (room) or 1 (broadcast); client i's group is roomOf(i, groups). */
  readonly groups: number;
  readonly slots: number;
  readonly perSlot: boolean;
  /** Join the client's room after the welcome (room). */
  readonly join: boolean;
  /** Deliveries-topic partition count and each partition's gateway URL. */
  readonly partitions: number;
  readonly owners: Readonly<Record<string, string>>;
  /** Source addresses rotate over 127.0.0.1..n by global client index. */
  readonly localAddresses: number;
  /** This generator's share of the connect rate. */
  readonly connectRatePerS: number;
  readonly highestLatencyUs: number;
  readonly allowRemote: boolean;
  /** storm: full-jitter backoff of a failed reconnect. */
  readonly backoffBaseMs?: number;
  readonly backoffCapMs?: number;
  /** storm: most reconnects (handshake to welcome) one generator keeps in flight. */
  readonly handshakesInFlight?: number;
}

export type ToWorker =
  | { readonly kind: "start"; readonly config: WorkerConfig }
  | { readonly kind: "ping"; readonly id: number }
  | { readonly kind: "offset"; readonly offsetMs: number }
  | { readonly kind: "window"; readonly startMs: number; readonly endMs: number }
  | { readonly kind: "finish"; readonly expected: Expected }
  | { readonly kind: "close" }
  /** storm: drop every socket at once, without a close frame. */
  | { readonly kind: "drop" }
  /** storm: reconnect every client with its cursor; `expected`: events each must have in the end. */
  | {
      readonly kind: "resume";
      readonly expected: number;
      readonly spreadMs: number;
      readonly deadlineMs: number;
    };

export interface ConnectReport {
  readonly ok: number;
  readonly failed: number;
  readonly firstError: string | null;
  readonly redirected: number;
  readonly perNode: Readonly<Record<string, number>>;
  readonly localAddresses: readonly string[];
  readonly wallMs: number;
}

export interface Progress {
  readonly connected: number;
  readonly connectFailed: number;
  /** Members that saw their own `rt.joined` (room). */
  readonly joined: number;
  /** Join acks and `rt.rejected` refusals by code. */
  readonly joinRefused: Readonly<Record<string, number>>;
  readonly closes: Readonly<Record<string, number>>;
  readonly errorFrames: Readonly<Record<string, number>>;
  /** Nodes whose clients got a probe broadcast (broadcast). */
  readonly probeNodes: readonly string[];
  readonly delivered: number;
  readonly duplicates: number;
  readonly latencyUs: SparseHistogram;
  readonly eventLoopDelayP99Ms: number;
  readonly rssBytes: number;
  /** Connects started in the last second and their time to welcome (connect, storm). */
  readonly welcomed?: number;
  readonly connectUs?: SparseHistogram;
  /** storm: sessions back after the drop, and reconnect attempts that failed, so far. */
  readonly resumed?: number;
  readonly resumeFailures?: number;
}

/** What one storm generator found once its clients were back (or its deadline passed). */
export interface StormReport {
  readonly clients: number;
  /** Clients that were connected when the drop came. */
  readonly dropped: number;
  readonly resumed: number;
  readonly recoveredTrue: number;
  readonly recoveredFalse: number;
  /** Reconnect attempts in all, and the failed ones by reason. */
  readonly attempts: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly firstFailure: string | null;
  /** Storm start to each client's welcome, and to the moment it had every expected event (us). */
  readonly toWelcomeUs: SparseHistogram;
  readonly toCaughtUpUs: SparseHistogram;
  readonly caughtUp: number;
  readonly expected: number;
  readonly received: number;
  /** Expected events a resumed client never got. */
  readonly lost: number;
  /** Events a client got twice (the same sequence number). */
  readonly duplicates: number;
  /** Closes of resumed sessions before the end, by close code. */
  readonly closesAfterResume: Readonly<Record<string, number>>;
  readonly wallMs: number;
}

export type FromWorker =
  | { readonly kind: "progress"; readonly progress: Progress }
  | { readonly kind: "connected"; readonly report: ConnectReport }
  | { readonly kind: "pong"; readonly id: number; readonly nowMs: number }
  | { readonly kind: "window-set" }
  | { readonly kind: "totals"; readonly totals: FanoutTotals }
  | { readonly kind: "closed"; readonly ms: number; readonly terminated: number }
  | { readonly kind: "fatal"; readonly message: string }
  | { readonly kind: "dropped"; readonly dropped: number }
  | { readonly kind: "resumed"; readonly report: StormReport };

export interface ClockSample {
  readonly sentMs: number;
  readonly workerMs: number;
  readonly receivedMs: number;
}

/**
 * The generator's clock minus the main process's, from ping samples: the one with the shortest
 * round trip, assuming its two legs took equally long (the error is at most half that trip).
 */
export function clockOffset(samples: readonly ClockSample[]): { offsetMs: number; rttMs: number } {
  if (samples.length === 0) throw new RangeError("no clock samples");
  let best = samples[0]!;
  for (const s of samples) if (s.receivedMs - s.sentMs < best.receivedMs - best.sentMs) best = s;
  const rttMs = best.receivedMs - best.sentMs;
  return { offsetMs: best.workerMs - (best.sentMs + best.receivedMs) / 2, rttMs };
}

/** Sends a message to the main process (a no-op once it is gone). */
export function sendToMain(m: FromWorker): void {
  process.send?.(m);
}

/** What every generator answers the same way: pings and the final close. */
export interface WorkerBase {
  close(): Promise<{ ms: number; terminated: number }>;
}

/**
 * A generator process's main: refuses to run by hand, exits with the main process, reports any
 * uncaught error as `fatal`, answers `ping` and `close`, and hands every other message to
 * `handle` (with `fatal`, for the promises it starts).
 */
export function workerMain(
  usage: string,
  current: () => WorkerBase | null,
  handle: (m: Exclude<ToWorker, { kind: "ping" | "close" }>, fatal: (e: unknown) => void) => void,
): void {
  if (process.send === undefined) {
    console.error(usage);
    process.exit(2);
  }
  // The main process is gone: nothing here is worth keeping.
  process.on("disconnect", () => process.exit(0));
  const fatal = (e: unknown) => {
    sendToMain({ kind: "fatal", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    setTimeout(() => process.exit(1), 100);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  process.on("message", (m: ToWorker) => {
    if (m.kind === "ping") {
      sendToMain({ kind: "pong", id: m.id, nowMs: performance.timeOrigin + performance.now() });
      return;
    }
    if (m.kind === "close") {
      void (current()?.close() ?? Promise.resolve({ ms: 0, terminated: 0 })).then((r) => {
        sendToMain({ kind: "closed", ...r });
        setTimeout(() => process.exit(0), 50);
      }, fatal);
      return;
    }
    handle(m, fatal);
  });
}
