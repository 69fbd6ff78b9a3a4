/**
 * A scripted in-memory WebSocket network for the client SDK's unit tests: every socket opens
 * and every hello is welcomed unless a test scripts otherwise.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  RealtimeClient,
  type ClientOptions,
  type ClosedInfo,
  type RealtimeEvent,
} from "../../client/client.ts";
import type { SocketEventMap, WebSocketCtor, WebSocketLike } from "../../client/connection.ts";
import type { RealtimeError } from "../../client/errors.ts";

// Frames are whatever the client sent; tests read fields dynamically.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>;
export type Listener = (event: Frame) => void;

export const GW = "ws://gw-a.test/v1/ws";
export const GW_B = "ws://gw-b.test/v1/ws";

export function welcomeFrame(over: Frame = {}): Frame {
  return {
    op: "welcome",
    user: "bob",
    cursor: "",
    recovered: true,
    heartbeat_s: 0,
    session: "s",
    node: "n",
    limits: { max_frame_bytes: 1024, max_data_depth: 8, max_rooms: 0, max_channels: 0, sends_per_s: 50 },
    ...over,
  };
}

export class FakeSocket implements WebSocketLike {
  readonly sent: Frame[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  #listeners = new Map<string, Listener[]>();
  #closed = false;

  constructor(
    readonly net: FakeNet,
    readonly url: string,
  ) {
    net.sockets.push(this);
    setTimeout(() => net.onConnect(this), 0);
  }

  addEventListener<K extends keyof SocketEventMap>(
    type: K,
    listener: (event: SocketEventMap[K]) => void,
  ): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener as Listener]);
  }

  send(text: string): void {
    if (this.#closed) throw new Error("send on a closed socket");
    const frame = JSON.parse(text) as Frame;
    this.sent.push(frame);
    setTimeout(() => this.net.onFrame(this, frame), 0);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.serverClose(code ?? 1005, reason ?? "");
  }

  dispatch(type: string, event: Frame): void {
    for (const l of this.#listeners.get(type) ?? []) l(event);
  }

  open(): void {
    this.dispatch("open", {});
  }

  serverSend(frame: Frame): void {
    if (!this.#closed) this.dispatch("message", { data: JSON.stringify(frame) });
  }

  serverClose(code: number, reason = ""): void {
    if (this.#closed) return;
    this.#closed = true;
    this.dispatch("close", { code, reason });
  }

  frames(op: string): Frame[] {
    return this.sent.filter((f) => f.op === op);
  }
}

/** A scripted network: by default every socket opens and every hello is welcomed. */
export class FakeNet {
  readonly sockets: FakeSocket[] = [];
  onConnect: (s: FakeSocket) => void = (s) => s.open();
  onHello: (s: FakeSocket, hello: Frame) => void = (s) => s.serverSend(welcomeFrame());
  onSend: (s: FakeSocket, send: Frame) => void = () => {};
  /** Every other client frame (auth, join, subscribe, ping...). */
  onOther: (s: FakeSocket, frame: Frame) => void = () => {};

  onFrame(s: FakeSocket, f: Frame): void {
    if (f.op === "hello") this.onHello(s, f);
    else if (f.op === "send") this.onSend(s, f);
    else this.onOther(s, f);
  }

  readonly WebSocket: WebSocketCtor = (() => {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const net = this;
    return class extends FakeSocket {
      constructor(url: string) {
        super(net, url);
      }
    };
  })();

  get last(): FakeSocket {
    return this.sockets[this.sockets.length - 1]!;
  }
}

export interface Harness {
  net: FakeNet;
  client: RealtimeClient;
  events: RealtimeEvent[];
  errors: RealtimeError[];
  states: string[];
  closed: ClosedInfo[];
  resyncs: string[];
}

export function harness(options: Partial<ClientOptions> = {}, net = new FakeNet()): Harness {
  const client = new RealtimeClient({
    ...(options.routerUrl === undefined ? { gatewayUrl: GW } : {}),
    token: "tok",
    WebSocket: net.WebSocket,
    backoff: { baseMs: 5, capMs: 20 },
    random: () => 0.5,
    ...options,
  });
  const h: Harness = { net, client, events: [], errors: [], states: [], closed: [], resyncs: [] };
  client.on("event", (e) => h.events.push(e));
  client.on("error", (e) => h.errors.push(e));
  client.on("state", (s) => h.states.push(s));
  client.on("closed", (c) => h.closed.push(c));
  client.on("resync", (r) => h.resyncs.push(r.reason));
  return h;
}

export async function until(what: string, pred: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

export function event(cursor: string, id: string): Frame {
  return { op: "event", cursor, id, from: "alice", to: "user:bob", type: "t", data: { id }, ts: 1 };
}
