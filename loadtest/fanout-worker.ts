/**
 * One generator process of a fanout run (started by fanout-generators.ts, never by hand): it
 * connects its share of the clients, each straight to the gateway that owns the user's partition
 * (redirects are followed as a fallback), joins their rooms (room), and records every event they
 * receive in a FanoutTracker. It reports once a second and answers the main process's requests
 * (fanout-ipc.ts). One process may open only `ulimit -n` files: that is why there are several.
 *
 * It exits when the main process says so, or as soon as the IPC channel closes (the main
 * process died): its sockets go with it.
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { LeanWebSocket } from "./lean-ws.ts";
import { mintDevToken } from "../gateway/auth.ts";
import { closeCodeByNumber } from "../schemas/close-codes.ts";
import { partitionForKey } from "../schemas/partition.ts";
import { closeSockets, connectUser } from "./connection.ts";
import type { ConnectReport, Progress, WorkerConfig } from "./fanout-ipc.ts";
import { sendToMain, workerMain } from "./fanout-ipc.ts";
import {
  BROADCAST_EVENT_TYPE,
  JOINED_TYPE,
  joinFrame,
  memberUser,
  parseFanoutMessage,
  PROBE_EVENT_TYPE,
  REJECTED_TYPE,
  ROOM_EVENT_TYPE,
  roomName,
  roomOf,
  roomsClaim,
} from "./fanout-protocol.ts";
import { FanoutTracker, latencyHistogram } from "./fanout-tracker.ts";
import type { Histogram } from "./histogram.ts";
import { checkTargetUrl, localAddressFor } from "./loopback.ts";
import { Pacer } from "./pacer.ts";
import { parseMessageId, pongFrame } from "./protocol.ts";

const TICK_MS = 10;
/** Connects in flight at once, whatever the rate: bounds sockets half-open and tokens pending. */
const MAX_IN_FLIGHT = 256;
const CONNECT_TIMEOUT_MS = 20_000;
/** After the last connect was started, how long the phase may go on. */
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

class Generator {
  readonly #c: WorkerConfig;
  readonly #tracker: FanoutTracker;
  readonly #sockets: (LeanWebSocket | undefined)[];
  readonly #nodeOf: string[];
  readonly #measuredType: string;
  readonly #loopDelay = monitorEventLoopDelay({ resolution: 10 });
  readonly #joinRefused: Record<string, number> = {};
  readonly #closes: Record<string, number> = {};
  readonly #errorFrames: Record<string, number> = {};
  readonly #probeNodes = new Set<string>();
  readonly #perNode: Record<string, number> = {};
  readonly #addresses = new Set<string>();
  /** Time to welcome of the connects that finished since the last report. */
  readonly #connectUs: Histogram;
  #welcomed = 0;
  #offsetMs = 0;
  #connected = 0;
  #failed = 0;
  #joined = 0;
  #redirected = 0;
  #firstError: string | null = null;
  #closing = false;
  #progressTimer: NodeJS.Timeout | undefined;

  constructor(config: WorkerConfig) {
    this.#c = config;
    const groups = new Uint32Array(config.count);
    for (let k = 0; k < config.count; k++) groups[k] = roomOf(config.first + k, config.groups);
    this.#tracker = new FanoutTracker({
      groupOfClient: groups,
      groups: config.groups,
      slots: config.slots,
      perSlot: config.perSlot,
      highestLatencyUs: config.highestLatencyUs,
    });
    this.#sockets = new Array<LeanWebSocket | undefined>(config.count);
    this.#nodeOf = new Array<string>(config.count).fill("");
    this.#measuredType = config.scenario === "room" ? ROOM_EVENT_TYPE : BROADCAST_EVENT_TYPE;
    this.#connectUs = latencyHistogram(config.highestLatencyUs);
    this.#loopDelay.enable();
    this.#progressTimer = setInterval(() => this.#report(), 1000);
  }

  set offsetMs(ms: number) {
    this.#offsetMs = ms;
  }

  setWindow(startMs: number, endMs: number): void {
    this.#tracker.setWindow(startMs, endMs);
  }

  #report(): void {
    const interval = this.#tracker.takeInterval();
    const d = this.#loopDelay;
    const progress: Progress = {
      connected: this.#connected,
      connectFailed: this.#failed,
      joined: this.#joined,
      joinRefused: { ...this.#joinRefused },
      closes: { ...this.#closes },
      errorFrames: { ...this.#errorFrames },
      probeNodes: [...this.#probeNodes],
      delivered: interval.delivered,
      duplicates: this.#tracker.duplicates,
      latencyUs: interval.latencyUs,
      eventLoopDelayP99Ms: d.count === 0 ? 0 : Math.round(d.percentile(99) / 1e4) / 100,
      rssBytes: process.memoryUsage.rss(),
      welcomed: this.#welcomed,
      connectUs: this.#connectUs.toSparse(),
    };
    d.reset();
    this.#welcomed = 0;
    this.#connectUs.reset();
    send({ kind: "progress", progress });
  }

  #attach(k: number, ws: LeanWebSocket): void {
    const c = this.#c;
    const room = `room:${roomName(c.runId, roomOf(c.first + k, c.groups))}`;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const m = parseFanoutMessage(data.toString());
      if (m.op === "event") {
        if (m.type === this.#measuredType) {
          const at = now() - this.#offsetMs;
          const id = parseMessageId(c.runId, m.id);
          if (id === null) this.#tracker.onReceive(-1, -1, -1, null, at);
          else this.#tracker.onReceive(k, id.pair, id.seq, m.sendTimeMs, at);
        } else if (m.type === PROBE_EVENT_TYPE) this.#probeNodes.add(this.#nodeOf[k]!);
        else if (m.type === JOINED_TYPE && m.to === room) this.#joined++;
        else if (m.type === REJECTED_TYPE) bump(this.#joinRefused, m.code ?? "unknown");
      } else if (m.op === "ack") {
        if (!m.ok) bump(this.#joinRefused, m.code ?? "unknown");
      } else if (m.op === "ping") ws.send(pongFrame(m.id));
      else if (m.op === "error") bump(this.#errorFrames, m.code);
    });
    ws.on("close", (code: number) => {
      if (this.#closing) return;
      bump(this.#closes, closeKey(code));
      this.#tracker.onClosed(k);
    });
  }

  async #connectOne(k: number): Promise<void> {
    const c = this.#c;
    const i = c.first + k;
    const user = memberUser(c.runId, i);
    const token = await mintDevToken(c.secret, user, {
      ttlS: c.tokenTtlS,
      ...(c.join ? { claims: { rt_rooms: roomsClaim(c.runId) } } : {}),
    });
    const owners = Object.values(c.owners);
    const url = c.owners[String(partitionForKey(user, c.partitions))] ?? owners[i % owners.length]!;
    const localAddress = localAddressFor(i, c.localAddresses, new URL(url).hostname);
    if (localAddress !== undefined) this.#addresses.add(localAddress);
    const startedMs = now();
    const r = await connectUser({
      url,
      token,
      localAddress,
      timeoutMs: CONNECT_TIMEOUT_MS,
      maxRedirects: 3,
      checkRedirect: (to) => {
        const check = checkTargetUrl(to, c.allowRemote);
        return check.ok ? null : check.message;
      },
    });
    if (!r.ok) {
      this.#failed++;
      this.#firstError ??= r.message;
      this.#tracker.onClosed(k);
      return;
    }
    this.#connected++;
    this.#welcomed++;
    this.#connectUs.record((now() - startedMs) * 1000);
    if (r.redirects > 0) this.#redirected++;
    bump(this.#perNode, r.node);
    this.#nodeOf[k] = r.node;
    this.#sockets[k] = r.ws;
    this.#attach(k, r.ws);
    if (c.join) r.ws.send(joinFrame(`j${i}`, roomName(c.runId, roomOf(i, c.groups))));
  }

  /** Starts connects at the rate (open loop, at most MAX_IN_FLIGHT at once) until all are done. */
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
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const t = now();
        allowed += pacer.due(t).send;
        while (allowed > 0 && inFlight < MAX_IN_FLIGHT && next < c.count) {
          allowed--;
          inFlight++;
          const k = next++;
          this.#connectOne(k)
            .catch((e: unknown) => {
              this.#failed++;
              this.#firstError ??= (e as Error).message;
              this.#tracker.onClosed(k);
            })
            .finally(() => inFlight--);
        }
        if ((next === c.count && inFlight === 0) || t > deadline) {
          clearInterval(timer);
          done();
        }
      }, TICK_MS);
    });
    const report: ConnectReport = {
      ok: this.#connected,
      failed: c.count - this.#connected,
      firstError:
        this.#firstError ?? (this.#connected < c.count ? "the connect phase ran out of time" : null),
      redirected: this.#redirected,
      perNode: { ...this.#perNode },
      localAddresses: [...this.#addresses].sort((a, b) => a.localeCompare(b, "en", { numeric: true })),
      wallMs: Math.round(now() - start),
    };
    this.#report();
    send({ kind: "connected", report });
  }

  finish(expected: Parameters<FanoutTracker["totals"]>[0]): void {
    this.#report();
    send({ kind: "totals", totals: this.#tracker.totals(expected) });
  }

  /** Closes every socket politely, terminates what is still open after CLOSE_WAIT_MS. */
  async close(): Promise<{ ms: number; terminated: number }> {
    this.#closing = true;
    clearInterval(this.#progressTimer);
    return closeSockets(this.#sockets);
  }
}

let generator: Generator | null = null;
workerMain(
  "loadtest/fanout-worker.ts is started by `npm run loadtest -- room|broadcast`, not by hand",
  () => generator,
  (m, fatal) => {
    switch (m.kind) {
      case "start":
        generator = new Generator(m.config);
        void generator.connectAll().catch(fatal);
        return;
      case "offset":
        if (generator !== null) generator.offsetMs = m.offsetMs;
        return;
      case "window":
        generator?.setWindow(m.startMs, m.endMs);
        send({ kind: "window-set" });
        return;
      case "finish":
        generator?.finish(m.expected);
        return;
      case "drop":
      case "resume":
        return;
    }
  },
);
