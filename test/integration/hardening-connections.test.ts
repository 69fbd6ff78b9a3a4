/**
 * Connection abuse against a real gateway process: the Origin allowlist (cross-site WebSocket
 * hijacking), connections per client address, the bound on sockets that are not live yet,
 * RT_MAX_CONNECTIONS counting sockets that have not sent hello, compression never negotiated,
 * and upgrade requests that never finish (slowloris on HTTP). Each test uses its own loopback
 * source address (127.0.0.X), and a bystander session must be served throughout.
 */
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type TestClient } from "../helpers/ws-client.ts";
import {
  eventually,
  gatewayStats,
  liveWs,
  mustUpgrade,
  rawTcp,
  upgrade,
  upgradeRequest,
  type Ws,
} from "../helpers/abuse.ts";

const ORIGIN = "https://app.example.com";
const PER_IP = 4;
const UNAUTHENTICATED = 6;
const MAX_CONNECTIONS = 10;

let t: TestKafka;
let gw: GatewayProc;
let bystander: { client: TestClient; user: string };
let sender: TestClient;
let seq = 0;
const opened: Ws[] = [];

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_GATEWAY_ALLOWED_ORIGINS: ORIGIN,
      RT_MAX_CONNECTIONS_PER_IP: String(PER_IP),
      RT_MAX_UNAUTHENTICATED: String(UNAUTHENTICATED),
      RT_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      RT_HELLO_TIMEOUT_MS: "3000",
    }),
  );
  await waitAllReady([gw]);
  const b = `bystander-${t.prefix}`;
  bystander = { client: (await connectUser(gw.url, await token(b))).client, user: b };
  sender = (await connectUser(gw.url, await token(`sender-${t.prefix}`))).client;
});

/** Each test closes what it opened and waits until the gateway has let go of it. */
afterEach(async () => {
  for (const c of opened.splice(0)) c.ws.terminate();
  await eventually(
    () => gatewayStats(gw.http),
    (s) => s.admission.sockets === 2 && s.admission.verifying === 0 && s.admission.clientAddresses === 1,
  );
  await bystanderStillServed();
});

after(async () => {
  bystander.client.close();
  sender.close();
  await gw.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

async function bystanderStillServed(): Promise<void> {
  const id = `b${seq++}`;
  sender.send({ op: "send", id, to: `user:${bystander.user}`, type: "check", data: null });
  await bystander.client.waitFor((f) => f.op === "event" && f.id === id);
}

async function keep(url: string, opts: Parameters<typeof mustUpgrade>[1]): Promise<Ws> {
  const c = await mustUpgrade(url, opts);
  opened.push(c);
  return c;
}

function refusal(r: Awaited<ReturnType<typeof upgrade>>): { status: number; error: string; message: string } {
  if (r.ok) {
    opened.push(r.c);
    assert.fail("the upgrade was accepted");
  }
  const body = JSON.parse(r.body) as { error: string; message: string };
  return { status: r.status, ...body };
}

test("Origin allowlist: the listed origin and native clients get in, other sites get 403", async () => {
  const localAddress = "127.0.0.10";
  const fromApp = await liveWs(gw.url, await token(`app-${t.prefix}`), { origin: ORIGIN, localAddress });
  opened.push(fromApp);
  const native = await liveWs(gw.url, await token(`native-${t.prefix}`), { localAddress });
  opened.push(native);
  for (const origin of [
    "https://evil.example.com",
    "https://app.example.com.evil.com",
    "http://app.example.com",
    "https://app.example.com:8443",
    "null",
  ]) {
    const r = refusal(await upgrade(gw.url, { origin, localAddress }));
    assert.equal(r.status, 403, origin);
    assert.equal(r.error, "forbidden_origin");
  }
  // A refused origin never reaches hello, even with a valid Authorization header.
  const withToken = refusal(
    await upgrade(gw.url, {
      origin: "https://evil.example.com",
      localAddress,
      headers: { authorization: `Bearer ${await token(`evil-${t.prefix}`)}` },
    }),
  );
  assert.equal(withToken.status, 403);
  const metrics = await (await fetch(`${gw.http}/metrics`)).text();
  assert.match(metrics, /rt_ws_upgrades_refused_total\{[^}]*rt_reason="forbidden_origin"[^}]*\} 6/);
});

test("per-address limit: the fifth socket from one address gets 429; other addresses are not affected", async () => {
  const a = "127.0.0.20";
  const first = await keep(gw.url, { localAddress: a });
  const live = await liveWs(gw.url, await token(`perip-${t.prefix}`), { localAddress: a });
  opened.push(live);
  for (let i = 2; i < PER_IP; i++) await keep(gw.url, { localAddress: a });
  // Live and not-yet-live sockets both count.
  const r = refusal(await upgrade(gw.url, { localAddress: a }));
  assert.equal(r.status, 429);
  assert.equal(r.error, "too_many_connections");
  // The same holds for an upgrade that carries a valid token.
  const bearer = refusal(
    await upgrade(gw.url, {
      localAddress: a,
      headers: { authorization: `Bearer ${await token(`perip2-${t.prefix}`)}` },
    }),
  );
  assert.equal(bearer.status, 429);
  await keep(gw.url, { localAddress: "127.0.0.21" });
  // A closed socket frees its slot.
  first.ws.terminate();
  await first.closed;
  await eventually(
    async () => (await upgrade(gw.url, { localAddress: a })).ok,
    (ok) => ok,
  ).catch((e: unknown) => assert.fail(`the freed slot was not reused: ${String(e)}`));
  live.send({ op: "ping", id: "p" });
  await live.waitFor((f) => f.op === "pong");
});

test("unauthenticated bound: past RT_MAX_UNAUTHENTICATED silent sockets, upgrades get 503 until hello deadlines free them", async () => {
  const idle: Ws[] = [];
  for (let i = 0; i < UNAUTHENTICATED; i++)
    idle.push(await keep(gw.url, { localAddress: `127.0.0.${30 + (i % 3)}` }));
  const r = refusal(await upgrade(gw.url, { localAddress: "127.0.0.33" }));
  assert.equal(r.status, 503);
  assert.equal(r.error, "at_capacity");
  assert.match(r.message, /waiting for hello/);
  // Sessions already live are not affected.
  await bystanderStillServed();
  // The hello deadline closes the silent sockets (4011), and the gateway admits again.
  const closes = await Promise.all(idle.map((c) => c.closed));
  assert.deepEqual(
    closes.map((c) => c.code),
    idle.map(() => 4011),
  );
  const after = await liveWs(gw.url, await token(`late-${t.prefix}`), { localAddress: "127.0.0.33" });
  opened.push(after);
});

test("RT_MAX_CONNECTIONS counts sockets that have not sent hello", async () => {
  // Two live sessions (bystander, sender) + three more live + five silent = 10 = the cap.
  for (let i = 0; i < 3; i++) {
    opened.push(
      await liveWs(gw.url, await token(`cap${i}-${t.prefix}`), { localAddress: `127.0.0.${40 + i}` }),
    );
  }
  for (let i = 0; i < 5; i++) await keep(gw.url, { localAddress: `127.0.0.${43 + (i % 2)}` });
  const stats = await gatewayStats(gw.http);
  assert.equal(stats.connections, 5, "five live sessions");
  assert.equal(stats.admission.sockets, MAX_CONNECTIONS);
  const r = refusal(await upgrade(gw.url, { localAddress: "127.0.0.45" }));
  assert.equal(r.status, 503);
  assert.equal(r.error, "at_capacity");
  assert.match(r.message, /full/);
});

test("compression is never negotiated, even when the client offers permessage-deflate", async () => {
  const offered = await liveWs(gw.url, await token(`deflate-${t.prefix}`), {
    perMessageDeflate: true,
    localAddress: "127.0.0.50",
  });
  opened.push(offered);
  assert.equal(offered.ws.extensions, "", "no extension was accepted");
  offered.send({ op: "ping", id: "z" });
  await offered.waitFor((f) => f.op === "pong" && f.id === "z");
});

test("slowloris on HTTP: upgrade requests that never finish, and silent TCP connections, are dropped", async () => {
  const port = gw.port;
  const partial = upgradeRequest("/v1/ws").slice(0, 60);
  const [silent, unfinished] = await Promise.all([
    rawTcp(port, [], { waitMs: 60_000, localAddress: "127.0.0.60" }),
    rawTcp(port, [partial], { waitMs: 60_000, localAddress: "127.0.0.61" }),
    bystanderStillServed(),
  ]);
  assert.ok(silent.closedByServer, "a silent TCP connection was closed by the gateway");
  assert.ok(unfinished.closedByServer, "an unfinished upgrade request was closed by the gateway");
  assert.equal(unfinished.received.length, 0, "nothing was answered to half a request");
});
