/**
 * One WebSocket, from `new WebSocket(url)` to its end: sends hello, reads frames, answers
 * pings, watches the deadlines (welcome in time, then the server heard from in time), and
 * settles `outcome` exactly once with how it ended. It never reconnects: the client's loop
 * reads the outcome and decides. After the outcome no hook is called again.
 */
import type { HelloFrame, SendFrame } from "../schemas/frames.ts";
import { RealtimeError } from "./errors.ts";
import { decodeServerFrame, type KnownServerFrame } from "./decode.ts";
import { isWebSocketUrl } from "./router.ts";

/**
 * The part of the WebSocket API this client uses: the browser's `WebSocket`, Node 22's global
 * one, and the `ws` package's all fit. Text messages arrive as strings.
 */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof SocketEventMap>(
    type: K,
    listener: (event: SocketEventMap[K]) => void,
  ): void;
}
/** The fields this client reads from each event. */
export interface SocketEventMap {
  open: unknown;
  /** `data` is the text of a text message. */
  message: { readonly data: unknown };
  close: { readonly code: number; readonly reason: string };
  error: unknown;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export type Outcome =
  /** The gateway sent `redirect`: connect there. */
  | { readonly kind: "redirect"; readonly url: string }
  /** The socket closed (by the server, or the network). */
  | { readonly kind: "closed"; readonly code: number; readonly reason: string }
  /** This side gave up on the socket: no welcome in time, silence, an unreadable frame. */
  | { readonly kind: "dropped"; readonly error: RealtimeError }
  /** The client is closing. */
  | { readonly kind: "cancelled" };

export interface ConnectionHooks {
  /** The socket opened and the hello went out. */
  opened(): void;
  welcome(frame: Extract<KnownServerFrame, { op: "welcome" }>): void;
  event(frame: Extract<KnownServerFrame, { op: "event" }>): void;
  ack(frame: Extract<KnownServerFrame, { op: "ack" }>): void;
  /** An `error` frame; the close that usually follows arrives as the outcome. */
  serverError(frame: Extract<KnownServerFrame, { op: "error" }>): void;
}

export interface ConnectionOptions {
  /** From creating the socket to the welcome. */
  readonly connectTimeoutMs: number;
  /** App-level ping period once live; 0: off; undefined: the welcome's heartbeat_s. */
  readonly pingIntervalMs: number | undefined;
  readonly now: () => number;
}

type Timer = ReturnType<typeof setTimeout>;

export class Connection {
  readonly outcome: Promise<Outcome>;
  #settle!: (o: Outcome) => void;
  #done = false;
  #ws: WebSocketLike | null = null;
  #welcomedAtMs: number | undefined;
  #lastHeardMs: number;
  #connectTimer: Timer | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  /** The last `error` frame: why the server is about to close. */
  #serverError: { code: string; message: string } | undefined;

  constructor(
    ctor: WebSocketCtor,
    readonly url: string,
    hello: HelloFrame,
    private readonly options: ConnectionOptions,
    private readonly hooks: ConnectionHooks,
  ) {
    this.outcome = new Promise((resolve) => (this.#settle = resolve));
    this.#lastHeardMs = options.now();
    let ws: WebSocketLike;
    try {
      ws = new ctor(url);
    } catch (e) {
      this.#finish({
        kind: "dropped",
        error: new RealtimeError("connect_failed", `cannot open ${url}`, { cause: e }),
      });
      return;
    }
    this.#ws = ws;
    ws.addEventListener("open", () => {
      if (!this.#done && this.#write(JSON.stringify(hello))) this.hooks.opened();
    });
    ws.addEventListener("message", (event) => this.#onMessage(event.data));
    ws.addEventListener("close", (event) =>
      this.#finish({ kind: "closed", code: event.code, reason: event.reason }),
    );
    // A failed socket also closes (1006); the close carries the outcome. The listener must exist
    // anyway: the `ws` package throws an error event nobody listens to.
    ws.addEventListener("error", () => {});
    this.#connectTimer = setTimeout(() => {
      this.#drop("connect_timeout", `no welcome from ${url} within ${options.connectTimeoutMs} ms`);
    }, options.connectTimeoutMs);
  }

  /** True between the welcome and the outcome. */
  get live(): boolean {
    return !this.#done && this.#welcomedAtMs !== undefined;
  }

  get welcomedAtMs(): number | undefined {
    return this.#welcomedAtMs;
  }

  get serverError(): { code: string; message: string } | undefined {
    return this.#serverError;
  }

  /** Writes a send frame's text; false when the socket is not live. */
  send(frame: SendFrame | string): boolean {
    if (!this.live) return false;
    return this.#write(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Closes the socket from this side and settles the outcome with `outcome`. */
  abandon(outcome: Outcome): void {
    this.#finish(outcome);
  }

  #write(text: string): boolean {
    try {
      this.#ws?.send(text);
      return true;
    } catch (e) {
      this.#drop("connect_failed", `writing to ${this.url} failed`, e);
      return false;
    }
  }

  #drop(
    code: "connect_timeout" | "heartbeat_timeout" | "bad_server_frame" | "connect_failed",
    message: string,
    cause?: unknown,
  ): void {
    this.#finish({ kind: "dropped", error: new RealtimeError(code, message, { cause }) });
  }

  #onMessage(data: unknown): void {
    if (this.#done) return;
    this.#lastHeardMs = this.options.now();
    const decoded = decodeServerFrame(data);
    if (!decoded.ok) {
      this.#drop("bad_server_frame", `${this.url}: ${decoded.reason}`);
      return;
    }
    const frame = decoded.frame;
    if (frame === null) return;
    switch (frame.op) {
      case "welcome":
        if (this.#welcomedAtMs !== undefined) return;
        this.#welcomedAtMs = this.options.now();
        clearTimeout(this.#connectTimer);
        this.#armPing(frame.heartbeat_s);
        this.hooks.welcome(frame);
        return;
      case "redirect":
        if (this.#welcomedAtMs !== undefined) return;
        if (!isWebSocketUrl(frame.url)) this.#drop("bad_server_frame", `redirect to a non-WebSocket URL`);
        else this.#finish({ kind: "redirect", url: frame.url });
        return;
      case "event":
        this.hooks.event(frame);
        return;
      case "ack":
        this.hooks.ack(frame);
        return;
      case "ping":
        this.#write(JSON.stringify(frame.id === undefined ? { op: "pong" } : { op: "pong", id: frame.id }));
        return;
      case "pong":
        return;
      case "error":
        this.#serverError = { code: frame.code, message: frame.message };
        this.hooks.serverError(frame);
        return;
    }
  }

  /**
   * Browsers cannot see WebSocket pings, so a half-open connection (a gateway host that
   * vanished) would look alive for minutes. An app-level ping each period, and no frame at all
   * for two periods, means the connection is dead.
   */
  #armPing(heartbeatS: number): void {
    const periodMs = this.options.pingIntervalMs ?? heartbeatS * 1000;
    if (!(periodMs > 0)) return;
    this.#pingTimer = setInterval(() => {
      if (this.options.now() - this.#lastHeardMs > 2 * periodMs) {
        this.#drop("heartbeat_timeout", `nothing from ${this.url} for ${2 * periodMs} ms`);
      } else this.#write('{"op":"ping"}');
    }, periodMs);
  }

  #finish(outcome: Outcome): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#connectTimer);
    clearInterval(this.#pingTimer);
    const ws = this.#ws;
    if (outcome.kind !== "closed" && ws !== null) {
      try {
        ws.close(1000, "");
      } catch {
        // Already closing: nothing more to do.
      }
    }
    this.#settle(outcome);
  }
}
