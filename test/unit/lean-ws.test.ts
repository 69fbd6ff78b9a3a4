/**
 * The load generators' lean WebSocket client against real servers on loopback: `ws`'s server
 * (which insists on masked client frames and checks the close handshake) and raw TCP servers
 * that answer byte by byte or not at all.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { LeanWebSocket } from "../../loadtest/lean-ws.ts";

async function wsServer(onConnection: (ws: WebSocket) => void) {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
  wss.on("connection", onConnection);
  await once(wss, "listening");
  const { port } = wss.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/v1/ws`, close: () => new Promise((r) => wss.close(r)) };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/ws`;
}

function collect(ws: LeanWebSocket) {
  const messages: { text: string; binary: boolean }[] = [];
  ws.on("message", (data: Buffer, binary: boolean) => messages.push({ text: data.toString(), binary }));
  const closed = new Promise<{ code: number; reason: string }>((done) =>
    ws.once("close", (code: number, reason: Buffer) => done({ code, reason: reason.toString() })),
  );
  ws.on("error", () => {});
  return { messages, closed };
}

test("text and binary both ways, of every length form, and the close handshake from the client", async () => {
  const got: { data: string; binary: boolean }[] = [];
  let serverSawClose: { code: number; reason: string } | null = null;
  const srv = await wsServer((ws) => {
    ws.on("message", (data, binary) => {
      got.push({ data: data.toString(), binary });
      ws.send(data, { binary });
    });
    ws.on("close", (code, reason) => (serverSawClose = { code, reason: reason.toString() }));
  });
  const ws = new LeanWebSocket(srv.url);
  const c = collect(ws);
  await once(ws, "open");
  assert.equal(ws.readyState, ws.OPEN);
  const sizes = [0, 5, 125, 126, 65_535, 65_536, 200_000];
  for (const n of sizes) ws.send("x".repeat(n));
  ws.send(Buffer.from([1, 2, 3]));
  while (c.messages.length < sizes.length + 1) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    got.map((g) => g.data.length),
    [...sizes, 3],
    "the server unmasked every frame",
  );
  assert.deepEqual(
    c.messages.map((m) => m.text.length),
    [...sizes, 3],
  );
  assert.deepEqual(c.messages.at(-1), { text: "\x01\x02\x03", binary: true });
  ws.close(1000, "done");
  assert.equal(ws.readyState, ws.CLOSING);
  assert.deepEqual(await c.closed, { code: 1000, reason: "done" });
  assert.deepEqual(serverSawClose, { code: 1000, reason: "done" });
  assert.equal(ws.readyState, ws.CLOSED);
  await srv.close();
});

test("the server's close code and reason, a ping answered, a fragmented message joined", async () => {
  let pong: string | null = null;
  const srv = await wsServer((ws) => {
    ws.on("pong", (data) => (pong = data.toString()));
    ws.ping("are-you-there");
    ws.send("frag-", { fin: false });
    ws.send("ment", { fin: true });
    setTimeout(() => ws.close(4010, "token_expired"), 100);
  });
  const ws = new LeanWebSocket(srv.url);
  const c = collect(ws);
  assert.deepEqual(await c.closed, { code: 4010, reason: "token_expired" });
  assert.deepEqual(c.messages, [{ text: "frag-ment", binary: false }]);
  assert.equal(pong, "are-you-there");
  await srv.close();
});

test("frames split at every byte are reassembled", async () => {
  // A raw server: a correct 101, then two frames written one byte at a time.
  const server = createTcpServer((sock: Socket) => {
    sock.once("data", async (req) => {
      const key = /Sec-WebSocket-Key: (\S+)/i.exec(req.toString())![1]!;
      const accept = createHash("sha1")
        .update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        .digest("base64");
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
      sock.write(`Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
      const long = Buffer.alloc(300, 0x61);
      const bytes = Buffer.concat([
        Buffer.from([0x81, 5]),
        Buffer.from("hello"),
        Buffer.from([0x81, 126, 0x01, 0x2c]),
        long,
      ]);
      for (const b of bytes) {
        sock.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      sock.end();
    });
  });
  const ws = new LeanWebSocket(await listen(server));
  const c = collect(ws);
  assert.equal((await c.closed).code, 1006, "no close frame: abnormal closure");
  assert.deepEqual(
    c.messages.map((m) => m.text),
    ["hello", "a".repeat(300)],
  );
  server.close();
});

test("an HTTP error instead of the upgrade, a wrong accept key, and a server that never answers", async () => {
  const http = createHttpServer((_req, res) => res.writeHead(503).end("busy"));
  const refused = new LeanWebSocket(await listen(http));
  refused.on("error", () => {});
  const [status] = (await once(refused, "unexpected-response")) as [number];
  assert.equal(status, 503);
  http.close();

  const liar = createTcpServer((sock) =>
    sock.once("data", () => sock.write("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n")),
  );
  const fooled = new LeanWebSocket(await listen(liar));
  const [err] = (await once(fooled, "error")) as [Error];
  assert.match(err.message, /Sec-WebSocket-Accept/);
  liar.close();

  const silent = createTcpServer(() => {});
  const waiting = new LeanWebSocket(await listen(silent), { handshakeTimeout: 200 });
  const w = collect(waiting);
  const [timeout] = (await once(waiting, "error")) as [Error];
  assert.match(timeout.message, /timed out/);
  assert.equal((await w.closed).code, 1006);
  silent.close();
});

test("terminate drops the connection without a close frame", async () => {
  let serverCode = 0;
  const srv = await wsServer((ws) => ws.on("close", (code) => (serverCode = code)));
  const ws = new LeanWebSocket(srv.url);
  const c = collect(ws);
  await once(ws, "open");
  ws.terminate();
  assert.equal((await c.closed).code, 1006);
  while (serverCode === 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(serverCode, 1006, "the server saw an abnormal closure");
  await srv.close();
});

test("the browser's addEventListener, as the reference client uses it", async () => {
  const srv = await wsServer((ws) => {
    ws.send("text");
    ws.send(Buffer.from([7]), { binary: true });
    setTimeout(() => ws.close(4000, "bye"), 50);
  });
  const ws = new LeanWebSocket(srv.url);
  const seen: unknown[] = [];
  ws.addEventListener("open", () => seen.push("open"));
  ws.addEventListener("message", (e: { data: unknown }) => seen.push(e.data));
  const closed = new Promise((done) => ws.addEventListener("close", done));
  assert.deepEqual(await closed, { code: 4000, reason: "bye" });
  assert.deepEqual(seen, ["open", "text", Buffer.from([7])]);
  const errors: string[] = [];
  const dead = new LeanWebSocket("ws://127.0.0.1:1/v1/ws");
  const deadClosed = new Promise((done) => dead.addEventListener("close", done));
  dead.addEventListener("error", (e: { message: string }) => errors.push(e.message));
  assert.deepEqual(await deadClosed, { code: 1006, reason: "" });
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /ECONNREFUSED/);
  await srv.close();
});
