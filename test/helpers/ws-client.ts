/**
 * A minimal protocol client for tests, on the `ws` package: real sockets, frames collected
 * in order, waits bounded by timeouts. Redirects are followed like a real client would.
 *
 * It speaks either encoding of the protocol: JSON text frames, or with `encoding: "avro"` the
 * rt.v1.avro subprotocol (frame objects are Avro-encoded on send and decoded on receipt, so a
 * test reads the same objects either way). RT_TEST_ENCODING=avro makes Avro the default, which
 * is how the parity test runs the protocol tests again over the binary encoding.
 */
import { SignJWT } from "jose";
import WebSocket from "ws";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClientFrame } from "../../schemas/frames.ts";
import { AVRO_SUBPROTOCOL, decodeServerFrameAvro, encodeClientFrameAvro } from "../../schemas/frame-codec.ts";

export type Encoding = "json" | "avro";

/** The encoding clients use unless told otherwise (RT_TEST_ENCODING, default json). */
export const DEFAULT_ENCODING: Encoding = process.env.RT_TEST_ENCODING === "avro" ? "avro" : "json";

// Frames are whatever the server sent; tests read fields dynamically.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>;

export const TEST_SECRET = "test-secret-that-is-at-least-32-bytes-long!";

export async function token(
  sub: string,
  opts: {
    secret?: string;
    ttlS?: number;
    audience?: string;
    issuer?: string;
    claims?: Record<string, unknown>;
  } = {},
): Promise<string> {
  let jwt = new SignJWT(opts.claims ?? {})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (opts.ttlS ?? 3600));
  if (opts.audience !== undefined) jwt = jwt.setAudience(opts.audience);
  if (opts.issuer !== undefined) jwt = jwt.setIssuer(opts.issuer);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? TEST_SECRET));
}

export class TestClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #closedWith: { code: number; reason: string } | null = null;

  /** Binary messages that did not decode as server frames (Avro) or any binary on JSON. */
  readonly undecodable: Buffer[] = [];

  private constructor(
    readonly url: string,
    readonly ws: WebSocket,
  ) {
    ws.on("message", (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!isBinary) {
        this.frames.push(JSON.parse(bytes.toString()) as Frame);
        return;
      }
      const decoded = ws.protocol === AVRO_SUBPROTOCOL ? decodeServerFrameAvro(bytes) : null;
      if (decoded?.ok === true) this.frames.push(decoded.frame as Frame);
      else this.undecodable.push(bytes);
    });
    this.closed = new Promise((done) =>
      ws.on("close", (code, reason) => {
        this.#closedWith = { code, reason: reason.toString() };
        done(this.#closedWith);
      }),
    );
  }

  /**
   * `protocols` (the raw Sec-WebSocket-Protocol offer) overrides the one `encoding` implies;
   * frames are then read as the server's chosen subprotocol says.
   */
  static async open(
    url: string,
    opts: { headers?: Record<string, string>; protocols?: string[]; encoding?: Encoding } = {},
  ) {
    const encoding = opts.encoding ?? DEFAULT_ENCODING;
    const offer = opts.protocols ?? (encoding === "avro" ? [AVRO_SUBPROTOCOL] : []);
    const ws = new WebSocket(url, offer, { headers: opts.headers ?? {} });
    const client = new TestClient(url, ws);
    await new Promise<void>((done, fail) => {
      ws.once("open", () => done());
      ws.once("error", fail);
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () =>
          fail(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })),
        );
      });
    });
    return client;
  }

  get isClosed(): { code: number; reason: string } | null {
    return this.#closedWith;
  }

  /**
   * A frame object goes in the client's encoding; a string always goes as a text message (raw
   * bytes for bad-input tests). Avro can only carry frames that fit the schema: others throw.
   */
  send(frame: Frame | string): void {
    if (typeof frame === "string") this.ws.send(frame);
    else if (this.ws.protocol === AVRO_SUBPROTOCOL) this.ws.send(encodeClientFrameAvro(frame as ClientFrame));
    else this.ws.send(JSON.stringify(frame));
  }

  /** One binary message, as is. */
  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** The first frame (from index `from`) matching `pred`. */
  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000, from = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.slice(from).find(pred);
      if (f !== undefined) return f;
      if (Date.now() > deadline) {
        throw new Error(`timed out; frames so far: ${JSON.stringify(this.frames).slice(0, 2000)}`);
      }
      if (this.#closedWith !== null && this.frames.slice(from).find(pred) === undefined) {
        throw new Error(
          `socket closed ${JSON.stringify(this.#closedWith)}; frames: ${JSON.stringify(this.frames).slice(0, 2000)}`,
        );
      }
      await sleep(10);
    }
  }

  async waitForCount(pred: (f: Frame) => boolean, n: number, timeoutMs = 20_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.frames.filter(pred);
      if (got.length >= n) return got;
      if (Date.now() > deadline) throw new Error(`timed out with ${got.length}/${n} frames`);
      await sleep(10);
    }
  }

  close(): void {
    if (this.#closedWith === null) this.ws.close();
  }
}

/**
 * hello on `url`, following redirects (at most 3 hops). Resolves with the live client and
 * its welcome, or rejects with the close it got.
 */
export async function connectUser(
  url: string,
  jwt: string,
  opts: { cursor?: string; encoding?: Encoding } = {},
): Promise<{ client: TestClient; welcome: Frame; hops: string[] }> {
  const hops: string[] = [];
  let target = url;
  for (let i = 0; i < 4; i++) {
    hops.push(target);
    const client = await TestClient.open(
      target,
      opts.encoding === undefined ? {} : { encoding: opts.encoding },
    );
    client.send({ op: "hello", token: jwt, ...(opts.cursor === undefined ? {} : { cursor: opts.cursor }) });
    const first = await client.waitFor(
      (f) => f.op === "welcome" || f.op === "redirect" || f.op === "error",
      15_000,
    );
    if (first.op === "welcome") return { client, welcome: first, hops };
    if (first.op === "redirect") {
      await client.closed;
      target = first.url as string;
      continue;
    }
    const closed = await client.closed;
    throw Object.assign(new Error(`hello refused: ${JSON.stringify(first)} ${JSON.stringify(closed)}`), {
      frame: first,
      closed,
    });
  }
  throw new Error(`too many redirects: ${hops.join(" -> ")}`);
}
