/**
 * The reconnecting client against real gateway processes on a real Kafka (gatewayUrl mode):
 * it follows a redirect to the user's gateway, its sends resolve on their acks, the recipient
 * gets each event once and in order; when its gateway is SIGTERMed the client reconnects by
 * itself (restart, after_hint) and is served by the survivor; a stored cursor resumes; a bad
 * token stops it for good; with a router, it lands on the owner without a redirect.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import {
  RealtimeClient,
  type ClientOptions,
  type ClosedInfo,
  type RealtimeEvent,
} from "../../client/client.ts";
import type { WebSocketCtor } from "../../client/connection.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { routerEnv, startRouterProc, type RouterProc } from "../helpers/router-proc.ts";
import { token } from "../helpers/ws-client.ts";

let t: TestKafka;
let gw: GatewayProc[] = [];
const routers: RouterProc[] = [];
const clients: RealtimeClient[] = [];

before(async () => {
  t = await testKafka();
  const env = gatewayEnv(t.brokers, t.prefix, { RT_RECONNECT_HINT_MAX_MS: "1000" });
  gw = [await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-a" })];
  gw.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-b" }));
  await waitAllReady(gw);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(routers.map((r) => r.proc.stop("SIGTERM", 20_000)));
  await Promise.all(gw.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

interface Observed {
  readonly client: RealtimeClient;
  /** Every URL a socket was opened to, in order. */
  readonly urls: string[];
  readonly events: RealtimeEvent[];
  readonly states: string[];
  readonly closed: ClosedInfo[];
}

/** The `ws` package's WebSocket, counting the sockets it opens. */
function countingWebSocket(urls: string[]): WebSocketCtor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url);
      urls.push(url);
    }
  };
}

function observe(options: Omit<ClientOptions, "WebSocket">): Observed {
  const urls: string[] = [];
  const client = new RealtimeClient({
    backoff: { baseMs: 100, capMs: 1000 },
    ...options,
    WebSocket: countingWebSocket(urls),
  });
  clients.push(client);
  const o: Observed = { client, urls, events: [], states: [], closed: [] };
  client.on("event", (e) => o.events.push(e));
  client.on("state", (s) => o.states.push(s));
  client.on("closed", (c) => o.closed.push(c));
  return o;
}

async function until(what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Where the client lands for `user` when it starts at the first gateway. */
async function landing(user: string): Promise<string> {
  const c = new RealtimeClient({ gatewayUrl: gw[0]!.url, token: await token(user), WebSocket });
  try {
    return (await c.connect()).url;
  } finally {
    c.close();
  }
}

test("A to B across gateways via the client; B's gateway is SIGTERMed and B comes back by itself", async () => {
  // Two users whose partitions different gateways own.
  const seen = new Map<string, string>();
  let pair: [string, string, string, string] | null = null;
  for (let i = 0; i < 40 && pair === null; i++) {
    const user = `cl-${t.prefix}${i}`;
    const url = await landing(user);
    for (const [other, otherUrl] of seen) if (otherUrl !== url) pair = [other, otherUrl, user, url];
    seen.set(user, url);
  }
  assert.ok(pair !== null, "all users landed on one gateway");
  const [alice, aliceUrl, bob, bobUrl] = pair;
  const survivor = gw.find((g) => g.url === aliceUrl)!;
  const doomed = gw.find((g) => g.url === bobUrl)!;

  const a = observe({ gatewayUrl: aliceUrl, token: () => token(alice) });
  // B starts at Alice's gateway, which does not own Bob's partition: it redirects.
  const b = observe({ gatewayUrl: aliceUrl, token: () => token(bob) });
  await a.client.connect();
  const welcomeB = await b.client.connect();
  assert.equal(welcomeB.user, bob);
  assert.equal(welcomeB.url, bobUrl);
  assert.deepEqual(b.urls, [aliceUrl, bobUrl], "one redirect");

  const n = 50;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => a.client.send(`user:${bob}`, "chat.message", { i }, { id: `m${i}` })),
  );
  const partition = partitionForKey(bob, 4);
  for (const r of results) assert.match(r.cursor ?? "", new RegExp(`^[0-9a-z]{1,16}:${partition}:\\d+$`));
  await until(`${n} events at B`, () => b.events.length >= n, 20_000);
  await sleep(300);
  assert.deepEqual(
    b.events.map((e) => e.id),
    Array.from({ length: n }, (_, i) => `m${i}`),
    "each once, in order",
  );
  assert.deepEqual(b.events[7]!.data, { i: 7 });
  assert.equal(b.events[0]!.from, alice);
  assert.equal(b.client.cursor, results[n - 1]!.cursor, "B's cursor is the last event's");

  // Deploy: B's gateway drains and closes B with restart + a hint; B reconnects on its own.
  assert.equal(await doomed.proc.stop("SIGTERM", 20_000), 0, doomed.proc.output());
  gw = gw.filter((g) => g !== doomed);
  await until(
    "B open again on the survivor",
    () => b.client.state === "open" && b.client.welcome?.url === survivor.url,
    60_000,
  );
  console.log(`# B after the drain: sockets ${b.urls.join(" -> ")}; states ${b.states.join(" -> ")}`);
  assert.ok(b.states.includes("reconnecting"), JSON.stringify(b.states));
  assert.deepEqual(b.closed, [], "B never stopped");
  assert.equal(a.client.state, "open");

  const more = 20;
  await Promise.all(
    Array.from({ length: more }, (_, i) =>
      a.client.send(`user:${bob}`, "chat.message", { i }, { id: `n${i}` }),
    ),
  );
  await until(`${more} more events at B`, () => b.events.length >= n + more, 20_000);
  await sleep(300);
  const ids = b.events.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, `no duplicates: ${ids.join(",")}`);
  assert.deepEqual(
    ids.filter((id) => id.startsWith("n")),
    Array.from({ length: more }, (_, i) => `n${i}`),
    "the new ones arrive, in order",
  );
  const offsets = b.events.map((e) => BigInt(e.cursor!.split(":")[2]!));
  for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]! > offsets[i - 1]!, "cursors grow");
});

test("a stored cursor resumes: what was sent while the client was away arrives once", async () => {
  const sender = `rs-a-${t.prefix}`;
  const receiver = `rs-b-${t.prefix}`;
  const url = gw[0]!.url;
  const a = observe({ gatewayUrl: url, token: () => token(sender) });
  const first = observe({ gatewayUrl: url, token: () => token(receiver) });
  await a.client.connect();
  await first.client.connect();
  const send = (ids: string[]) =>
    Promise.all(ids.map((id) => a.client.send(`user:${receiver}`, "t", id, { id })));
  await send(["r0", "r1", "r2"]);
  await until("3 events", () => first.events.length === 3, 20_000);
  const stored = first.client.cursor;
  assert.ok(stored !== undefined);
  first.client.close();

  await send(["r3", "r4", "r5", "r6"]);
  const again = observe({ gatewayUrl: url, token: () => token(receiver), cursor: stored });
  const welcome = await again.client.connect();
  assert.equal(welcome.recovered, true, JSON.stringify(welcome));
  await until("the 4 missed events", () => again.events.length >= 4, 20_000);
  await send(["r7"]);
  await until("a live one after them", () => again.events.length >= 5, 20_000);
  await sleep(300);
  assert.deepEqual(
    again.events.map((e) => e.id),
    ["r3", "r4", "r5", "r6", "r7"],
  );
});

test("a bad token stops the client with unauthorized, and it does not reconnect", async () => {
  const bad = await token(`bad-${t.prefix}`, { secret: "another-secret-that-is-at-least-32-bytes!" });
  const c = observe({ gatewayUrl: gw[0]!.url, token: bad });
  await assert.rejects(c.client.connect(), { code: "unauthorized", retriable: false });
  assert.equal(c.client.state, "closed");
  await sleep(1500);
  assert.equal(c.urls.length, 1, `one attempt only: ${c.urls.join(", ")}`);
  assert.equal(c.closed.length, 1);
  assert.equal(c.closed[0]!.reason, "unauthorized");
  assert.equal(c.closed[0]!.code, 4001);
});

test("router mode: the client asks /v1/connect and lands on the owner without a redirect", async () => {
  const router = await startRouterProc(routerEnv(t.brokers, t.prefix));
  routers.push(router);
  const user = `rt-${t.prefix}`;
  const c = observe({ routerUrl: router.url, token: () => token(user) });
  const welcome = await c.client.connect();
  assert.equal(welcome.url, gw[0]!.url);
  assert.deepEqual(c.urls, [gw[0]!.url]);
  const sent = await c.client.send(`user:${user}`, "note", { x: 1 });
  await until("the event", () => c.events.length === 1, 20_000);
  assert.equal(c.events[0]!.cursor, sent.cursor);

  const bad = observe({ routerUrl: router.url, token: "not-a-jwt" });
  await assert.rejects(bad.client.connect(), { code: "unauthorized" });
  assert.deepEqual(bad.urls, [], "no socket was opened");
  assert.equal(bad.closed[0]!.reason, "unauthorized");
});
