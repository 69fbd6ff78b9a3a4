/**
 * A lean WebSocket client (RFC 6455) for the load generators: one TCP (or TLS) socket, the
 * upgrade written by hand, frames parsed in place. The `ws` package builds an http.ClientRequest,
 * a Duplex and a receiver stream per connection; in a reconnect storm that was about a third of a
 * generator's CPU, and the generator's CPU is the machine's that the gateways need. This speaks
 * the same protocol to the gateway (masked client frames, close handshake, pong to ping) and
 * offers the part of `ws`'s interface the generators use: `open`, `message` (data, isBinary),
 * `close` (code, reason), `error`, `unexpected-response` (status), `send`, `close`, `terminate`;
 * and, for the reference client (client/), the browser's `addEventListener`.
 *
 * No extensions are offered (the gateway never compresses) and no subprotocol is asked for (the
 * gateway's default, rt.v1.json).
 */
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { EventEmitter } from "node:events";
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const HEADER_END = Buffer.from("\r\n\r\n");
/** Upgrade responses longer than this are not a gateway's. */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
/** Frames larger than this are refused (the gateway's own cap is far below). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export const READY = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;

export interface LeanOptions {
  readonly localAddress?: string;
  /** From the TCP connect to the 101; past it: `error`, then `close` 1006. */
  readonly handshakeTimeout?: number;
}

/** Mask keys come from a pool refilled in bulk: one getrandom per 1,024 frames, not per frame. */
const maskPool = Buffer.alloc(4096);
let maskAt = maskPool.length;
function maskKey(): Buffer {
  if (maskAt === maskPool.length) {
    randomFillSync(maskPool);
    maskAt = 0;
  }
  maskAt += 4;
  return maskPool.subarray(maskAt - 4, maskAt);
}

/** One client frame (FIN set, masked). */
function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = maskKey();
  mask.copy(out, head);
  const at = head + 4;
  for (let i = 0; i < len; i++) out[at + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

export class LeanWebSocket extends EventEmitter {
  readonly CONNECTING = READY.CONNECTING;
  readonly OPEN = READY.OPEN;
  readonly CLOSING = READY.CLOSING;
  readonly CLOSED = READY.CLOSED;
  readyState: number = READY.CONNECTING;
  readonly #socket: Socket;
  readonly #accept: string;
  #timer: NodeJS.Timeout | undefined;
  /** Bytes not parsed yet (the response head, then frames). */
  #pending: Buffer | null = null;
  #upgraded = false;
  /** Payload of a fragmented message so far, and its opcode. */
  #fragments: Buffer[] = [];
  #fragmentOp = 0;
  #closeSent = false;
  #closeCode = 1006;
  #closeReason: Buffer = Buffer.alloc(0);

  constructor(url: string, options: LeanOptions = {}) {
    super();
    const u = new URL(url);
    const secure = u.protocol === "wss:";
    const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(u.port || (secure ? 443 : 80));
    const key = randomBytes(16).toString("base64");
    this.#accept = createHash("sha1")
      .update(key + GUID)
      .digest("base64");
    const request =
      `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const local = options.localAddress === undefined ? {} : { localAddress: options.localAddress };
    this.#socket = secure
      ? tlsConnect({ host, port, servername: host, ...local })
      : tcpConnect({ host, port, ...local });
    this.#socket.setNoDelay(true);
    this.#socket.write(request);
    if (options.handshakeTimeout !== undefined) {
      this.#timer = setTimeout(
        () => this.#fail(new Error("Opening handshake has timed out")),
        options.handshakeTimeout,
      );
    }
    this.#socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on("error", (e) => this.#fail(e));
    this.#socket.on("close", () => this.#onSocketClose());
  }

  /**
   * The browser's way to listen, as the reference client does: `message` events carry `data`
   * (text for a text message, bytes for a binary one), `close` events `code` and `reason`.
   */
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: never) => void): void {
    const call = listener as (event: unknown) => void;
    if (type === "message")
      this.on("message", (data: Buffer, binary: boolean) => call({ data: binary ? data : data.toString() }));
    else if (type === "close")
      this.on("close", (code: number, reason: Buffer) => call({ code, reason: reason.toString() }));
    else if (type === "error") this.on("error", (e: Error) => call({ error: e, message: e.message }));
    else this.on("open", () => call({}));
  }

  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  send(data: string | Buffer): void {
    if (this.readyState !== READY.OPEN) return;
    const binary = typeof data !== "string";
    this.#socket.write(frame(binary ? OP.binary : OP.text, binary ? data : Buffer.from(data)));
  }

  /** Starts the close handshake; the `close` event follows the server's answer (or 1006). */
  close(code = 1000, reason = ""): void {
    if (this.readyState === READY.CONNECTING) {
      this.terminate();
      return;
    }
    if (this.readyState !== READY.OPEN) return;
    this.readyState = READY.CLOSING;
    this.#sendClose(code, reason);
  }

  /** Drops the connection at once, without a close frame. */
  terminate(): void {
    if (this.readyState === READY.CLOSED) return;
    if (this.readyState !== READY.CLOSING) this.readyState = READY.CLOSING;
    this.#socket.destroy();
  }

  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
    payload.writeUInt16BE(code, 0);
    payload.write(reason, 2);
    this.#socket.write(frame(OP.close, payload));
  }

  #fail(e: Error): void {
    if (this.readyState === READY.CLOSED) return;
    clearTimeout(this.#timer);
    this.emit("error", e);
    this.terminate();
  }

  #onSocketClose(): void {
    clearTimeout(this.#timer);
    if (this.readyState === READY.CLOSED) return;
    this.readyState = READY.CLOSED;
    this.emit("close", this.#closeCode, this.#closeReason);
  }

  #onData(chunk: Buffer): void {
    let buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = null;
    if (!this.#upgraded) {
      const end = buf.indexOf(HEADER_END);
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD_BYTES) this.#fail(new Error("upgrade response head too long"));
        else this.#pending = buf;
        return;
      }
      if (!this.#onResponseHead(buf.toString("latin1", 0, end))) return;
      buf = buf.subarray(end + HEADER_END.length);
    }
    let at = 0;
    while (this.readyState !== READY.CLOSED && buf.length - at >= 2) {
      const b0 = buf[at]!;
      const b1 = buf[at + 1]!;
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        const big = buf.readBigUInt64BE(at + 2);
        if (big > BigInt(MAX_FRAME_BYTES)) {
          this.#fail(new Error(`frame of ${big} bytes is over the ${MAX_FRAME_BYTES} cap`));
          return;
        }
        len = Number(big);
        head = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const start = at + head + (masked ? 4 : 0);
      if (buf.length < start + len) break;
      let payload = buf.subarray(start, start + len);
      if (masked) {
        const mask = buf.subarray(start - 4, start);
        payload = Buffer.from(payload);
        for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      }
      at = start + len;
      this.#onFrame((b0 & 0x80) !== 0, b0 & 0x0f, payload);
    }
    if (at < buf.length && this.readyState !== READY.CLOSED) this.#pending = buf.subarray(at);
  }

  #onResponseHead(head: string): boolean {
    const lines = head.split("\r\n");
    const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? "");
    const code = status === null ? 0 : Number(status[1]);
    if (code !== 101) {
      clearTimeout(this.#timer);
      this.emit("unexpected-response", code);
      this.terminate();
      return false;
    }
    const accept = lines
      .find((l) => l.toLowerCase().startsWith("sec-websocket-accept:"))
      ?.slice("sec-websocket-accept:".length)
      .trim();
    if (accept !== this.#accept) {
      this.#fail(new Error("Invalid Sec-WebSocket-Accept header"));
      return false;
    }
    clearTimeout(this.#timer);
    this.#upgraded = true;
    this.readyState = READY.OPEN;
    this.emit("open");
    return true;
  }

  #onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case OP.ping:
        if (this.readyState === READY.OPEN) this.#socket.write(frame(OP.pong, payload));
        return;
      case OP.pong:
        return;
      case OP.close:
        this.#closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.#closeReason = Buffer.from(payload.subarray(2));
        // Answer with the same code, then let the server close TCP (end() as a backstop).
        this.#sendClose(payload.length >= 2 ? this.#closeCode : 1000, "");
        this.readyState = READY.CLOSING;
        this.#socket.end();
        return;
      case OP.text:
      case OP.binary:
      case OP.continuation: {
        if (opcode !== OP.continuation) this.#fragmentOp = opcode;
        if (!fin || this.#fragments.length > 0) {
          this.#fragments.push(Buffer.from(payload));
          if (!fin) return;
          payload = Buffer.concat(this.#fragments);
          this.#fragments = [];
        }
        this.emit("message", payload, this.#fragmentOp === OP.binary);
        return;
      }
      default:
        this.#fail(new Error(`unknown opcode ${opcode}`));
    }
  }
}
