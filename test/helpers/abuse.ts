/**
 * Tools for the hardening tests: WebSocket upgrades with a chosen Origin or source address that
 * report the HTTP refusal instead of throwing, raw TCP exchanges (for bytes no well-behaved client
 * sends), a bystander whose service must never be disturbed, and the memory of a process.
 */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import type { Frame } from "./ws-client.ts";

export interface Ws {
  readonly ws: WebSocket;
  readonly frames: Frame[];
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed(): { code: number; reason: string } | null;
  send(frame: Frame | string): void;
  waitFor(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
}

export type UpgradeResult =
  | { readonly ok: true; readonly c: Ws }
  | { readonly ok: false; readonly status: number; readonly body: string };

export interface UpgradeOptions {
  readonly origin?: string;
  /** Source address, e.g. 127.0.0.2: the loopback /8 gives each test its own client address. */
  readonly localAddress?: string;
  readonly headers?: Record<string, string>;
  readonly perMessageDeflate?: boolean;
}

/** Opens a WebSocket; an HTTP refusal resolves with its status and body. */
export function upgrade(url: string, opts: UpgradeOptions = {}): Promise<UpgradeResult> {
  const ws = new WebSocket(url, [], {
    headers: opts.headers ?? {},
    perMessageDeflate: opts.perMessageDeflate ?? false,
    ...(opts.origin === undefined ? {} : { origin: opts.origin }),
    ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
  });
  const frames: Frame[] = [];
  let closedWith: { code: number; reason: string } | null = null;
  ws.on("message", (data, isBinary) => {
    if (!isBinary) frames.push(JSON.parse(data.toString()) as Frame);
  });
  const closed = new Promise<{ code: number; reason: string }>((done) =>
    ws.on("close", (code, reason) => {
      closedWith = { code, reason: reason.toString() };
      done(closedWith);
    }),
  );
  const c: Ws = {
    ws,
    frames,
    closed,
    isClosed: () => closedWith,
    send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    async waitFor(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const f = frames.find(pred);
        if (f !== undefined) return f;
        if (closedWith !== null || Date.now() > deadline)
          throw new Error(
            `no such frame; closed ${JSON.stringify(closedWith)}; frames ${JSON.stringify(frames)}`,
          );
        await sleep(10);
      }
    },
  };
  return new Promise((done, fail) => {
    ws.once("open", () => done({ ok: true, c }));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => done({ ok: false, status: res.statusCode ?? 0, body }));
    });
    ws.once("error", fail);
  });
}

/** Upgrades and expects success. */
export async function mustUpgrade(url: string, opts: UpgradeOptions = {}): Promise<Ws> {
  const r = await upgrade(url, opts);
  if (!r.ok) throw new Error(`upgrade refused: HTTP ${r.status} ${r.body}`);
  return r.c;
}

/** Upgrades, sends hello, and resolves at the welcome (rejects on anything else). */
export async function liveWs(url: string, token: string, opts: UpgradeOptions = {}): Promise<Ws> {
  const c = await mustUpgrade(url, opts);
  c.send({ op: "hello", token });
  const first = await c.waitFor((f) => f.op === "welcome" || f.op === "error" || f.op === "redirect", 15_000);
  if (first.op !== "welcome") throw new Error(`hello refused: ${JSON.stringify(first)}`);
  return c;
}

export interface RawExchange {
  /** Everything the server sent. */
  readonly received: Buffer;
  /** The server closed the connection (rather than the wait running out). */
  readonly closedByServer: boolean;
}

/**
 * Writes `chunks` to a raw TCP connection (pausing `gapMs` between them), then reads until the
 * server closes or `waitMs` passes.
 */
export async function rawTcp(
  port: number,
  chunks: readonly (string | Buffer)[],
  opts: { gapMs?: number; waitMs?: number; localAddress?: string } = {},
): Promise<RawExchange> {
  const socket: Socket = connect({
    host: "127.0.0.1",
    port,
    ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
  });
  const parts: Buffer[] = [];
  let closed = false;
  socket.on("data", (d: Buffer) => parts.push(d));
  socket.on("error", () => {});
  const ended = new Promise<void>((done) =>
    socket.on("close", () => {
      closed = true;
      done();
    }),
  );
  await new Promise<void>((done, fail) => {
    socket.once("connect", () => done());
    socket.once("error", fail);
  });
  for (const chunk of chunks) {
    if (closed) break;
    socket.write(chunk);
    if (opts.gapMs !== undefined) await sleep(opts.gapMs);
  }
  await Promise.race([ended, sleep(opts.waitMs ?? 5_000)]);
  const closedByServer = closed;
  socket.destroy();
  return { received: Buffer.concat(parts), closedByServer };
}

/** A masked client WebSocket frame with the given first byte (FIN, RSV bits, opcode). */
export function clientFrame(firstByte: number, payload: Buffer): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  const header =
    len < 126
      ? Buffer.from([firstByte, 0x80 | len])
      : len < 65536
        ? Buffer.from([firstByte, 0x80 | 126, len >> 8, len & 0xff])
        : Buffer.concat([Buffer.from([firstByte, 0x80 | 127]), bigEndian64(len)]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([header, mask, masked]);
}

function bigEndian64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** The HTTP request that opens a WebSocket on `path`, as raw text. */
export function upgradeRequest(path: string, headers: Record<string, string> = {}): string {
  const all: Record<string, string> = {
    host: "127.0.0.1",
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
    ...headers,
  };
  return `GET ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;
}

/** Resident memory of a process now, and its peak so far (Linux /proc), in bytes. */
export function processMemory(pid: number): { rssBytes: number; peakRssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (m === null) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rssBytes: kb("VmRSS"), peakRssBytes: kb("VmHWM") };
}

/** GET /v1/stats of a gateway. */
export async function gatewayStats(http: string): Promise<Frame> {
  const res = await fetch(`${http}/v1/stats`);
  return (await res.json()) as Frame;
}

/** Polls until `pred` holds (or throws with the last value after `timeoutMs`). */
export async function eventually<T>(
  read: () => Promise<T>,
  pred: (v: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not reached; last value ${JSON.stringify(v)}`);
    await sleep(100);
  }
}
