/**
 * One generator process of a `storm` run (started by fanout-generators.ts, never by hand). It
 * connects its share of the clients straight to the gateways that own them and records every
 * event they get (StormTracker); on `drop` it terminates every socket at once (no close frame,
 * as when a network or a load balancer goes); on `resume` every client reconnects with the cursor
 * of the last event it got, at a random moment within the spread, retrying failures with
 * full-jitter backoff, until it is welcomed and has every event, or the deadline passes.
 *
 * It exits when the main process says so, or as soon as the IPC channel closes.
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { LeanWebSocket } from "./lean-ws.ts";
import { mintDevToken } from "../gateway/auth.ts";
import { closeCodeByNumber } from "../schemas/close-codes.ts";
import { partitionForKey } from "../schemas/partition.ts";
import { closeSockets, connectUser } from "./connection.ts";
import type { Progress, StormReport, WorkerConfig } from "./fanout-ipc.ts";
import { sendToMain, workerMain } from "./fanout-ipc.ts";
import { memberUser } from "./fanout-protocol.ts";
import { latencyHistogram } from "./fanout-tracker.ts";
import type { Histogram, SparseHistogram } from "./histogram.ts";
import { checkTargetUrl, localAddressFor } from "./loopback.ts";
import { Pacer } from "./pacer.ts";
import { parseMessageId, pongFrame } from "./protocol.ts";
import { backoffMs, failureReason, STORM_EVENT_TYPE, StormTracker } from "./storm-tracker.ts";

const TICK_MS = 10;
const MAX_IN_FLIGHT = 256;
/**
 * Reconnects in flight at once in one generator during the storm: high enough that every client of
 * a generator may be connecting at the same moment (the herd), bounded by what one process may open.
 */
const CONNECT_TIMEOUT_MS = 20_000;
const CONNECT_SLACK_MS = 60_000;

const now = (): number => performance.timeOrigin + performance.now();

const send = sendToMain;

function bump(r: Record<string, number>, key: string): void {
  r[key] = (r[key] ?? 0) + 1;
}

function closeKey(code: number): string {
  const info = closeCodeByNumber(code);
  return info === undefined ? String(code) : `${code} ${info.name}`;
}

/** The fields of a server frame a storm client reads. */
function parseFrame(text: string): { op: string; id?: string; type?: string; cursor?: string } | null {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (typeof v !== "object" || v === null || typeof v["op"] !== "string") return null;
    return {
      op: v["op"],
      ...(typeof v["id"] === "string" ? { id: v["id"] } : {}),
      ...(typeof v["type"] === "string" ? { type: v["type"] } : {}),
      ...(typeof v["cursor"] === "string" ? { cursor: v["cursor"] } : {}),
    };
  } catch {
    return null;
  }
}

type Phase = "connect" | "held" | "dropped" | "storm" | "closing";

class StormGenerator {
  readonly #c: WorkerConfig;
  readonly #tracker: StormTracker;
  readonly #sockets: (LeanWebSocket | undefined)[];
  readonly #tokens: (string | undefined)[];
  /** 1: the client was connected when the drop came; 2: it is back; 3: it is back and has every event. */
  readonly #state: Uint8Array;
  readonly #loopDelay = monitorEventLoopDelay({ resolution: 10 });
  readonly #closes: Record<string, number> = {};
  readonly #closesAfterResume: Record<string, number> = {};
  readonly #errorFrames: Record<string, number> = {};
  readonly #failures: Record<string, number> = {};
  readonly #perNode: Record<string, number> = {};
  readonly #welcomeUs: Histogram;
  readonly #toWelcomeTotal: Histogram;
  readonly #toCaughtUp: Histogram;
  readonly #noLatency: SparseHistogram;
  #phase: Phase = "connect";
  #live = 0;
  #connectFailed = 0;
  #firstError: string | null = null;
  #welcomed = 0;
  #resumed = 0;
  #recoveredTrue = 0;
  #recoveredFalse = 0;
  #attempts = 0;
  #failed = 0;
  #caughtUp = 0;
  #expected = 0;
  #stormStart = 0;
  #deliveredReported = 0;
  #progressTimer: NodeJS.Timeout | undefined;

  constructor(config: WorkerConfig) {
    this.#c = config;
    this.#tracker = new StormTracker(config.first, config.count, config.slots);
    this.#sockets = new Array<LeanWebSocket | undefined>(config.count);
    this.#tokens = new Array<string | undefined>(config.count);
    this.#state = new Uint8Array(config.count);
    this.#welcomeUs = latencyHistogram(config.highestLatencyUs);
    this.#toWelcomeTotal = latencyHistogram(config.highestLatencyUs);
    this.#toCaughtUp = latencyHistogram(config.highestLatencyUs);
    this.#noLatency = latencyHistogram(config.highestLatencyUs).toSparse();
    this.#loopDelay.enable();
    this.#progressTimer = setInterval(() => this.#report(), 1000);
  }

  #report(): void {
    const d = this.#loopDelay;
    const delivered = this.#tracker.delivered;
    const progress: Progress = {
      connected: this.#live,
      connectFailed: this.#connectFailed,
      joined: 0,
      joinRefused: {},
      closes: { ...this.#closes },
      errorFrames: { ...this.#errorFrames },
      probeNodes: [],
      delivered: delivered - this.#deliveredReported,
      duplicates: this.#tracker.duplicates,
      latencyUs: this.#noLatency,
      eventLoopDelayP99Ms: d.count === 0 ? 0 : Math.round(d.percentile(99) / 1e4) / 100,
      rssBytes: process.memoryUsage.rss(),
      welcomed: this.#welcomed,
      connectUs: this.#welcomeUs.toSparse(),
      resumed: this.#resumed,
      resumeFailures: this.#failed,
    };
    this.#deliveredReported = delivered;
    d.reset();
    this.#welcomed = 0;
    this.#welcomeUs.reset();
    send({ kind: "progress", progress });
  }

  /** Listeners of a welcomed socket (added the moment the welcome arrives). */
  #attach(k: number, ws: LeanWebSocket): void {
    const runId = this.#c.runId;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const m = parseFrame(data.toString());
      if (m === null) return;
      if (m.op === "event" && m.type === STORM_EVENT_TYPE) {
        const id = m.id === undefined ? null : parseMessageId(runId, m.id);
        this.#tracker.onEvent(k, id?.pair ?? -1, id?.seq ?? -1, m.cursor);
        if (this.#state[k] === 2 && this.#tracker.received(k) >= this.#expected) {
          this.#state[k] = 3;
          this.#caughtUp++;
          this.#toCaughtUp.record((now() - this.#stormStart) * 1000);
        }
      } else if (m.op === "ping") ws.send(pongFrame(m.id));
      else if (m.op === "error") bump(this.#errorFrames, "error");
    });
    ws.on("close", (code: number) => {
      if (this.#sockets[k] !== ws) return;
      this.#sockets[k] = undefined;
      this.#live--;
      if (this.#phase === "dropped" || this.#phase === "closing") return;
      bump(this.#closes, closeKey(code));
      if (this.#phase === "storm") bump(this.#closesAfterResume, closeKey(code));
    });
  }

  async #token(k: number): Promise<string> {
    const c = this.#c;
    let t = this.#tokens[k];
    if (t === undefined) {
      t = await mintDevToken(c.secret, memberUser(c.runId, c.first + k), { ttlS: c.tokenTtlS });
      this.#tokens[k] = t;
    }
    return t;
  }

  /** One connect of client k (with its cursor after the drop); the failure message, or null. */
  async #connectOne(k: number, timeoutMs: number): Promise<string | null> {
    const c = this.#c;
    const i = c.first + k;
    const user = memberUser(c.runId, i);
    const owners = Object.values(c.owners);
    const url = c.owners[String(partitionForKey(user, c.partitions))] ?? owners[i % owners.length]!;
    const cursor = this.#tracker.cursor(k);
    const startedMs = now();
    const r = await connectUser({
      url,
      token: await this.#token(k),
      localAddress: localAddressFor(i, c.localAddresses, new URL(url).hostname),
      timeoutMs,
      maxRedirects: 3,
      checkRedirect: (to) => {
        const check = checkTargetUrl(to, c.allowRemote);
        return check.ok ? null : check.message;
      },
      ...(cursor === undefined ? {} : { cursor }),
      onWelcome: (ws) => {
        this.#sockets[k] = ws;
        this.#live++;
        this.#attach(k, ws);
      },
    });
    if (!r.ok) return r.message;
    this.#welcomed++;
    if (this.#phase === "connect") bump(this.#perNode, r.node);
    if (this.#phase === "storm") {
      this.#welcomeUs.record((now() - this.#stormStart) * 1000);
      this.#toWelcomeTotal.record((now() - this.#stormStart) * 1000);
      if (r.recovered === false) this.#recoveredFalse++;
      else this.#recoveredTrue++;
    } else this.#welcomeUs.record((now() - startedMs) * 1000);
    return null;
  }

  async connectAll(): Promise<void> {
    const c = this.#c;
    const start = now();
    const spanMs = Math.ceil((c.count / c.connectRatePerS) * 1000);
    const pacer = new Pacer({
      ratePerS: c.connectRatePerS,
      startMs: start,
      endMs: start + spanMs,
      maxBacklogMs: 1e12,
    });
    const deadline = start + spanMs + CONNECT_SLACK_MS;
    let next = 0;
    let allowed = 0;
    let inFlight = 0;
    let ok = 0;
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const t = now();
        allowed += pacer.due(t).send;
        while (allowed > 0 && inFlight < MAX_IN_FLIGHT && next < c.count) {
          allowed--;
          inFlight++;
          const k = next++;
          this.#connectOne(k, CONNECT_TIMEOUT_MS)
            .then(
              (failure) => {
                if (failure === null) ok++;
                else {
                  this.#connectFailed++;
                  this.#firstError ??= failure;
                }
              },
              (e: unknown) => {
                this.#connectFailed++;
                this.#firstError ??= (e as Error).message;
              },
            )
            .finally(() => inFlight--);
        }
        if ((next === c.count && inFlight === 0) || t > deadline) {
          clearInterval(timer);
          done();
        }
      }, TICK_MS);
    });
    this.#phase = "held";
    this.#report();
    send({
      kind: "connected",
      report: {
        ok,
        failed: c.count - ok,
        firstError: this.#firstError ?? (ok < c.count ? "the connect phase ran out of time" : null),
        redirected: 0,
        perNode: { ...this.#perNode },
        localAddresses: [],
        wallMs: Math.round(now() - start),
      },
    });
  }

  /** Terminates every open socket at once; how many there were. */
  drop(): number {
    this.#phase = "dropped";
    let n = 0;
    for (let k = 0; k < this.#sockets.length; k++) {
      const ws = this.#sockets[k];
      if (ws === undefined) continue;
      this.#state[k] = 1;
      n++;
      ws.terminate();
    }
    return n;
  }

  /** Every dropped client reconnects; resolves with the report once all are back or time is up. */
  async resume(expected: number, spreadMs: number, deadlineMs: number): Promise<StormReport> {
    const c = this.#c;
    this.#expected = expected;
    this.#phase = "storm";
    this.#stormStart = now();
    const deadline = this.#stormStart + deadlineMs;
    const base = c.backoffBaseMs ?? 250;
    const cap = c.backoffCapMs ?? 5_000;
    // A generator's CPU runs the handshakes of all its clients: with every one in flight at once,
    // each gets a sliver, and all miss the gateway's hello deadline together and start over.
    const window = c.handshakesInFlight ?? 1_000;
    const todo: number[] = [];
    for (let k = 0; k < c.count; k++) if (this.#state[k] === 1) todo.push(k);
    let inFlight = 0;
    const waiting: (() => void)[] = [];
    const slot = async () => {
      while (inFlight >= window) await new Promise<void>((r) => waiting.push(r));
      inFlight++;
    };
    const release = () => {
      inFlight--;
      waiting.shift()?.();
    };
    const one = async (k: number) => {
      await new Promise((r) => setTimeout(r, Math.random() * spreadMs));
      for (let attempt = 0; now() < deadline; attempt++) {
        await slot();
        this.#attempts++;
        let failure: string | null;
        try {
          failure = await this.#connectOne(k, Math.max(1, Math.min(CONNECT_TIMEOUT_MS, deadline - now())));
        } catch (e) {
          failure = (e as Error).message;
        } finally {
          release();
        }
        if (failure === null) {
          this.#resumed++;
          this.#state[k] = 2;
          if (this.#tracker.received(k) >= expected) {
            this.#state[k] = 3;
            this.#caughtUp++;
            this.#toCaughtUp.record((now() - this.#stormStart) * 1000);
          }
          return;
        }
        this.#failed++;
        bump(this.#failures, failureReason(failure));
        this.#firstError ??= failure;
        const wait = backoffMs(attempt, base, cap, Math.random());
        await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - now()))));
      }
    };
    await Promise.all(todo.map(one));
    // Back: wait for the catch-up of every resumed client (bounded by the deadline).
    while (now() < deadline && this.#caughtUp < this.#resumed) await new Promise((r) => setTimeout(r, 50));
    const wallMs = Math.round(now() - this.#stormStart);
    const back = (k: number) => this.#state[k]! >= 2;
    const t = this.#tracker.totals(expected, back);
    this.#report();
    return {
      clients: c.count,
      dropped: todo.length,
      resumed: this.#resumed,
      recoveredTrue: this.#recoveredTrue,
      recoveredFalse: this.#recoveredFalse,
      attempts: this.#attempts,
      failures: { ...this.#failures },
      firstFailure: this.#firstError,
      toWelcomeUs: this.#toWelcomeTotal.toSparse(),
      toCaughtUpUs: this.#toCaughtUp.toSparse(),
      caughtUp: this.#caughtUp,
      expected: t.expected,
      received: t.received,
      lost: t.missing,
      duplicates: this.#tracker.duplicates,
      closesAfterResume: { ...this.#closesAfterResume },
      wallMs,
    };
  }

  async close(): Promise<{ ms: number; terminated: number }> {
    this.#phase = "closing";
    clearInterval(this.#progressTimer);
    return closeSockets(this.#sockets);
  }
}

let generator: StormGenerator | null = null;
workerMain(
  "loadtest/storm-worker.ts is started by `npm run loadtest -- storm`, not by hand",
  () => generator,
  (m, fatal) => {
    switch (m.kind) {
      case "start":
        generator = new StormGenerator(m.config);
        void generator.connectAll().catch(fatal);
        return;
      case "drop":
        send({ kind: "dropped", dropped: generator?.drop() ?? 0 });
        return;
      case "resume":
        void (
          generator?.resume(m.expected, m.spreadMs, m.deadlineMs) ?? Promise.reject(new Error("not started"))
        ).then((report) => send({ kind: "resumed", report }), fatal);
        return;
      case "offset":
      case "window":
      case "finish":
        return;
    }
  },
);
