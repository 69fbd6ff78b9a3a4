/**
 * The `room` scenario: `members` clients in `rooms` rooms, messages into the rooms at the offered
 * rate, and a check that every member gets every message of its room exactly once.
 *
 * Setup (fanout-run.ts) connects the members from the generator processes; each joins its room
 * right after its welcome. With `via: member` this process also connects one sender per room,
 * a member like the others (it gets its own messages, and they are checked too); with
 * `via: publish` it posts each message to the router's publish API as a backend would.
 * Once every member has its `rt.joined` event, sending starts: open loop on a fixed schedule
 * (pacer.ts), round-robin over the rooms, for warmup + duration; then a grace period until every
 * expected delivery has arrived. Each message's data carries its send time in this process's
 * clock; the generators convert arrivals into it (fanout-ipc.ts), so latency is send to receipt.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { LeanWebSocket } from "./lean-ws.ts";
import { mintDevToken } from "../gateway/auth.ts";
import { closeCodeByNumber } from "../schemas/close-codes.ts";
import { partitionForKey } from "../schemas/partition.ts";
import { connectUser } from "./connection.ts";
import type { RoomOptions } from "./fanout-args.ts";
import {
  buildRoomResult,
  seriesLatency,
  type FanoutSeriesPoint,
  type RoomResult,
  type RouterFanout,
} from "./fanout-report.ts";
import {
  commonResultFields,
  FanoutSetupError,
  now,
  runFanout,
  setupDeadlineS,
  type FanoutContext,
} from "./fanout-run.ts";
import {
  JOINED_TYPE,
  joinFrame,
  membersInRoom,
  parseFanoutMessage,
  publishBody,
  REJECTED_TYPE,
  ROOM_EVENT_TYPE,
  roomName,
  roomsClaim,
  roomSendFrame,
  roomSenderUser,
} from "./fanout-protocol.ts";
import { FanoutTracker, latencyHistogram, mergeTotals, type Expected } from "./fanout-tracker.ts";
import { Histogram } from "./histogram.ts";
import { checkTargetUrl, localAddressFor } from "./loopback.ts";
import { Pacer, RoundRobin } from "./pacer.ts";
import { messageId, parseMessageId, pongFrame } from "./protocol.ts";
import { createPublishClient, type PublishClient } from "./publish-client.ts";

const TICK_MS = 10;
const MAX_BACKLOG_MS = 1000;
const SENDER_BUFFER_CAP_BYTES = 4 * 1024 * 1024;
/** Publish requests in flight at once (`via: publish`); past it a send is skipped, not queued. */
const MAX_PUBLISH_IN_FLIGHT = 2000;
const PUBLISH_SOCKETS = 64;
const PUBLISH_TIMEOUT_MS = 10_000;
const TOTALS_TIMEOUT_MS = 60_000;
const SLACK_S = 30;

const PENDING = 0;
const OK = 1;
const FAILED = 2;

/** The longest wait for every member's `rt.joined`, in ms. */
function joinMaxMs(o: RoomOptions): number {
  return 60_000 + o.members * 2;
}

/** The run's hard deadline: every phase's bound plus slack. */
export function roomDeadlineS(o: RoomOptions): number {
  return Math.ceil(setupDeadlineS(o) + joinMaxMs(o) / 1000 + o.warmupS + o.durationS + o.graceS + SLACK_S);
}

function closeKey(code: number): string {
  const info = closeCodeByNumber(code);
  return info === undefined ? String(code) : `${code} ${info.name}`;
}

function bump(r: Record<string, number>, key: string, n = 1): void {
  r[key] = (r[key] ?? 0) + n;
}

function fanoutOf(body: unknown): RouterFanout | null {
  const f = (body as { fanout?: RouterFanout | null } | null)?.fanout;
  return f === undefined || f === null ? null : f;
}

/** The room senders of `via: member`: sockets in this process, members of their rooms. */
class Senders {
  readonly sockets: LeanWebSocket[] = [];
  readonly closed: Uint8Array;
  readonly joinRefused: Record<string, number> = {};
  readonly closes: Record<string, number> = {};
  joined = 0;
  closing = false;

  constructor(
    readonly rooms: number,
    readonly tracker: FanoutTracker,
    private readonly onAck: (room: number, seq: number, ok: boolean, code: string | null) => void,
  ) {
    this.closed = new Uint8Array(rooms);
  }

  async connect(ctx: FanoutContext, o: RoomOptions): Promise<void> {
    for (let r = 0; r < this.rooms; r++) {
      const user = roomSenderUser(ctx.runId, r);
      const url = ctx.owners.get(partitionForKey(user, o.partitions))!;
      const res = await connectUser({
        url,
        token: await mintDevToken(ctx.secret, user, {
          ttlS: ctx.tokenTtlS,
          claims: { rt_rooms: roomsClaim(ctx.runId) },
        }),
        localAddress: localAddressFor(r, o.localAddresses, new URL(url).hostname),
        timeoutMs: 20_000,
        maxRedirects: 3,
        checkRedirect: (to) => {
          const c = checkTargetUrl(to, o.allowRemote);
          return c.ok ? null : c.message;
        },
      });
      if (!res.ok) throw new FanoutSetupError(`the sender of room ${r} could not connect: ${res.message}`);
      this.sockets.push(res.ws);
      this.#attach(ctx, r, res.ws);
      res.ws.send(joinFrame(`sj${r}`, roomName(ctx.runId, r)));
    }
  }

  #attach(ctx: FanoutContext, r: number, ws: LeanWebSocket): void {
    const room = `room:${roomName(ctx.runId, r)}`;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const m = parseFanoutMessage(data.toString());
      if (m.op === "ack") {
        const id = parseMessageId(ctx.runId, m.id);
        if (id !== null) this.onAck(id.pair, id.seq, m.ok, m.code);
        else if (!m.ok) bump(this.joinRefused, m.code ?? "unknown");
      } else if (m.op === "event") {
        if (m.type === ROOM_EVENT_TYPE) {
          const id = parseMessageId(ctx.runId, m.id);
          if (id === null) this.tracker.onReceive(-1, -1, -1, null, now());
          else this.tracker.onReceive(r, id.pair, id.seq, m.sendTimeMs, now());
        } else if (m.type === JOINED_TYPE && m.to === room) this.joined++;
        else if (m.type === REJECTED_TYPE) bump(this.joinRefused, m.code ?? "unknown");
      } else if (m.op === "ping") ws.send(pongFrame(m.id));
    });
    ws.on("close", (code: number) => {
      if (this.closing) return;
      this.closed[r] = 1;
      bump(this.closes, closeKey(code));
      this.tracker.onClosed(r);
    });
  }

  close(): void {
    this.closing = true;
    for (const ws of this.sockets) ws.terminate();
  }
}

export async function runRoom(
  o: RoomOptions,
  commandLine: readonly string[],
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string | null,
): Promise<RoomResult> {
  const startedAt = new Date().toISOString();
  const scheduleMs = (o.warmupS + o.durationS) * 1000;
  const total = new Pacer({ ratePerS: o.ratePerS, startMs: 0, endMs: scheduleMs, maxBacklogMs: 0 }).total;
  const slots = Math.ceil(total / o.rooms) + 1;
  const highestLatencyUs = (roomDeadlineS(o) + 60) * 1e6;
  return runFanout(
    o,
    signal,
    log,
    logFile,
    highestLatencyUs,
    () => ({ groups: o.rooms, slots, perSlot: false, join: true }),
    (ctx) => roomTraffic(ctx, o, { startedAt, commandLine, slots, highestLatencyUs }),
  );
}

async function roomTraffic(
  ctx: FanoutContext,
  o: RoomOptions,
  run: { startedAt: string; commandLine: readonly string[]; slots: number; highestLatencyUs: number },
): Promise<RoomResult> {
  const { runId, generators: g, log, signal } = ctx;
  const { slots } = run;
  const status = Array.from({ length: o.rooms }, () => new Uint8Array(slots));
  const sentAt = Array.from({ length: o.rooms }, () => new Float64Array(slots));
  const nextSeq = new Uint32Array(o.rooms);
  const okPerRoom = new Float64Array(o.rooms);
  const failed: Record<string, number> = {};
  const ack = latencyHistogram(run.highestLatencyUs);
  let accepted = 0;
  let answered = 0;
  let sent = 0;
  let measure = { start: Infinity, end: Infinity };
  let sentInWindow = 0;
  let acceptedInWindow = 0;
  let interval = { sent: 0, accepted: 0 };
  const onAck = (room: number, seq: number, ok: boolean, code: string | null) => {
    if (room < 0 || room >= o.rooms || seq < 0 || seq >= nextSeq[room]! || status[room]![seq] !== PENDING)
      return;
    const at = now();
    status[room]![seq] = ok ? OK : FAILED;
    answered++;
    const sentTime = sentAt[room]![seq]!;
    if (sentTime >= measure.start && sentTime < measure.end) ack.record((at - sentTime) * 1000);
    if (ok) {
      accepted++;
      interval.accepted++;
      okPerRoom[room]!++;
      if (at >= measure.start && at < measure.end) acceptedInWindow++;
    } else bump(failed, code ?? "unknown");
  };

  // The senders are members too: their own copies are tracked here, as the generators track theirs.
  const senderTracker = new FanoutTracker({
    groupOfClient: Array.from({ length: o.via === "member" ? o.rooms : 0 }, (_, r) => r),
    groups: o.rooms,
    slots,
    perSlot: false,
    highestLatencyUs: run.highestLatencyUs,
  });
  const senders = o.via === "member" ? new Senders(o.rooms, senderTracker, onAck) : null;
  let publisher: PublishClient | null = null;
  try {
    if (senders !== null) await senders.connect(ctx, o);
    else
      publisher = await createPublishClient(
        ctx.backbone.routerUrl,
        ctx.secret,
        ctx.tokenTtlS,
        PUBLISH_SOCKETS,
        PUBLISH_TIMEOUT_MS,
      );

    // ---- every member joined ----
    const joinStart = now();
    const members = ctx.connect.connected;
    for (let second = 1; ; second++) {
      const a = g.aggregate();
      const refused = { ...a.joinRefused };
      for (const [k, v] of Object.entries(senders?.joinRefused ?? {})) bump(refused, k, v);
      const joined = a.joined + (senders?.joined ?? 0);
      const want = members + (senders === null ? 0 : o.rooms);
      if (Object.keys(refused).length > 0) {
        throw new FanoutSetupError(`joins were refused: ${JSON.stringify(refused)}`);
      }
      if (joined >= want) break;
      if (now() - joinStart > joinMaxMs(o)) {
        throw new FanoutSetupError(
          `only ${joined} of ${want} members saw their rt.joined within ${joinMaxMs(o) / 1000} s`,
        );
      }
      if (signal.aborted) throw new FanoutSetupError("interrupted while joining");
      await sleep(1000);
      log(`[${String(second).padStart(4)}s join]  joined ${joined}/${want}`);
    }
    const join = {
      ms: Math.round(now() - joinStart),
      joined: members + (senders === null ? 0 : o.rooms),
      refused: {},
    };
    log(`every member joined in ${join.ms} ms`);

    // ---- traffic ----
    const t0 = now() + 200;
    measure = { start: t0 + o.warmupS * 1000, end: t0 + (o.warmupS + o.durationS) * 1000 };
    await g.setWindow(measure.start, measure.end);
    senderTracker.setWindow(measure.start, measure.end);
    const pacer = new Pacer({
      ratePerS: o.ratePerS,
      startMs: t0,
      endMs: measure.end,
      maxBacklogMs: MAX_BACKLOG_MS,
    });
    const rr = new RoundRobin(o.rooms);
    const recipients = Array.from(
      { length: o.rooms },
      (_, r) => membersInRoom(r, o.members, o.rooms) + (senders === null ? 0 : 1),
    );
    let skippedBackpressure = 0;
    let skippedClosed = 0;
    let publishInFlight = 0;
    const tickLateness = new Histogram({ highestTrackableValue: 600_000_000, significantDigits: 2 });
    const series: FanoutSeriesPoint[] = [];
    const routerAt: { measure_start: RouterFanout | null; measure_end: RouterFanout | null } = {
      measure_start: null,
      measure_end: null,
    };
    const routerReads: Promise<void>[] = [];
    let cpuStart: ReturnType<FanoutContext["sampleCpu"]> | null = null;
    let cpuEnd: ReturnType<FanoutContext["sampleCpu"]> | null = null;
    let aborted: string | null = null;
    let graceEnd = measure.end + o.graceS * 1000;

    const sendOne = (t: number) => {
      const r = rr.next();
      const seq = nextSeq[r]!;
      if (seq >= slots) throw new Error(`room ${r} sent more than the schedule allows`);
      if (senders !== null) {
        const ws = senders.sockets[r]!;
        if (senders.closed[r] === 1) return void skippedClosed++;
        if (ws.bufferedAmount > SENDER_BUFFER_CAP_BYTES) return void skippedBackpressure++;
        const at = now();
        nextSeq[r] = seq + 1;
        sentAt[r]![seq] = at;
        ws.send(roomSendFrame(runId, r, seq, at, o.payloadBytes));
      } else {
        if (publishInFlight >= MAX_PUBLISH_IN_FLIGHT) return void skippedBackpressure++;
        const at = now();
        nextSeq[r] = seq + 1;
        sentAt[r]![seq] = at;
        publishInFlight++;
        const body = publishBody(
          messageId(runId, r, seq),
          `room:${roomName(runId, r)}`,
          ROOM_EVENT_TYPE,
          seq,
          at,
          o.payloadBytes,
        );
        void publisher!.publish(body).then((answer) => {
          publishInFlight--;
          onAck(r, seq, answer.ok, answer.ok ? null : answer.code);
        });
      }
      sent++;
      interval.sent++;
      if (t >= measure.start && t < measure.end) sentInWindow++;
    };

    const expectedSoFar = () => {
      let n = 0;
      for (let r = 0; r < o.rooms; r++) n += okPerRoom[r]! * recipients[r]!;
      return n;
    };
    let second = 0;
    const phaseOf = (n: number) => {
      const start = t0 + n * 1000;
      return start < measure.start ? "warmup" : start < measure.end ? "measure" : "grace";
    };
    const emitSecond = () => {
      const gi = g.takeInterval();
      const local = senderTracker.takeInterval();
      const h = latencyHistogram(run.highestLatencyUs);
      h.addSparse(gi.latencyUs);
      h.addSparse(local.latencyUs);
      const summary = h.summary();
      const cores = ctx.coresSinceLast();
      const delivered = gi.delivered + local.delivered;
      const point: FanoutSeriesPoint = {
        second,
        phase: phaseOf(second),
        sent: interval.sent,
        accepted: interval.accepted,
        delivered,
        latency_ms: seriesLatency(summary),
        cores,
      };
      series.push(point);
      interval = { sent: 0, accepted: 0 };
      const pending = Math.max(0, expectedSoFar() - g.delivered - senderTracker.delivered);
      const hot = Object.entries(cores)
        .filter(([, c]) => c !== null)
        .sort((a, b) => b[1]! - a[1]!)
        .slice(0, 4)
        .map(([n, c]) => `${n} ${c!.toFixed(2)}`)
        .join(" ");
      const a = g.aggregate();
      log(
        `[${String(second).padStart(4)}s ${point.phase.padEnd(7)}]  sent/s ${point.sent}  delivered/s ${delivered}  ` +
          `p50 ${point.latency_ms.p50.toFixed(1)} p99 ${point.latency_ms.p99.toFixed(1)} ms  pending ${pending}  ` +
          `dup ${a.duplicates}  closed ${Object.values(a.closes).reduce((x, y) => x + y, 0)}  cores: ${hot}`,
      );
      second++;
    };

    log(
      `sending ${o.ratePerS} msgs/s into ${o.rooms} room(s) via ${o.via}: ${o.warmupS}s warmup, ${o.durationS}s measured, ` +
        `up to ${o.graceS}s grace`,
    );
    await new Promise<void>((done, fail) => {
      let lastTick = now();
      const timer = setInterval(() => {
        try {
          const t = now();
          tickLateness.record(Math.max(0, t - lastTick - TICK_MS) * 1000);
          lastTick = t;
          if (cpuStart === null && t >= measure.start) {
            cpuStart = ctx.sampleCpu();
            routerReads.push(
              ctx.backbone.routerStats().then((b) => void (routerAt.measure_start = fanoutOf(b))),
            );
          }
          if (signal.aborted && aborted === null) {
            aborted = "interrupted (SIGINT)";
            graceEnd = Math.min(graceEnd, t + o.graceS * 1000);
          }
          const why = g.failure();
          if (why !== null) throw new FanoutSetupError(why);
          const stop = t >= measure.end || aborted !== null;
          if (!stop) {
            const due = pacer.due(t);
            for (let k = 0; k < due.send; k++) sendOne(t);
          } else if (cpuEnd === null) {
            // What the schedule still owes up to its end (not counted as sent in the window).
            if (aborted === null) for (let k = pacer.due(t).send; k > 0; k--) sendOne(t);
            cpuEnd = ctx.sampleCpu();
            routerReads.push(
              ctx.backbone.routerStats().then((b) => void (routerAt.measure_end = fanoutOf(b))),
            );
          }
          for (let i = 0; i < 100 && t >= t0 + (second + 1) * 1000; i++) emitSecond();
          if (stop) {
            const pendingAnswers = sent - answered;
            const pendingDeliveries = expectedSoFar() - g.delivered - senderTracker.delivered;
            if ((pendingAnswers === 0 && pendingDeliveries <= 0) || t >= graceEnd) {
              clearInterval(timer);
              done();
            }
          }
        } catch (e) {
          clearInterval(timer);
          fail(e);
        }
      }, TICK_MS);
    });
    await Promise.all(routerReads);
    // The generators report once a second: one more report, so the last deliveries are in the series.
    await sleep(1100);
    emitSecond();

    // ---- totals ----
    const expected: Expected = {
      sent: [...nextSeq],
      refused: status.map((s, r) => {
        const out: number[] = [];
        for (let seq = 0; seq < nextSeq[r]!; seq++) if (s[seq] !== OK) out.push(seq);
        return out;
      }),
    };
    const parts = await g.totals(expected, TOTALS_TIMEOUT_MS);
    const totals = mergeTotals([...parts, senderTracker.totals(expected)], run.highestLatencyUs);
    const cpu = ctx.cpuWindow(cpuStart ?? ctx.sampleCpu(), cpuEnd ?? ctx.sampleCpu());
    const measuredS =
      aborted === null ? o.durationS : Math.max(0.001, Math.min(o.durationS, (now() - measure.start) / 1000));
    const agg = g.aggregate();
    const serviceLogs = ctx.serviceLogs();
    senders?.close();
    publisher?.close();
    log("stopping generators and services");
    const teardown = await ctx.tearDown();
    let expectedDeliveries = 0;
    for (let r = 0; r < o.rooms; r++) expectedDeliveries += okPerRoom[r]! * recipients[r]!;
    return buildRoomResult({
      ...commonResultFields(ctx, run, aborted, { tickLateness, ...agg }),
      totals,
      cpu,
      series,
      serviceLogs,
      teardown,
      options: o,
      join,
      sends: {
        sent,
        accepted,
        failed,
        no_answer: sent - answered,
        skipped_behind_schedule: pacer.skipped,
        skipped_backpressure: skippedBackpressure,
        skipped_closed_sender: skippedClosed,
      },
      expectedDeliveries,
      measuredS,
      sentInWindow,
      acceptedInWindow,
      ackUs: ack.summary(),
      router: routerAt,
    });
  } finally {
    senders?.close();
    publisher?.close();
  }
}
