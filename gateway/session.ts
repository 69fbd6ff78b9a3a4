/**
 * One client connection's protocol: hello → (redirect | welcome) → send/auth/ping, with the
 * hello deadline, token expiry, rate limit and frame checks. Talks to its socket only through
 * the small `Socket` interface, so it knows nothing of uWS.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../common/log.ts";
import { closeCodeByName, formatCloseReason, type CloseName } from "../schemas/close-codes.ts";
import { allows, NO_GRANTS, readGrants, type Grants } from "../common/grants.ts";
import { encodeDelivery } from "../schemas/codec.ts";
import { SYSTEM_TYPE_PREFIX } from "../schemas/records.ts";
import { channelRecord, roomRecord, type PartitionCounts, type PublishRecord } from "../schemas/publish.ts";
import type { ErrorCode, WireError } from "../schemas/errors.ts";
import {
  decodeClientFrame,
  encodeServerFrame,
  type ClientFrame,
  type DecodeFrameResult,
  type FrameLimits,
  type JoinFrame,
  type LeaveFrame,
  type SendFrame,
  type ServerFrame,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from "../schemas/frames.ts";
import {
  AVRO_SUBPROTOCOL,
  decodeClientFrameAvro,
  encodeServerFrameAvro,
  readAvroFrameId,
} from "../schemas/frame-codec.ts";
import { partitionForKey } from "../schemas/partition.ts";
import { BROADCAST_CHANNEL, isMessageId, parseTarget, type Target } from "../schemas/targets.ts";
import { parseCursor } from "../schemas/cursor.ts";
import type { Verifier } from "./auth.ts";
import type { CatchUp } from "./catchup.ts";
import { deliverFromWindow, type DecodedEvent } from "./delivery.ts";
import type { EventMessage, FrameEncoding } from "./event-message.ts";
import type { LogBounds } from "./log-bounds.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { planResume } from "./resume.ts";
import type { GatewayConfig } from "./config.ts";
import type { Ownership } from "./ownership.ts";
import { Deadlines } from "./deadlines.ts";
import { createTokenBucket, type TokenBucket } from "./rate-limit.ts";
import type { Registry } from "./registry.ts";
import type { ResumeWindow } from "./resume-window.ts";
import type { Revocations } from "./revocations.ts";
import type { RoomRates } from "./room-rates.ts";
import type { SendBatcher } from "./send-batcher.ts";
import type { UserRates } from "./user-rates.ts";
import { inContext, type GatewayTracing, type SendTrace } from "./tracing.ts";

/**
 * The transport under a session. `send` reports false when the socket is gone; a string goes as
 * a text message, bytes as a binary one.
 */
export interface Socket {
  /** The subprotocol's frame encoding, chosen at the upgrade. */
  readonly encoding: FrameEncoding;
  send(message: string | Uint8Array): boolean;
  close(code: number, reason: string): void;
  /** Adds the socket to a publish topic of the server (see channelTopic). */
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
}

/**
 * The server's publish topic of a live channel for the sockets of one encoding; `*` (broadcast)
 * is every live session's.
 */
export function channelTopic(channel: string, encoding: FrameEncoding): string {
  return `${encoding === "avro" ? "b" : "c"}:${channel}`;
}

export interface SessionDeps {
  readonly config: GatewayConfig;
  readonly verifier: Verifier;
  readonly ownership: Ownership;
  readonly registry: Registry<Session>;
  readonly batcher: SendBatcher;
  readonly partitionCount: number;
  /** Partitions of every topic, as read from Kafka at start. */
  readonly partitionCounts: PartitionCounts;
  readonly revocations: Revocations;
  readonly roomRates: RoomRates;
  /** Writes per user across the user's sessions on this gateway. */
  readonly userRates: UserRates;
  readonly epoch: string;
  readonly log: Logger;
  readonly draining: () => boolean;
  readonly logBounds: LogBounds;
  readonly catchUp: CatchUp;
  /** Recent records of the owned partitions: a recent cursor resumes from memory. */
  readonly window: ResumeWindow<DecodedEvent>;
  readonly metrics: GatewayMetrics;
  readonly tracing: GatewayTracing;
}

/** A user authenticated on the upgrade request (Authorization: Bearer). */
export interface PreAuth {
  readonly user: string;
  readonly expiresAtMs: number;
  readonly claims: Readonly<Record<string, unknown>>;
  /** From the upgrade's X-RT-Cursor header, already validated. */
  readonly cursor: string | undefined;
}

type State = "hello" | "authenticating" | "live" | "closed";

/**
 * Every live session's token expiry, on one shared timer (deadlines.ts) rather than a Node timer
 * each: an idle connection's memory counts. Sessions close up to a second after their token expires.
 */
const expiries = new Deadlines<Session>((session) => session.expire());
const frameLimitsOf = new WeakMap<object, FrameLimits>();

export class Session {
  readonly id = randomBytes(6).toString("base64url");
  #state: State = "hello";
  #user: string | null = null;
  #grants: Grants = NO_GRANTS;
  /** The token's `iat` in ms (0 without one): a revocation after it ends the session. */
  #issuedAtMs = 0;
  /** Live channels this session subscribed to (broadcast excluded); null until the first. */
  #channels: Set<string> | null = null;
  #partition = -1;
  /** Offset of the last event this session has (or needs nothing at or below). */
  #lastOffset = -1n;
  /** The catch-up seek this session waits for before it takes records (0: none). */
  #waitSeek = 0;
  #resumeTimer: NodeJS.Timeout | null = null;
  #helloTimer: NodeJS.Timeout | null;
  /** The token's expiry, and its key in `expiries` (0: none armed). */
  #expiresAtMs = 0;
  #expiryKey = 0;
  // The buckets are made on first use (an idle connection never sends): see the getters below.
  #sendsBucket: TokenBucket | null = null;
  /**
   * Rejected sends draw from a second bucket of the same size and rate: a client a little
   * over its rate is only partly refused, one that floods (rejections outpace the refill)
   * empties it and is closed. So do control frames past their rate and requests refused as
   * malformed or forbidden, so no kind of frame can be answered without bound.
   */
  #abuseBucket: TokenBucket | null = null;
  /** ping, pong, auth, subscribe, unsubscribe: answered without a Kafka write, limited apart. */
  #controlBucket: TokenBucket | null = null;
  /** The session's child logger, made on first use: most sessions never log. */
  #logger: Logger | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly deps: SessionDeps,
    private readonly preAuth: PreAuth | null,
  ) {
    this.#helloTimer = setTimeout(() => this.close("hello_timeout"), deps.config.helloTimeoutMs);
  }

  get #bucket(): TokenBucket {
    const { limits } = this.deps.config;
    return (this.#sendsBucket ??= createTokenBucket({
      ratePerSec: limits.sendsPerSecond,
      burst: limits.sendsBurst,
    }));
  }

  get #abuse(): TokenBucket {
    const { limits } = this.deps.config;
    return (this.#abuseBucket ??= createTokenBucket({
      ratePerSec: limits.sendsPerSecond,
      burst: limits.sendsBurst,
    }));
  }

  get #control(): TokenBucket {
    const { limits } = this.deps.config;
    return (this.#controlBucket ??= createTokenBucket({
      ratePerSec: limits.controlFramesPerSecond,
      burst: 2 * limits.controlFramesPerSecond,
    }));
  }

  /** The decoder's limits: one object per gateway config, shared by its sessions. */
  get #frameLimits(): FrameLimits {
    const { limits } = this.deps.config;
    let f = frameLimitsOf.get(limits);
    if (f === undefined) {
      f = {
        maxFrameChars: limits.maxFrameBytes,
        maxDepth: limits.maxDataDepth,
        maxTokenChars: limits.maxTokenChars,
      };
      frameLimitsOf.set(limits, f);
    }
    return f;
  }

  get #log(): Logger {
    return (this.#logger ??= this.deps.log.child({ conn: this.id }));
  }

  /** Called once the socket is open: an upgrade already authenticated goes live at once. */
  start(): void {
    if (this.preAuth === null) return;
    this.#state = "authenticating";
    void this.#admit(this.preAuth, this.preAuth.cursor);
  }

  get user(): string | null {
    return this.#user;
  }

  get partition(): number {
    return this.#partition;
  }

  get issuedAtMs(): number {
    return this.#issuedAtMs;
  }

  get live(): boolean {
    return this.#state === "live";
  }

  /**
   * Whether the record at `offset` of this session's partition is new to it; if so the
   * session now has it. `appliedSeek` is the partition's last catch-up seek that took effect.
   */
  accept(offset: bigint, appliedSeek: number): boolean {
    if (this.#state !== "live" || appliedSeek < this.#waitSeek || offset <= this.#lastOffset) return false;
    if (this.#resumeTimer !== null) {
      clearTimeout(this.#resumeTimer);
      this.#resumeTimer = null;
    }
    this.#lastOffset = offset;
    return true;
  }

  /** Writes a server frame in the socket's encoding; false when the session is closed. */
  write(frame: ServerFrame): boolean {
    this.deps.metrics.framesOut.add(frame.op);
    if (this.#state === "closed") return false;
    return this.socket.send(
      this.socket.encoding === "avro" ? encodeServerFrameAvro(frame) : encodeServerFrame(frame),
    );
  }

  /** Writes an event frame built once for all its recipients; false when closed. */
  writeEvent(event: EventMessage): boolean {
    if (this.#state === "closed") return false;
    return this.socket.send(event.in(this.socket.encoding));
  }

  /** Closes with a code of the close-code table (the socket's close handler calls `closed`). */
  close(name: CloseName, retryAfterMs?: number): void {
    if (this.#state === "closed") return;
    this.deps.metrics.closes.add(name);
    this.socket.close(closeCodeByName(name).code, formatCloseReason(name, retryAfterMs));
    this.closed();
  }

  /** The socket is gone, whoever closed it: release everything. Safe to call twice. */
  closed(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    if (this.#expiryKey !== 0) expiries.remove(this, this.#expiryKey);
    if (this.#resumeTimer !== null) clearTimeout(this.#resumeTimer);
    if (this.#user !== null) {
      this.deps.registry.remove(this.#user, this);
      if (this.deps.registry.sockets(this.#user) === undefined) this.deps.userRates.forget(this.#user);
    }
  }

  /** A method, not a field read, so the check is not narrowed away across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #fail(code: ErrorCode, message: string, close: CloseName): void {
    this.#log.info({ code, close, user: this.#user ?? undefined }, "session refused");
    this.write({ op: "error", code, message });
    this.close(close);
  }

  /**
   * One binary message: a frame on rt.v1.avro, a protocol violation on JSON. The bytes are only
   * valid during the call.
   */
  onBinary(bytes: Uint8Array): void {
    if (this.#state === "closed") return;
    if (this.socket.encoding !== "avro") {
      this.deps.metrics.framesIn.add("binary");
      this.#fail(
        "bad_frame",
        `binary messages are not part of the JSON protocol (rt.v1.json); offer ${AVRO_SUBPROTOCOL} for binary frames`,
        "bad_frame",
      );
      return;
    }
    if (this.#tooBig(bytes.length)) return;
    const decoded = decodeClientFrameAvro(bytes, this.#frameLimits);
    this.#onDecoded(decoded, () => readAvroFrameId(bytes));
  }

  /** One text message. `byteLength` is checked before decoding. */
  onText(text: string, byteLength: number): void {
    if (this.#state === "closed") return;
    if (this.socket.encoding === "avro") {
      this.deps.metrics.framesIn.add("text");
      this.#fail(
        "bad_frame",
        `text messages are not part of ${AVRO_SUBPROTOCOL}: send each frame as a binary Avro message`,
        "bad_frame",
      );
      return;
    }
    if (this.#tooBig(byteLength)) return;
    this.#onDecoded(decodeClientFrame(text, this.#frameLimits), () => readId(text));
  }

  /** Closes with too_big (true) when a message is over the frame limit. */
  #tooBig(byteLength: number): boolean {
    const max = this.deps.config.limits.maxFrameBytes;
    if (byteLength <= max) return false;
    this.#fail("too_big", `frame of ${byteLength} bytes is over the limit of ${max}`, "too_big");
    return true;
  }

  /** A decoded message of either encoding; `readId` finds the id of one that did not decode. */
  #onDecoded(decoded: DecodeFrameResult, readId: () => string | null): void {
    if (!decoded.ok) {
      this.deps.metrics.framesIn.add("invalid");
      this.#onBadFrame(readId, decoded.error);
      return;
    }
    const frame = decoded.frame;
    this.deps.metrics.framesIn.add(frame.op);
    if (this.#state !== "live") {
      if (frame.op === "hello" && this.#state === "hello") void this.#onHello(frame.token, frame.cursor);
      else if (frame.op === "hello")
        this.#fail("already_authenticated", "hello was already sent", "bad_frame");
      else
        this.#fail(
          "not_authenticated",
          `${frame.op} before welcome: send hello first and wait for welcome`,
          "bad_frame",
        );
      return;
    }
    this.#onLiveFrame(frame);
  }

  /**
   * A frame that did not decode. Inside a live session, a request with a readable id whose
   * only problem is its target, payload size or token length gets a failed ack (the user typed a
   * bad recipient; the connection is fine). Everything else is a protocol violation: error,
   * close; a token over the length cap (unauthorized) closes with 4001, so it is not retried.
   */
  #onBadFrame(readId: () => string | null, error: WireError): void {
    const { code } = error;
    if (
      this.#state === "live" &&
      (code === "bad_target" || code === "too_big" || code === "bad_cursor" || code === "unauthorized")
    ) {
      const id = readId();
      if (id !== null) {
        if (!this.#chargeRefusal()) return;
        this.write({ op: "ack", id, ok: false, error });
        return;
      }
    }
    this.#fail(
      code,
      error.message,
      code === "too_big" ? "too_big" : code === "unauthorized" ? "unauthorized" : "bad_frame",
    );
  }

  async #onHello(token: string, cursor: string | undefined): Promise<void> {
    this.#state = "authenticating";
    const result = await this.deps.verifier.verify(token);
    if (this.#isClosed()) return;
    if (!result.ok) {
      this.deps.metrics.authFailures.add(`hello:${result.reason}`);
      if (result.reason === "jwks_unavailable" || result.reason === "closed") {
        // The identity provider is down, the token may be fine: retry later, do not give up.
        this.#fail("unavailable", result.message, "server_error");
      } else if (result.reason === "expired") this.#fail("token_expired", result.message, "token_expired");
      else this.#fail("unauthorized", result.message, "unauthorized");
      return;
    }
    await this.#admit(result, cursor);
  }

  async #admit(
    verified: { user: string; expiresAtMs: number; claims: Readonly<Record<string, unknown>> },
    cursorText: string | undefined,
  ): Promise<void> {
    const { ownership, registry, config } = this.deps;
    const { user, expiresAtMs } = verified;
    const grants = readGrants(verified.claims);
    if (!grants.ok) {
      this.deps.metrics.authFailures.add("hello:bad_claims");
      this.#fail("unauthorized", grants.message, "unauthorized");
      return;
    }
    const iat = verified.claims["iat"];
    const issuedAtMs = typeof iat === "number" && Number.isFinite(iat) ? iat * 1000 : 0;
    const partition = partitionForKey(user, this.deps.partitionCount);
    if (this.deps.draining()) {
      this.close("restart", jitter(config.reconnectHintMaxMs));
      return;
    }
    if (!ownership.owns(partition)) {
      const url = await ownership.ownerUrl(partition);
      if (this.#isClosed()) return;
      if (url === null) {
        this.#fail("unavailable", `no gateway owns partition ${partition} right now; retry`, "server_error");
        return;
      }
      this.deps.metrics.redirects += 1;
      this.#log.debug({ user, partition, url }, "redirect");
      this.write({ op: "redirect", url });
      this.close("moved");
      return;
    }
    await ownership.ready(partition);
    if (this.#isClosed()) return;
    if (!ownership.owns(partition)) {
      // The partition moved while its start position was being read.
      this.close("moved");
      return;
    }
    let bounds;
    try {
      bounds = await this.deps.logBounds.get(partition);
    } catch (e) {
      if (this.#isClosed()) return;
      this.#log.warn({ err: e, partition }, "reading log offsets for a resume failed");
      this.#fail("unavailable", "Kafka is unavailable; retry", "server_error");
      return;
    }
    if (this.#isClosed()) return;
    if (!ownership.owns(partition)) {
      this.close("moved");
      return;
    }
    const revokedAt = this.deps.revocations.revokedAt(user);
    if (revokedAt !== undefined && issuedAtMs <= revokedAt) {
      this.deps.metrics.authFailures.add("hello:revoked");
      this.#fail("unauthorized", "the user's sessions were revoked: sign in again", "revoked");
      return;
    }
    if (!registry.add(user, this)) {
      this.#fail(
        "forbidden",
        `user has ${config.limits.maxConnectionsPerUser} connections already`,
        "too_many_connections",
      );
      return;
    }
    // From here on everything is synchronous: no record of the partition can slip between
    // reading the live edge, the welcome and the first event.
    const parsed = cursorText === undefined ? null : parseCursor(cursorText);
    const liveEdge = ownership.position(partition) ?? -1n;
    const plan = planResume({
      cursor: parsed?.ok ? parsed.cursor : null,
      epoch: this.deps.epoch,
      partition,
      liveEdge,
      logStart: bounds?.logStart ?? 0n,
      logEnd: bounds?.logEnd ?? liveEdge + 1n,
      ageStart: bounds?.ageStart ?? 0n,
      scanMax: config.resumeScanMax,
    });
    this.deps.metrics.resumes.add(plan.recovered ? "recovered" : plan.reason);
    this.#user = user;
    this.#grants = grants.grants;
    this.#issuedAtMs = issuedAtMs;
    this.#partition = partition;
    this.#lastOffset = plan.startAfter;
    this.#state = "live";
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    this.#armExpiry(expiresAtMs);
    this.write({
      op: "welcome",
      user,
      cursor: `${this.deps.epoch}:${partition}:${plan.startAfter}`,
      recovered: plan.recovered,
      ...(plan.recovered ? {} : { reason: plan.reason }),
      heartbeat_s: Math.round(config.pingIntervalMs / 1000),
      session: this.id,
      node: config.nodeId,
      limits: {
        max_frame_bytes: config.limits.maxFrameBytes,
        max_data_depth: config.limits.maxDataDepth,
        max_rooms: 0,
        max_channels: config.limits.maxChannelsPerSession,
        sends_per_s: config.limits.sendsPerSecond,
      },
    });
    this.socket.subscribe(channelTopic(BROADCAST_CHANNEL, this.socket.encoding));
    const windowed = plan.recovered ? this.deps.window.since(partition, plan.startAfter, user) : null;
    if (windowed !== null) {
      // Everything up to the window's last record is written now, so the stream's copies of them
      // are skipped; nothing moves the consumer back.
      this.deps.metrics.windowResumes += 1;
      deliverFromWindow(this, windowed.entries, this.deps);
      if (windowed.last > this.#lastOffset) this.#lastOffset = windowed.last;
    } else if (plan.recovered) {
      this.#waitSeek = this.deps.catchUp.request(partition, plan.startAfter, liveEdge);
      if (this.#waitSeek > 0) {
        this.#resumeTimer = setTimeout(() => {
          if (this.deps.catchUp.applied(partition) >= this.#waitSeek) return;
          this.#log.warn({ user, partition }, "catch-up did not start in time");
          this.#fail("unavailable", "catch-up did not start in time; resume again", "server_error");
        }, config.resumeTimeoutMs);
      }
    }
    if (!plan.recovered && plan.reason !== "no_cursor") {
      // The client must resync from its application: worth a line for whoever looks for a lost event.
      this.#log.info({ user, partition, cursor: cursorText, reason: plan.reason }, "resume not recovered");
    }
    if (this.deps.log.isLevelEnabled("debug")) {
      this.#log.debug(
        {
          user,
          partition,
          cursor: cursorText,
          recovered: plan.recovered,
          startAfter: String(plan.startAfter),
        },
        "session live",
      );
    }
  }

  #armExpiry(expiresAtMs: number): void {
    if (this.#expiryKey !== 0) expiries.remove(this, this.#expiryKey);
    this.#expiresAtMs = expiresAtMs;
    this.#expiryKey = expiries.add(this, expiresAtMs);
  }

  /** The token's expiry came (called by `expiries`): close, unless a refresh moved it later. */
  expire(): void {
    this.#expiryKey = 0;
    if (this.#state === "closed") return;
    if (this.#expiresAtMs - Date.now() > 0) this.#armExpiry(this.#expiresAtMs);
    else {
      this.write({
        op: "error",
        code: "token_expired",
        message: "the session's token expired; refresh it with auth",
      });
      this.close("token_expired");
    }
  }

  #onLiveFrame(frame: ClientFrame): void {
    if (!this.#admitControl(frame)) return;
    switch (frame.op) {
      case "send":
        this.#onSend(frame);
        return;
      case "auth":
        void this.#onAuth(frame.id, frame.token);
        return;
      case "ping":
        this.write(frame.id === undefined ? { op: "pong" } : { op: "pong", id: frame.id });
        return;
      case "pong":
        return;
      case "hello":
        this.#fail("already_authenticated", "hello was already sent", "bad_frame");
        return;
      case "join":
      case "leave":
        this.#onMembership(frame);
        return;
      case "subscribe":
        this.#onSubscribe(frame);
        return;
      case "unsubscribe":
        this.#onUnsubscribe(frame);
        return;
    }
  }

  /** Closes the session because its user's sessions were revoked (a control record). */
  revoke(): void {
    if (this.#state === "closed") return;
    this.write({ op: "error", code: "unauthorized", message: "this user's sessions were revoked" });
    this.close("revoked");
  }

  /**
   * Takes a write request from the connection's and then the user's rate limit; false
   * (answered, or closed) when over either.
   */
  #admitWrite(id: string): boolean {
    if (this.deps.draining()) {
      this.#refuseSend(id, "unavailable", "this gateway is restarting; resend after reconnecting");
      return false;
    }
    const { limits } = this.deps.config;
    const now = Date.now();
    const take = this.#bucket.take(now);
    const userTake = take.ok ? this.deps.userRates.take(this.#user!, now) : take;
    if (userTake.ok) return true;
    if (!this.#abuse.take(now).ok) {
      this.deps.metrics.sends.add("rate_limited");
      this.#fail("rate_limited", "kept sending past the rate limit", "rate_limited");
      return false;
    }
    this.#refuseSend(
      id,
      "rate_limited",
      take.ok
        ? `user over ${limits.userSendsPerSecond} sends/s across connections; retry in ${userTake.retryAfterMs} ms`
        : `over ${limits.sendsPerSecond} sends/s; retry in ${take.retryAfterMs} ms`,
    );
    return false;
  }

  /**
   * Takes a control frame (ping, pong, auth, subscribe, unsubscribe) from its rate limit; writes
   * pass. Past it, a frame with an id gets `ack rate_limited`, a ping no pong, and the excess
   * draws from the abuse bucket, which closes a client that keeps going (4029).
   */
  #admitControl(frame: ClientFrame): boolean {
    if (frame.op === "send" || frame.op === "join" || frame.op === "leave" || frame.op === "hello")
      return true;
    const now = Date.now();
    if (this.#control.take(now).ok) return true;
    if (!this.#abuse.take(now).ok) {
      this.#fail("rate_limited", `kept sending ${frame.op} frames past the rate limit`, "rate_limited");
      return false;
    }
    const id =
      frame.op === "auth" || frame.op === "subscribe" || frame.op === "unsubscribe" ? frame.id : undefined;
    if (id !== undefined) {
      const max = this.deps.config.limits.controlFramesPerSecond;
      this.write({
        op: "ack",
        id,
        ok: false,
        error: { code: "rate_limited", message: `over ${max} ${frame.op} and other control frames/s` },
      });
    }
    return false;
  }

  /**
   * A request refused before any work (malformed, forbidden, over a policy limit) costs the
   * client a token of its abuse bucket: false, and the session closed (4029), once it has none.
   */
  #chargeRefusal(): boolean {
    if (this.#abuse.take(Date.now()).ok) return true;
    this.#fail("rate_limited", "kept sending requests that are refused", "rate_limited");
    return false;
  }

  /** join / leave: one entry in the room's log; the router applies it in order with messages. */
  #onMembership(frame: JoinFrame | LeaveFrame): void {
    if (frame.op === "join" && !allows(this.#grants.rooms, frame.room)) {
      this.#refuseSend(frame.id, "forbidden", `the token does not allow joining room ${frame.room}`);
      return;
    }
    if (!this.#admitWrite(frame.id)) return;
    const user = this.#user!;
    const now = Date.now();
    const event = { id: frame.id, sender: user, member: user, type: "", data: "null", ts: now };
    const record = roomRecord(frame.room, frame.op, event, this.deps.partitionCounts);
    this.#produce(frame.id, frame.op, `room:${frame.room}`, record);
  }

  #onSubscribe(frame: SubscribeFrame): void {
    const { channel } = frame;
    if (channel !== BROADCAST_CHANNEL && !this.#channels?.has(channel)) {
      if (!allows(this.#grants.channels, channel)) {
        this.#refuseSend(frame.id, "forbidden", `the token does not allow subscribing to channel ${channel}`);
        return;
      }
      const max = this.deps.config.limits.maxChannelsPerSession;
      if ((this.#channels?.size ?? 0) >= max) {
        this.#refuseSend(frame.id, "limit_reached", `at most ${max} channels per session`);
        return;
      }
      (this.#channels ??= new Set()).add(channel);
      this.socket.subscribe(channelTopic(channel, this.socket.encoding));
    }
    this.write({ op: "ack", id: frame.id, ok: true });
  }

  #onUnsubscribe(frame: UnsubscribeFrame): void {
    // Broadcast cannot be left: it is how the operators reach everyone.
    if (frame.channel !== BROADCAST_CHANNEL && this.#channels?.delete(frame.channel)) {
      this.socket.unsubscribe(channelTopic(frame.channel, this.socket.encoding));
    }
    this.write({ op: "ack", id: frame.id, ok: true });
  }

  async #onAuth(id: string, token: string): Promise<void> {
    const result = await this.deps.verifier.verify(token);
    if (this.#state !== "live") return;
    if (!result.ok) {
      this.deps.metrics.authFailures.add(`refresh:${result.reason}`);
      const code =
        result.reason === "jwks_unavailable" || result.reason === "closed"
          ? "unavailable"
          : result.reason === "expired"
            ? "token_expired"
            : "unauthorized";
      this.write({ op: "ack", id, ok: false, error: { code, message: result.message } });
      return;
    }
    if (result.user !== this.#user) {
      this.write({
        op: "ack",
        id,
        ok: false,
        error: { code: "forbidden", message: "token is for another user" },
      });
      return;
    }
    this.#armExpiry(result.expiresAtMs);
    this.write({ op: "ack", id, ok: true });
  }

  /** A send refused before it reached the produce queue. */
  #refuseSend(id: string, code: ErrorCode, message: string): void {
    // rate_limited has drawn from the abuse bucket already; unavailable is the gateway's doing.
    if (code !== "rate_limited" && code !== "unavailable" && !this.#chargeRefusal()) return;
    this.deps.metrics.acked(code, 0);
    this.write({ op: "ack", id, ok: false, error: { code, message } });
  }

  #onSend(frame: SendFrame): void {
    if (frame.type.startsWith(SYSTEM_TYPE_PREFIX)) {
      this.#refuseSend(frame.id, "forbidden", `types starting with ${SYSTEM_TYPE_PREFIX} are reserved`);
      return;
    }
    const target = parseTarget(frame.to);
    if (target === undefined) {
      this.#refuseSend(frame.id, "bad_target", "must be user:<id>, room:<name> or channel:<name>");
      return;
    }
    // Policy before the rate limit: a refused target costs the client nothing but the ack.
    if (target.kind === "room" && !allows(this.#grants.rooms, target.room)) {
      this.#refuseSend(frame.id, "forbidden", `the token does not allow room ${target.room}`);
      return;
    }
    if (target.kind === "channel" && !allows(this.#grants.publish, target.channel)) {
      this.#refuseSend(
        frame.id,
        "forbidden",
        `the token does not allow publishing to channel ${target.channel}`,
      );
      return;
    }
    if (!this.#admitWrite(frame.id)) return;
    if (target.kind === "user") this.#sendDirect(frame, target.user);
    else this.#sendShared(frame, target);
  }

  /** A room message or a live channel event: acked when Kafka has it (no cursor: not in an inbox). */
  #sendShared(frame: SendFrame, target: Exclude<Target, { kind: "user" }>): void {
    const now = Date.now();
    if (target.kind === "room") {
      const retryAfterMs = this.deps.roomRates.take(target.room, now);
      if (retryAfterMs > 0) {
        this.#refuseSend(
          frame.id,
          "rate_limited",
          `room ${target.room} is over ${this.deps.config.limits.roomSendsPerSecond} sends/s; retry in ${retryAfterMs} ms`,
        );
        return;
      }
    }
    const event = {
      id: frame.id,
      sender: this.#user!,
      type: frame.type,
      data: JSON.stringify(frame.data),
      ts: now,
    };
    const counts = this.deps.partitionCounts;
    const record =
      target.kind === "room"
        ? roomRecord(target.room, "message", event, counts)
        : channelRecord(target.channel, event, counts);
    this.#produce(frame.id, "send", frame.to, record, frame.traceparent);
  }

  /**
   * Writes one record of a room or channel request through the batcher and acks it (ok without a
   * cursor, or the failure), inside the request's trace when tracing is on.
   */
  #produce(id: string, op: string, to: string, record: PublishRecord, traceparent?: string): void {
    const topic = this.deps.config.topics.names[record.role];
    const startedMs = performance.now();
    const { tracing } = this.deps;
    const st: SendTrace | null = tracing.enabled
      ? tracing.startSend({
          conn: this.id,
          user: this.#user!,
          id,
          to,
          recipient: record.key,
          partition: record.partition,
          traceparent,
          topic,
          op,
        })
      : null;
    const headers = st?.headers ?? (traceparent === undefined ? undefined : { traceparent });
    const { key, value, partition, timestampMs } = record;
    void this.deps.batcher
      .enqueue(topic, { key, value, partition, timestampMs, ...(headers === undefined ? {} : { headers }) })
      .then((r) => {
        const code = ackCode(r);
        const ack = () => {
          if (r.ok) this.write({ op: "ack", id, ok: true });
          else
            this.write({ op: "ack", id, ok: false, error: { code: code as ErrorCode, message: r.message } });
          this.deps.metrics.acked(code, performance.now() - startedMs);
        };
        if (st === null) {
          ack();
          return;
        }
        tracing.produced(
          st,
          r.ok ? { offset: r.position.offset, cursor: "" } : { error: r.code, message: r.message },
        );
        inContext(st.context, ack);
        tracing.acked(st, code, undefined);
      });
  }

  #sendDirect(frame: SendFrame, recipient: string): void {
    const startedMs = performance.now();
    const now = Date.now();
    const target = { user: recipient };
    const user = this.#user!;
    const value = encodeDelivery({
      id: frame.id,
      type: frame.type,
      sender: user,
      recipient: target.user,
      room: null,
      ts: now,
      data: JSON.stringify(frame.data),
      attributes: {},
    });
    const partition = partitionForKey(target.user, this.deps.partitionCount);
    const { tracing } = this.deps;
    // Tracing off: the client's traceparent (if any) still travels, so a traced backend downstream
    // sees it. On: the header carries this gateway's produce span.
    const st: SendTrace | null = tracing.enabled
      ? tracing.startSend({
          conn: this.id,
          user,
          id: frame.id,
          to: frame.to,
          recipient: target.user,
          partition,
          traceparent: frame.traceparent,
        })
      : null;
    const headers =
      st?.headers ?? (frame.traceparent === undefined ? undefined : { traceparent: frame.traceparent });
    void this.deps.batcher
      .enqueue(this.deps.config.topics.names.deliveries, {
        key: target.user,
        value,
        partition,
        timestampMs: now,
        ...(headers === undefined ? {} : { headers }),
      })
      .then((r) => {
        const cursor = r.ok ? `${this.deps.epoch}:${r.position.partition}:${r.position.offset}` : undefined;
        const code = ackCode(r);
        const ack = () => {
          if (r.ok) this.write({ op: "ack", id: frame.id, ok: true, cursor });
          else
            this.write({
              op: "ack",
              id: frame.id,
              ok: false,
              error: { code: code as ErrorCode, message: r.message },
            });
          this.deps.metrics.acked(code, performance.now() - startedMs);
          if (this.#log.isLevelEnabled("debug")) {
            this.#log.debug({ id: frame.id, to: target.user, partition, cursor, result: code }, "send acked");
          }
        };
        if (st === null) {
          ack();
          return;
        }
        tracing.produced(
          st,
          r.ok ? { offset: r.position.offset, cursor: cursor! } : { error: r.code, message: r.message },
        );
        inContext(st.context, ack);
        tracing.acked(st, code, cursor);
      });
  }
}

/** The ack code of a batcher outcome. */
function ackCode(r: { ok: true } | { ok: false; code: string }): ErrorCode | "ok" {
  if (r.ok) return "ok";
  if (r.code === "queue_full") return "queue_full";
  return r.code === "rejected" ? "internal" : "unavailable";
}

/** Full jitter: a uniform delay in [0, maxMs], so a fleet of clients does not reconnect at once. */
export function jitter(maxMs: number): number {
  return Math.floor(Math.random() * (maxMs + 1));
}

/** The id of a frame that failed validation, when it has a well-formed one. */
function readId(text: string): string | null {
  try {
    const v = JSON.parse(text) as { id?: unknown };
    return typeof v.id === "string" && isMessageId(v.id) ? v.id : null;
  } catch {
    return null;
  }
}
