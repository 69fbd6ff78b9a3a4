/**
 * The reconnecting client: one logical session over any number of sockets.
 *
 * A loop asks where to connect (the router, or the configured gateway), opens a socket
 * (connection.ts), follows redirects, and when the socket ends asks the close-code policy
 * (policy.ts) whether and when to try again; backoff.ts spaces the retries. Across sockets it
 * keeps the cursor (dedupe.ts), sent in every hello so the gateway resumes after it, and the
 * sends not acked yet, written again with the same id once the next socket is welcomed.
 * Delivery is at-least-once both ways: events are deduped by cursor here; a receiver that
 * must not see a re-sent message twice dedupes by (from, id).
 *
 * Runs in browsers and Node: the WebSocket constructor and fetch are injectable and default to
 * the globals; nothing here imports a Node module.
 */
import type {
  HelloFrame,
  JoinFrame,
  JsonValue,
  LeaveFrame,
  SendFrame,
  SubscribeFrame,
  UnsubscribeFrame,
} from "../schemas/frames.ts";
import { isChannelName, isEventType, isMessageId, isRoomName, parseTarget } from "../schemas/targets.ts";
import { Backoff, DEFAULT_BACKOFF, validateBackoff } from "./backoff.ts";
import { Connection, type WebSocketCtor } from "./connection.ts";
import type { KnownServerFrame } from "./decode.ts";
import { CursorTracker, RecentIds } from "./dedupe.ts";
import { Emitter } from "./emitter.ts";
import { RealtimeError, type RealtimeErrorCode } from "./errors.ts";
import { Outbox } from "./outbox.ts";
import { MAX_HINT_MS, decideOnClose, delayMs } from "./policy.ts";
import { askRouter, isHttpUrl, isWebSocketUrl, type ConnectAnswer, type FetchLike } from "./router.ts";
import { refreshDelayMs, tokenTimes } from "./token-refresh.ts";
import {
  CLIENT_DEFAULTS,
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type ClosedInfo,
  type SendResult,
  type TokenProvider,
  type Tunables,
  type WelcomeInfo,
} from "./types.ts";

export * from "./types.ts";

const utf8 = new TextEncoder();

export class RealtimeClient {
  readonly #token: string | TokenProvider;
  readonly #routerUrl: string | undefined;
  readonly #gatewayUrl: string | undefined;
  readonly #WebSocket: WebSocketCtor;
  readonly #fetch: FetchLike | undefined;
  readonly #random: () => number;
  readonly #o: Tunables & { readonly pingIntervalMs: number | undefined };
  readonly #emitter = new Emitter<ClientEvents>();
  readonly #tracker: CursorTracker;
  readonly #recentIds: RecentIds;
  readonly #refreshBeforeExpiry: boolean;
  #tokenObtainedAtMs = 0;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** The `auth` frame waiting for its ack. */
  #auth: { readonly id: string; readonly token: string; readonly conn: Connection } | null = null;
  readonly #backoff: Backoff;
  readonly #outbox: Outbox;
  readonly #waiters: { resolve: (w: WelcomeInfo) => void; reject: (e: RealtimeError) => void }[] = [];
  readonly #idPrefix: string;
  #nextId = 0;
  readonly #channels = new Set<string>();
  #state: ClientState = "connecting";
  #started = false;
  #closed = false;
  #conn: Connection | null = null;
  #welcome: WelcomeInfo | undefined;
  #currentToken: string | undefined;
  #pause: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | null = null;
  #routerAbort: AbortController | null = null;

  /** Checks the options (throws TypeError/RangeError on bad ones); connects on `connect()`. */
  constructor(options: ClientOptions) {
    if ((options.routerUrl === undefined) === (options.gatewayUrl === undefined)) {
      throw new TypeError("give exactly one of routerUrl and gatewayUrl");
    }
    if (options.routerUrl !== undefined && !isHttpUrl(options.routerUrl)) {
      throw new TypeError(`routerUrl must be an http:// or https:// URL, got ${String(options.routerUrl)}`);
    }
    if (options.gatewayUrl !== undefined && !isWebSocketUrl(options.gatewayUrl)) {
      throw new TypeError(`gatewayUrl must be a ws:// or wss:// URL, got ${String(options.gatewayUrl)}`);
    }
    if (typeof options.token !== "string" && typeof options.token !== "function") {
      throw new TypeError("token must be a string or a function returning one");
    }
    if (options.token === "") throw new TypeError("token must not be empty");
    const ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (ws === undefined)
      throw new TypeError("no global WebSocket: pass options.WebSocket (e.g. the ws package)");
    const fetchFn =
      options.fetch ??
      (typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : undefined);
    if (options.routerUrl !== undefined && fetchFn === undefined) {
      throw new TypeError("no global fetch: pass options.fetch");
    }
    this.#token = options.token;
    this.#routerUrl = options.routerUrl;
    this.#gatewayUrl = options.gatewayUrl;
    this.#WebSocket = ws;
    this.#fetch = fetchFn;
    this.#random = options.random ?? Math.random;
    this.#o = Object.freeze({
      ackTimeoutMs: positive("ackTimeoutMs", options.ackTimeoutMs ?? CLIENT_DEFAULTS.ackTimeoutMs),
      connectTimeoutMs: positive(
        "connectTimeoutMs",
        options.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs,
      ),
      maxPendingSends: positive(
        "maxPendingSends",
        options.maxPendingSends ?? CLIENT_DEFAULTS.maxPendingSends,
      ),
      maxRedirects: positive("maxRedirects", options.maxRedirects ?? CLIENT_DEFAULTS.maxRedirects, 0),
      stableAfterMs: positive("stableAfterMs", options.stableAfterMs ?? CLIENT_DEFAULTS.stableAfterMs, 0),
      dedupeWindow: positive("dedupeWindow", options.dedupeWindow ?? CLIENT_DEFAULTS.dedupeWindow, 0),
      pingIntervalMs:
        options.pingIntervalMs === undefined
          ? undefined
          : positive("pingIntervalMs", options.pingIntervalMs, 0),
    });
    this.#outbox = new Outbox({
      maxEntries: this.#o.maxPendingSends,
      ackTimeoutMs: this.#o.ackTimeoutMs,
      writer: () => (this.#conn !== null && this.#conn.live ? this.#conn : null),
      random: this.#random,
    });
    this.#recentIds = new RecentIds(this.#o.dedupeWindow);
    this.#refreshBeforeExpiry = options.refreshBeforeExpiry ?? true;
    this.#backoff = new Backoff(validateBackoff({ ...DEFAULT_BACKOFF, ...options.backoff }), this.#random);
    this.#tracker = new CursorTracker(options.cursor);
    this.#idPrefix = Math.floor(this.#random() * 2 ** 48).toString(36);
  }

  get state(): ClientState {
    return this.#state;
  }

  /** The last cursor: store it, and pass it back as `options.cursor` to resume later. */
  get cursor(): string | undefined {
    return this.#tracker.cursor;
  }

  /** The last welcome (undefined before the first). */
  get welcome(): WelcomeInfo | undefined {
    return this.#welcome;
  }

  /** Sends waiting for their ack. */
  get pendingSends(): number {
    return this.#outbox.size;
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ClientEvents>(name: K, fn: ClientEvents[K]): () => void {
    return this.#emitter.on(name, fn);
  }

  /**
   * Starts the session (once; later calls only wait). Resolves at the next welcome, or at once
   * when open; rejects when the client closes first (a "no" close code, close()).
   */
  connect(): Promise<WelcomeInfo> {
    if (this.#closed) return Promise.reject(new RealtimeError("client_closed", "the client is closed"));
    const welcomed = new Promise<WelcomeInfo>((resolve, reject) => {
      if (this.#state === "open" && this.#welcome !== undefined) resolve(this.#welcome);
      else this.#waiters.push({ resolve, reject });
    });
    if (!this.#started) {
      this.#started = true;
      this.#run().catch((e: unknown) => {
        this.#stop("internal", new RealtimeError("internal", "the client's loop failed", { cause: e }));
        throw e;
      });
    }
    return welcomed;
  }

  /**
   * Publishes `data` to `to` (`user:U`, `room:R`, `channel:C`). Resolves once the server has
   * the event durably (with its cursor), rejects with a RealtimeError on a failed ack, on
   * `ack_timeout` after `timeoutMs` (default ackTimeoutMs), or when the client closes. While not
   * open the send waits in a bounded queue; a send whose socket dropped before its ack, or whose
   * ack said "try again" (`unavailable`, `queue_full`, `rate_limited`), is written again with the
   * same id until its deadline.
   *
   * Throws a RealtimeError at once (`bad_target`, `bad_frame`) for a malformed `to`, `type`,
   * `id` or a `data` that is not JSON: those are bugs, not outcomes.
   */
  send(
    to: string,
    type: string,
    data: JsonValue,
    options: { id?: string; timeoutMs?: number } = {},
  ): Promise<SendResult> {
    if (typeof to !== "string" || parseTarget(to) === undefined)
      throw argError("bad_target", `to must be user:<id>, room:<name> or channel:<name>, got ${show(to)}`);
    if (typeof type !== "string" || !isEventType(type))
      throw argError("bad_frame", `type must be 1-64 chars of [A-Za-z0-9_.:-], got ${show(type)}`);
    if (data === undefined || typeof data === "function" || typeof data === "symbol") {
      throw argError("bad_frame", "data must be a JSON value");
    }
    const id = this.#checkedId(options.id);
    const timeoutMs =
      options.timeoutMs === undefined ? undefined : positive("options.timeoutMs", options.timeoutMs);
    const frame: SendFrame = { op: "send", id, to, type, data };
    let text: string;
    try {
      text = JSON.stringify(frame);
    } catch (e) {
      throw argError("bad_frame", "data must be a JSON value", e);
    }
    if (this.#closed) return this.#refuse("client_closed", "the client is closed", id);
    const refused = this.#outbox.refuse(id);
    if (refused !== null) return Promise.reject(refused);
    const bytes = utf8.encode(text).length;
    const overLimit = this.#overLimit(bytes);
    if (overLimit !== null) return Promise.reject(overLimit);
    return this.#outbox.add(id, text, bytes, timeoutMs);
  }

  #checkedId(id: string | undefined): string {
    if (id === undefined) return `${this.#idPrefix}-${(this.#nextId += 1).toString(36)}`;
    if (typeof id !== "string" || !isMessageId(id))
      throw argError("bad_frame", `id must be 1-64 chars of [A-Za-z0-9_.:-], got ${show(id)}`);
    return id;
  }

  /**
   * Joins a room (durable membership: room messages reach this user's inbox from now on, on every
   * device, online or not). Resolves when Kafka has the join; the router applies it in order with
   * the room's messages. A refusal the router makes later (room full) arrives as an `rt.rejected`
   * event. The token's rt_rooms claim must allow the room.
   */
  join(room: string, options: { id?: string } = {}): Promise<SendResult> {
    checkRoom(room);
    return this.#request(options.id, (id) => ({ op: "join", id, room }));
  }

  /** Leaves a room; resolves when Kafka has the leave. Throws like `join` for a bad name. */
  leave(room: string, options: { id?: string } = {}): Promise<SendResult> {
    checkRoom(room);
    return this.#request(options.id, (id) => ({ op: "leave", id, room }));
  }

  /**
   * Subscribes to a live channel (at most once, no replay). The subscription belongs to this client:
   * it is renewed on every reconnect until `unsubscribe`. Broadcast (`*`) needs no subscription.
   */
  subscribe(channel: string): Promise<SendResult> {
    checkChannel(channel);
    this.#channels.add(channel);
    return this.#request(undefined, (id) => ({ op: "subscribe", id, channel }));
  }

  unsubscribe(channel: string): Promise<SendResult> {
    checkChannel(channel);
    this.#channels.delete(channel);
    return this.#request(undefined, (id) => ({ op: "unsubscribe", id, channel }));
  }

  /** Live channels this client keeps subscribed. */
  get channels(): ReadonlySet<string> {
    return this.#channels;
  }

  #refuse(code: RealtimeErrorCode, message: string, id?: string): Promise<never> {
    return Promise.reject(new RealtimeError(code, message, { id }));
  }

  /** A request frame with an id, settled by its ack like a send (same outbox, same resend rules). */
  #request(
    id: string | undefined,
    build: (id: string) => JoinFrame | LeaveFrame | SubscribeFrame | UnsubscribeFrame,
  ): Promise<SendResult> {
    const rid = this.#checkedId(id);
    if (this.#closed) return this.#refuse("client_closed", "the client is closed", rid);
    const refused = this.#outbox.refuse(rid);
    if (refused !== null) return Promise.reject(refused);
    const text = JSON.stringify(build(rid));
    return this.#outbox.add(rid, text, utf8.encode(text).length);
  }

  /** Stops for good: no reconnect, pending sends fail with `client_closed`. Safe twice. */
  close(): void {
    this.#stop("client_closed");
  }

  // ---- the loop ----

  async #run(): Promise<void> {
    let target: string | null = null; // null: ask the router (or take gatewayUrl) afresh
    let hops = 0;
    let wait = 0;
    let failures = 0; // attempts since the last welcome
    let refreshToken = false;
    let expiredStreak = 0; // token_expired answers since the last welcome
    while (!this.#closed) {
      if (wait > 0) await this.#sleep(wait);
      if (this.#closed) return;
      wait = 0;
      if (this.#currentToken === undefined || refreshToken || this.#expiresSoon()) {
        const token = await this.#readToken();
        if (this.#closed) return;
        if (token instanceof RealtimeError) {
          this.#emitter.emit("error", token);
          wait = this.#backoff.next();
          failures += 1;
          continue;
        }
        this.#currentToken = token;
        this.#tokenObtainedAtMs = Date.now();
        refreshToken = false;
      }
      let url: string | null = target;
      if (url === null) {
        hops = 0;
        if (this.#routerUrl === undefined) url = this.#gatewayUrl!;
        else {
          const answer = await this.#askRouter(this.#routerUrl, this.#currentToken);
          if (this.#closed) return;
          if (answer.kind === "ok") url = answer.url;
          else if (answer.kind === "unauthorized") {
            if (answer.expired && expiredStreak === 0 && typeof this.#token === "function") {
              expiredStreak += 1;
              refreshToken = true;
              continue;
            }
            const reason = answer.expired ? "token_expired" : "unauthorized";
            this.#stop(reason, new RealtimeError(reason, answer.message));
            return;
          } else {
            if (answer.kind === "failed")
              this.#emitter.emit("error", new RealtimeError("router_error", answer.message));
            wait =
              answer.kind === "retry" && answer.retryAfterMs !== undefined
                ? Math.min(answer.retryAfterMs, MAX_HINT_MS)
                : this.#backoff.next();
            failures += 1;
            continue;
          }
        }
      }

      const conn = this.#open(url, this.#currentToken);
      const outcome = await conn.outcome;
      if (this.#conn === conn) this.#conn = null;
      clearTimeout(this.#refreshTimer);
      if (this.#auth?.conn === conn) this.#auth = null;
      if (this.#closed || outcome.kind === "cancelled") return;
      const welcomedAt = conn.welcomedAtMs;
      if (welcomedAt !== undefined) {
        failures = 0;
        expiredStreak = 0;
        if (Date.now() - welcomedAt >= this.#o.stableAfterMs) this.#backoff.reset();
      }
      this.#setState(this.#welcome === undefined ? "connecting" : "reconnecting");

      if (outcome.kind === "redirect") {
        hops += 1;
        if (hops <= this.#o.maxRedirects) {
          target = outcome.url;
          continue;
        }
        this.#emitter.emit(
          "error",
          new RealtimeError("redirect_loop", `more than ${this.#o.maxRedirects} redirects in a row`),
        );
        target = null;
        wait = this.#backoff.next();
        failures += 1;
        continue;
      }
      if (outcome.kind === "dropped") {
        this.#emitter.emit("error", outcome.error);
        target = null;
        wait = this.#backoff.next();
        failures += 1;
        continue;
      }
      const decision = decideOnClose(outcome.code, outcome.reason);
      if (decision.action === "stop") {
        const message = conn.serverError?.message ?? `the gateway closed the session (${decision.code})`;
        this.#stop(
          decision.name,
          new RealtimeError(decision.name as RealtimeErrorCode, message),
          decision.code,
        );
        return;
      }
      if (decision.refreshToken) {
        // One refresh per outage: a provider that hands out expired tokens would loop forever.
        if (typeof this.#token !== "function" || expiredStreak > 0) {
          const message = conn.serverError?.message ?? "the token expired and no fresh one is available";
          this.#stop(decision.name, new RealtimeError("token_expired", message), decision.code);
          return;
        }
        expiredStreak += 1;
        refreshToken = true;
      }
      target = decision.viaRouter ? null : url;
      wait = delayMs(decision.wait, failures, () => this.#backoff.next());
      failures += 1;
    }
  }

  #open(url: string, token: string): Connection {
    const cursor = this.#tracker.cursor;
    const hello: HelloFrame = cursor === undefined ? { op: "hello", token } : { op: "hello", token, cursor };
    const conn: Connection = new Connection(
      this.#WebSocket,
      url,
      hello,
      { connectTimeoutMs: this.#o.connectTimeoutMs, pingIntervalMs: this.#o.pingIntervalMs, now: Date.now },
      {
        opened: () => {
          if (hello.cursor !== undefined) this.#setState("resuming");
        },
        welcome: (f) => this.#onWelcome(conn, f),
        event: (f) => this.#onEvent(f),
        ack: (f) => this.#onAck(f),
        serverError: (f) => this.#emitter.emit("error", new RealtimeError(f.code, f.message)),
      },
    );
    this.#conn = conn;
    return conn;
  }

  #onWelcome(conn: Connection, f: Extract<KnownServerFrame, { op: "welcome" }>): void {
    const { resync, logChanged } = this.#tracker.welcome(f.cursor, f.recovered);
    const info: WelcomeInfo = {
      user: f.user,
      url: conn.url,
      recovered: f.recovered,
      reason: f.reason,
      cursor: this.#tracker.cursor,
      serverCursor: f.cursor,
      session: f.session,
      node: f.node,
      heartbeatS: f.heartbeat_s,
      limits: f.limits,
    };
    this.#welcome = info;
    // Unacked sends go first, in the order they were made, before anything a listener sends.
    this.#outbox.flush(conn, (bytes) => this.#overLimit(bytes));
    // Channel subscriptions live in the session: renew them (their acks need no answer).
    for (const channel of this.#channels) {
      const id = `${this.#idPrefix}-s${(this.#nextId += 1).toString(36)}`;
      conn.send(JSON.stringify({ op: "subscribe", id, channel }));
    }
    this.#setState("open");
    this.#scheduleRefresh(conn);
    this.#emitter.emit("welcome", info);
    if (resync) {
      this.#emitter.emit("resync", {
        reason: logChanged ? "log_changed" : "not_recovered",
        detail: f.reason,
        cursor: this.#tracker.cursor,
      });
    }
    for (const w of this.#waiters.splice(0)) w.resolve(info);
  }

  #onEvent(f: Extract<KnownServerFrame, { op: "event" }>): void {
    if (f.cursor === undefined) {
      // A live channel event: at most once, outside the inbox log, nothing to dedupe.
      const { id, from, to, type, data, ts } = f;
      if (this.#recentIds.seen(from, to, id)) return;
      this.#emitter.emit("event", { cursor: undefined, id, from, to, type, data, ts });
      return;
    }
    const r = this.#tracker.offer(f.cursor);
    if (r.kind === "duplicate") return;
    // A re-sent copy (same sender, target and id, a later cursor): the cursor moved past it.
    if (this.#recentIds.seen(f.from, f.to, f.id)) return;
    if (r.kind === "invalid") {
      this.#emitter.emit("error", new RealtimeError("bad_server_frame", `event ${f.id}: ${r.reason}`));
    } else if (r.logChanged) {
      this.#emitter.emit("resync", { reason: "log_changed", detail: undefined, cursor: f.cursor });
    }
    const { cursor, id, from, to, type, data, ts } = f;
    this.#emitter.emit("event", { cursor, id, from, to, type, data, ts });
  }

  #onAck(f: Extract<KnownServerFrame, { op: "ack" }>): void {
    const auth = this.#auth;
    if (auth !== null && auth.id === f.id) {
      this.#auth = null;
      if (f.ok) {
        this.#currentToken = auth.token;
        this.#tokenObtainedAtMs = Date.now();
        this.#emitter.emit("token", { expMs: tokenTimes(auth.token)?.expMs });
        this.#scheduleRefresh(auth.conn);
      } else {
        this.#emitter.emit("error", new RealtimeError(f.error.code, f.error.message, { id: f.id }));
        this.#retryRefresh(auth.conn);
      }
      return;
    }
    this.#outbox.ack(
      f.id,
      f.ok
        ? { ok: true, cursor: f.cursor }
        : { ok: false, error: new RealtimeError(f.error.code, f.error.message, { id: f.id }) },
    );
  }

  // ---- token refresh over the live session ----

  /** The current token from a provider expires within a second (or has expired): get a new one first. */
  #expiresSoon(): boolean {
    if (typeof this.#token !== "function" || this.#currentToken === undefined) return false;
    const times = tokenTimes(this.#currentToken);
    return times !== undefined && times.expMs - Date.now() < 1000;
  }

  #scheduleRefresh(conn: Connection): void {
    clearTimeout(this.#refreshTimer);
    const token = this.#currentToken;
    if (!this.#refreshBeforeExpiry || typeof this.#token !== "function" || token === undefined) return;
    const times = tokenTimes(token);
    if (times === undefined) return;
    const delay = refreshDelayMs(times, this.#tokenObtainedAtMs, Date.now());
    this.#refreshTimer = setTimeout(() => void this.#refreshNow(conn), Math.min(delay, 2 ** 31 - 1));
  }

  /** After a failed refresh: try again in a quarter of the time left (1 s to 30 s), while any is left. */
  #retryRefresh(conn: Connection): void {
    clearTimeout(this.#refreshTimer);
    const times = this.#currentToken === undefined ? undefined : tokenTimes(this.#currentToken);
    if (times === undefined) return;
    const left = times.expMs - Date.now();
    if (left <= 0) return; // the gateway closes with 4010; the loop gets a new token then
    const delay = Math.min(30_000, Math.max(1000, Math.floor(left / 4)));
    this.#refreshTimer = setTimeout(() => void this.#refreshNow(conn), delay);
  }

  async #refreshNow(conn: Connection): Promise<void> {
    const token = await this.#readToken();
    if (this.#closed || this.#conn !== conn || !conn.live) return;
    if (token instanceof RealtimeError) {
      this.#emitter.emit("error", token);
      this.#retryRefresh(conn);
      return;
    }
    if (token === this.#currentToken) {
      // The provider handed out the same token: nothing to send; ask again later.
      this.#retryRefresh(conn);
      return;
    }
    const id = `${this.#idPrefix}-a${(this.#nextId += 1).toString(36)}`;
    this.#auth = { id, token, conn };
    conn.send(JSON.stringify({ op: "auth", id, token }));
  }

  #overLimit(bytes: number): RealtimeError | null {
    const max = this.#welcome?.limits.max_frame_bytes ?? 0;
    return max > 0 && bytes > max
      ? new RealtimeError("too_big", `the send frame is ${bytes} bytes, over the gateway's limit of ${max}`)
      : null;
  }

  async #readToken(): Promise<string | RealtimeError> {
    const token = this.#token;
    if (typeof token === "string") return token;
    try {
      const t = await token();
      return typeof t === "string" && t !== ""
        ? t
        : new RealtimeError("token_provider", "the token provider returned no token");
    } catch (e) {
      return new RealtimeError("token_provider", "the token provider threw", { cause: e });
    }
  }

  async #askRouter(routerUrl: string, token: string): Promise<ConnectAnswer> {
    const abort = new AbortController();
    this.#routerAbort = abort;
    const timer = setTimeout(() => abort.abort(), this.#o.connectTimeoutMs);
    try {
      return await askRouter(this.#fetch!, routerUrl, token, abort.signal);
    } finally {
      clearTimeout(timer);
      if (this.#routerAbort === abort) this.#routerAbort = null;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pause = null;
        resolve();
      }, ms);
      this.#pause = { timer, resolve };
    });
  }

  #setState(state: ClientState): void {
    if (this.#state === state || this.#state === "closed") return;
    this.#state = state;
    this.#emitter.emit("state", state);
  }

  #stop(reason: string, error?: RealtimeError, code?: number): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pause !== null) {
      clearTimeout(this.#pause.timer);
      this.#pause.resolve();
      this.#pause = null;
    }
    this.#routerAbort?.abort();
    clearTimeout(this.#refreshTimer);
    this.#auth = null;
    this.#conn?.abandon({ kind: "cancelled" });
    this.#conn = null;
    const failure = error ?? new RealtimeError("client_closed", "the client is closed");
    this.#outbox.failAll(failure);
    this.#setState("closed");
    for (const w of this.#waiters.splice(0)) w.reject(failure);
    const info: ClosedInfo = {
      reason,
      ...(code === undefined ? {} : { code }),
      ...(error === undefined ? {} : { error }),
    };
    this.#emitter.emit("closed", info);
  }
}

/** A client that starts connecting at once; follow it with `on("welcome" | "closed", ...)`. */
export function createClient(options: ClientOptions): RealtimeClient {
  const client = new RealtimeClient(options);
  // The outcome is also reported by the `welcome` and `closed` events.
  client.connect().catch(() => {});
  return client;
}

function argError(code: "bad_target" | "bad_frame", message: string, cause?: unknown): RealtimeError {
  return new RealtimeError(code, message, { cause, retriable: false });
}

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : typeof v;
}

function checkRoom(room: string): void {
  if (typeof room !== "string" || !isRoomName(room))
    throw argError("bad_target", `room must be 1-128 chars of [A-Za-z0-9_.:@-], got ${show(room)}`);
}

function checkChannel(channel: string): void {
  if (typeof channel !== "string" || !isChannelName(channel)) {
    throw argError(
      "bad_target",
      `channel must be * or 1-128 chars of [A-Za-z0-9_.:@-], got ${show(channel)}`,
    );
  }
}

function positive(name: string, value: number, min = 1): number {
  if (!Number.isFinite(value) || value < min)
    throw new RangeError(`${name} must be a number >= ${min}, got ${value}`);
  return value;
}
