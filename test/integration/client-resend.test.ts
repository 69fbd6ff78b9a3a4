/**
 * The SDK's at-least-once sends and its duplicate suppression against a real gateway process
 * on a real Kafka: a send whose ack is lost (a TCP proxy drops the gateway's bytes, then cuts the
 * connection) is written again with the same id after the reconnect; the log then holds two
 * copies, which a receiver with dedupe off sees and a default receiver shows once. And a token
 * provider's short-lived token is refreshed over the live socket, so the session outlives it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { RealtimeClient, type ClientOptions, type RealtimeEvent } from "../../client/client.ts";
import type { WebSocketCtor } from "../../client/connection.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { token } from "../helpers/ws-client.ts";

let t: TestKafka;
let gw: GatewayProc;
const clients: RealtimeClient[] = [];

/** A TCP proxy to the gateway whose gateway-to-client direction can be cut silently. */
interface Proxy {
  readonly port: number;
  /** Connections made so far, oldest first. */
  readonly pairs: { client: Socket; upstream: Socket; mute: boolean }[];
  close(): Promise<void>;
}

let proxy: Proxy;

async function startProxy(targetPort: number): Promise<Proxy> {
  const pairs: Proxy["pairs"] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream, mute: false };
    pairs.push(pair);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!pair.mute) client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    port: (server.address() as { port: number }).port,
    pairs,
    close: () =>
      new Promise<void>((done) => {
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        server.close(() => done());
      }),
  };
}

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(gatewayEnv(t.brokers, t.prefix, { RT_GATEWAY_NODE_ID: "gw-resend" }));
  await waitAllReady([gw]);
  proxy = await startProxy(gw.port);
});

after(async () => {
  for (const c of clients) c.close();
  await proxy?.close();
  await gw?.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

function client(options: Omit<ClientOptions, "WebSocket">, urls: string[] = []): RealtimeClient {
  const Counting: WebSocketCtor = class extends WebSocket {
    constructor(url: string) {
      super(url);
      urls.push(url);
    }
  };
  const c = new RealtimeClient({ backoff: { baseMs: 50, capMs: 500 }, ...options, WebSocket: Counting });
  clients.push(c);
  return c;
}

function collect(c: RealtimeClient): RealtimeEvent[] {
  const events: RealtimeEvent[] = [];
  c.on("event", (e) => events.push(e));
  return events;
}

async function until(what: string, pred: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

test("a send whose ack was lost is re-sent with the same id; the receiver shows it once", async () => {
  const sender = `snd-${t.prefix}`;
  const receiver = `rcv-${t.prefix}`;
  const deduped = client({ gatewayUrl: gw.url, token: () => token(receiver) });
  const raw = client({ gatewayUrl: gw.url, token: () => token(receiver), dedupeWindow: 0 });
  const seen = collect(deduped);
  const rawSeen = collect(raw);
  await deduped.connect();
  await raw.connect();

  const viaProxy = `ws://127.0.0.1:${proxy.port}/v1/ws`;
  const urls: string[] = [];
  const s = client({ gatewayUrl: viaProxy, token: () => token(sender) }, urls);
  await s.connect();
  assert.equal(proxy.pairs.length, 1);
  await s.send(`user:${receiver}`, "chat.message", { n: 0 }, { id: "before" });

  // The gateway writes the send and acks it, but the ack never reaches the sender.
  proxy.pairs[0]!.mute = true;
  const sent = s.send(`user:${receiver}`, "chat.message", { n: 1 }, { id: "lost-ack" });
  await until("the first copy in the log", () => rawSeen.some((e) => e.id === "lost-ack"));
  assert.equal(s.pendingSends, 1, "no ack yet");
  // The connection dies; the client reconnects and writes the send again, same id.
  proxy.pairs[0]!.client.destroy();
  const result = await sent;
  assert.equal(result.id, "lost-ack");
  assert.equal(urls.length, 2, `one reconnect: ${urls.join(", ")}`);

  await until("the second copy in the log", () => rawSeen.filter((e) => e.id === "lost-ack").length === 2);
  const copies = rawSeen.filter((e) => e.id === "lost-ack");
  assert.notEqual(copies[0]!.cursor, copies[1]!.cursor, "two records in Kafka");
  assert.equal(copies[1]!.cursor, result.cursor, "the ack names the second record");
  assert.deepEqual(copies[0]!.data, copies[1]!.data);

  await s.send(`user:${receiver}`, "chat.message", { n: 2 }, { id: "after" });
  await until("the next message", () => seen.some((e) => e.id === "after"));
  assert.deepEqual(
    seen.map((e) => e.id),
    ["before", "lost-ack", "after"],
    "the default receiver shows each message once, in order",
  );
  assert.equal(deduped.cursor, raw.cursor, "both receivers are at the same place in the log");
});

test("a short-lived token is refreshed over the live socket before it expires", async () => {
  const user = `ref-${t.prefix}`;
  const ttlS = 4;
  const issued: string[] = [];
  const urls: string[] = [];
  const c = client(
    {
      gatewayUrl: gw.url,
      token: async () => {
        const jwt = await token(user, { ttlS });
        issued.push(jwt);
        return jwt;
      },
    },
    urls,
  );
  const refreshed: (number | undefined)[] = [];
  c.on("token", (info) => refreshed.push(info.expMs));
  const errors: string[] = [];
  c.on("error", (e) => errors.push(e.code));
  const events = collect(c);
  await c.connect();
  const firstExpMs = JSON.parse(Buffer.from(issued[0]!.split(".")[1]!, "base64url").toString()).exp * 1000;
  await until("past the first token's exp", () => Date.now() > firstExpMs + 1500, 20_000);
  assert.ok(refreshed.length >= 1, "auth was acked at least once");
  assert.deepEqual(errors, [], "no error: the session never hit token_expired");
  assert.equal(urls.length, 1, "the same socket all along");
  assert.equal(c.state, "open");
  await c.send(`user:${user}`, "note", { ok: true }, { id: "still-live" });
  await until("the event", () => events.some((e) => e.id === "still-live"));
});
