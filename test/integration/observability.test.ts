/**
 * Observability on real processes: two gateways and a router export spans (OTLP/HTTP JSON) to a
 * receiver in this test. One message from a user on gateway 1 to a user on gateway 2 is one
 * trace (receive → produce → consume → deliver) across both processes, under the client's own
 * traceparent when it sends one; /metrics counts a known workload; log lines written inside a
 * span carry its ids; no token and no payload reaches any log line at debug level.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { gunzipSync } from "node:zlib";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { askRouter, routerEnv, startRouterProc, type RouterProc } from "../helpers/router-proc.ts";
import { connectUser, TestClient, token, type Frame } from "../helpers/ws-client.ts";

interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes?: { key: string; value: Record<string, unknown> }[];
  /** service.instance.id of the process that exported it. */
  instance: string;
}

const KIND = { INTERNAL: 1, SERVER: 2, PRODUCER: 4, CONSUMER: 5 } as const;

/** An OTLP/HTTP receiver for JSON trace exports, on a free port. */
async function otlpReceiver(): Promise<{ server: Server; url: string; spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      if (req.url === "/v1/traces") {
        const doc = JSON.parse(body.toString("utf8")) as {
          resourceSpans?: {
            resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
            scopeSpans?: { spans?: OtlpSpan[] }[];
          }[];
        };
        for (const rs of doc.resourceSpans ?? []) {
          const instance =
            rs.resource?.attributes?.find((a) => a.key === "service.instance.id")?.value.stringValue ?? "";
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? []) spans.push({ ...s, instance });
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}`, spans };
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes?.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
}

let t: TestKafka;
let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
let gw: GatewayProc[] = [];
let router: RouterProc;
const clients: TestClient[] = [];

before(async () => {
  receiver = await otlpReceiver();
  t = await testKafka();
  const otel = {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "100",
    RT_LOG_LEVEL: "debug",
  };
  const env = gatewayEnv(t.brokers, t.prefix, otel);
  gw = [await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-1" })];
  gw.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-2" }));
  await waitAllReady(gw);
  router = await startRouterProc(routerEnv(t.brokers, t.prefix, otel));
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all([router?.proc.stop("SIGTERM", 20_000), ...gw.map((g) => g.proc.stop("SIGTERM", 20_000))]);
  await t.cleanup();
  receiver.server.close();
});

async function connect(user: string, via: string, cursor?: string) {
  const r = await connectUser(via, await token(user), cursor === undefined ? {} : { cursor });
  clients.push(r.client);
  return r;
}

/** A user whose partition gateway `i` owns (by asking the router). */
async function userOn(i: number, label: string): Promise<string> {
  for (let n = 0; n < 100; n++) {
    const user = `${label}-${t.prefix}${n}`;
    const a = await askRouter(router, await token(user));
    if (a.status === 200 && a.body.url === gw[i]!.url) return user;
  }
  throw new Error(`no user lands on ${gw[i]!.url}`);
}

async function spansOf(traceId: string, atLeast: number, timeoutMs = 15_000): Promise<OtlpSpan[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = receiver.spans.filter((s) => s.traceId === traceId);
    if (got.length >= atLeast) return got;
    if (Date.now() > deadline) {
      throw new Error(`trace ${traceId}: ${got.length} spans: ${JSON.stringify(got.map((s) => s.name))}`);
    }
    await sleep(50);
  }
}

/** The four spans of one event, checked for shape and parentage. */
function checkChain(spans: OtlpSpan[], topic: string) {
  const one = (name: string) => {
    const found = spans.filter((s) => s.name === name);
    assert.equal(found.length, 1, `one ${name} span: ${JSON.stringify(spans.map((s) => s.name))}`);
    return found[0]!;
  };
  const receive = one("rt.ws.receive");
  const produce = one(`send ${topic}`);
  const process = one(`process ${topic}`);
  const deliver = one("rt.ws.deliver");
  assert.equal(receive.kind, KIND.SERVER);
  assert.equal(produce.kind, KIND.PRODUCER);
  assert.equal(process.kind, KIND.CONSUMER);
  assert.equal(deliver.kind, KIND.INTERNAL);
  assert.equal(produce.parentSpanId, receive.spanId);
  assert.equal(process.parentSpanId, produce.spanId, "the consume is a child of the produce (Kafka header)");
  assert.equal(deliver.parentSpanId, process.spanId);
  assert.equal(receive.instance, "gw-1");
  assert.equal(produce.instance, "gw-1");
  assert.equal(process.instance, "gw-2");
  assert.equal(deliver.instance, "gw-2");
  assert.equal(attr(produce, "messaging.system"), "kafka");
  assert.equal(attr(process, "messaging.operation.name"), "process");
  assert.equal(attr(deliver, "rt.delivery.ok"), true);
  assert.equal(attr(produce, "rt.cursor"), attr(deliver, "rt.cursor"), "ack cursor = delivered cursor");
  return { receive, produce, process, deliver };
}

let traced: { traceId: string; receive: OtlpSpan; deliver: OtlpSpan } | null = null;

test("one message from gateway 1 to gateway 2 is one trace: receive, produce, consume, deliver", async () => {
  const alice = await userOn(0, "alice");
  const bob = await userOn(1, "bob");
  const a = await connect(alice, gw[0]!.url);
  const b = await connect(bob, gw[1]!.url);
  assert.equal(a.hops.length, 1);
  assert.equal(b.hops.length, 1);

  // With the client's own traceparent: it is the parent of the receive span.
  const traceId = randomBytes(16).toString("hex");
  const clientSpan = randomBytes(8).toString("hex");
  a.client.send({
    op: "send",
    id: "t1",
    to: `user:${bob}`,
    type: "chat.message",
    data: { text: "traced" },
    traceparent: `00-${traceId}-${clientSpan}-01`,
  });
  const ack = await a.client.waitFor((f) => f.op === "ack" && f.id === "t1");
  assert.equal(ack.ok, true);
  const event = await b.client.waitFor((f) => f.op === "event" && f.id === "t1");
  assert.equal(event.cursor, ack.cursor);
  const spans = await spansOf(traceId, 4);
  const chain = checkChain(spans, t.names.deliveries);
  assert.equal(chain.receive.parentSpanId, clientSpan, "the client's traceparent is the parent");
  assert.equal(attr(chain.receive, "rt.cursor"), ack.cursor);
  assert.equal(attr(chain.deliver, "user.id"), bob);
  traced = { traceId, receive: chain.receive, deliver: chain.deliver };

  // Without one: the receive span starts the trace, still one trace over both gateways.
  const before = receiver.spans.length;
  a.client.send({ op: "send", id: "t2", to: `user:${bob}`, type: "chat.message", data: { text: "x" } });
  await b.client.waitFor((f) => f.op === "event" && f.id === "t2");
  let root: OtlpSpan | undefined;
  for (let i = 0; i < 200 && root === undefined; i++) {
    root = receiver.spans
      .slice(before)
      .find((s) => s.name === "rt.ws.receive" && attr(s, "rt.message.id") === "t2");
    if (root === undefined) await sleep(50);
  }
  assert.ok(root !== undefined, "receive span of t2 exported");
  assert.equal(root.parentSpanId ?? "", "", "a root span");
  checkChain(await spansOf(root.traceId, 4), t.names.deliveries);

  // An unsampled client traceparent: the decision holds on both gateways, nothing is exported.
  const unsampled = randomBytes(16).toString("hex");
  a.client.send({
    op: "send",
    id: "t3",
    to: `user:${bob}`,
    type: "chat.message",
    data: { text: "not traced" },
    traceparent: `00-${unsampled}-${randomBytes(8).toString("hex")}-00`,
  });
  await b.client.waitFor((f) => f.op === "event" && f.id === "t3");
  await sleep(600);
  assert.deepEqual(
    receiver.spans.filter((s) => s.traceId === unsampled).map((s) => s.name),
    [],
    "an unsampled trace exports nothing",
  );
});

test("a room message is one trace: receive, produce, the router's fanout, and each member's consume and deliver", async () => {
  const claims = { claims: { rt_rooms: ["obs-*"] } };
  const alice = await userOn(0, "ralice");
  const bob = await userOn(1, "rbob");
  const a = await connectUser(gw[0]!.url, await token(alice, claims));
  const b = await connectUser(gw[1]!.url, await token(bob, claims));
  clients.push(a.client, b.client);
  const room = `obs-${t.prefix}`;
  for (const [c, id] of [
    [a.client, "ja"],
    [b.client, "jb"],
  ] as const) {
    c.send({ op: "join", id, room });
    assert.equal((await c.waitFor((f) => f.op === "ack" && f.id === id)).ok, true);
  }
  // A join is applied when its member gets the rt.joined event.
  for (const c of [a.client, b.client]) await c.waitFor((f) => f.type === "rt.joined", 30_000);

  const traceId = randomBytes(16).toString("hex");
  a.client.send({
    op: "send",
    id: "rm1",
    to: `room:${room}`,
    type: "chat.message",
    data: { text: "to the room" },
    traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
  });
  assert.equal((await a.client.waitFor((f) => f.op === "ack" && f.id === "rm1")).ok, true);
  for (const c of [a.client, b.client]) await c.waitFor((f) => f.op === "event" && f.id === "rm1", 30_000);
  // receive, produce, fanout, and process + deliver for each of the two members.
  const spans = await spansOf(traceId, 7);
  const named = (name: string) => spans.filter((s) => s.name === name);
  const [receive] = named("rt.ws.receive");
  const [produce] = named(`send ${t.names.roomEvents}`);
  const [fanout] = named(`fanout ${t.names.roomEvents}`);
  assert.ok(receive !== undefined && produce !== undefined && fanout !== undefined, JSON.stringify(spans));
  assert.equal(produce.parentSpanId, receive.spanId);
  assert.equal(fanout.kind, KIND.CONSUMER);
  assert.equal(fanout.parentSpanId, produce.spanId, "the fanout is a child of the room event's produce");
  assert.ok(!["gw-1", "gw-2"].includes(fanout.instance), `exported by the router, not ${fanout.instance}`);
  assert.equal(attr(fanout, "rt.room"), room);
  assert.equal(attr(fanout, "rt.fanout.recipients"), 2);
  const processes = named(`process ${t.names.deliveries}`);
  assert.equal(processes.length, 2, "one consume per member's delivery record");
  for (const p of processes)
    assert.equal(p.parentSpanId, fanout.spanId, "the deliveries carry the fanout's context");
  assert.deepEqual(processes.map((p) => p.instance).sort(), ["gw-1", "gw-2"]);
  const delivers = named("rt.ws.deliver");
  assert.deepEqual(delivers.map((d) => attr(d, "user.id")).sort(), [alice, bob].sort());
  for (const d of delivers) assert.ok(processes.some((p) => p.spanId === d.parentSpanId));

  // The router counts the fanout: two joins (each one rt.joined notice) and one message to two members.
  const m = await scrape(router.url);
  assert.equal(sum(m, "rt_room_fanout_events_total"), 3);
  assert.equal(sum(m, "rt_room_fanout_deliveries_total"), 4);
  assert.equal(sum(m, "rt_room_fanout_refused_total"), 0);
  assert.ok(sum(m, "rt_room_fanout_transactions_total") >= 1);
  assert.ok(sum(m, "rt_room_fanout_partitions_owned") >= 1);
});

test("log lines written inside a span carry its trace and span ids", async () => {
  assert.ok(traced !== null, "needs the trace test");
  const lines = (out: string) =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const acked = lines(gw[0]!.proc.output()).find(
    (l) => l.msg === "send acked" && l.trace_id === traced!.traceId,
  );
  assert.ok(acked !== undefined, "gateway 1 logged the ack inside the trace");
  assert.equal(acked.span_id, traced.receive.spanId);
  const delivered = lines(gw[1]!.proc.output()).find(
    (l) => l.msg === "event delivered" && l.trace_id === traced!.traceId,
  );
  assert.ok(delivered !== undefined, "gateway 2 logged the delivery inside the trace");
  assert.equal(delivered.span_id, traced.deliver.spanId);
  // Outside any span, no ids.
  const listening = lines(gw[0]!.proc.output()).find((l) => l.msg === "gateway listening");
  assert.equal(listening?.trace_id, undefined);
});

/** `name{labels} value` samples of a Prometheus text exposition. */
async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of the samples of `name` whose labels include every `labels` pair. */
function sum(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, v] of m) {
    const brace = key.indexOf("{");
    const metric = brace < 0 ? key : key.slice(0, brace);
    if (metric !== name) continue;
    if (Object.entries(labels).every(([k, val]) => key.includes(`${k}="${val}"`))) total += v;
  }
  return total;
}

test("/metrics counts a known workload", async () => {
  const carol = await userOn(0, "carol");
  const dave = await userOn(1, "dave");
  const [g1, g2] = [gw[0]!.http, gw[1]!.http];
  const before1 = await scrape(g1);
  const before2 = await scrape(g2);
  const routerBefore = await scrape(router.url);
  const c = await connect(carol, g1.replace("http", "ws") + "/v1/ws");
  const d = await connect(dave, g2.replace("http", "ws") + "/v1/ws");
  const n = 25;
  for (let i = 0; i < n; i++)
    c.client.send({ op: "send", id: `w${i}`, to: `user:${dave}`, type: "t", data: i });
  await c.client.waitForCount((f) => f.op === "ack" && f.ok === true, n);
  await d.client.waitForCount((f) => f.op === "event", n);
  // One refused token, one resume from a cursor, one router answer of each kind.
  const bad = await TestClient.open(`${g1.replace("http", "ws")}/v1/ws`);
  bad.send({ op: "hello", token: await token(carol, { secret: "another-secret-of-at-least-32-bytes!!" }) });
  await bad.closed;
  const lastCursor = d.client.frames.filter((f: Frame) => f.op === "event")[n - 2]!.cursor as string;
  const resumed = await connect(dave, g2.replace("http", "ws") + "/v1/ws", lastCursor);
  assert.equal(resumed.welcome.recovered, true);
  await resumed.client.waitFor((f) => f.op === "event" && f.id === `w${n - 1}`);
  assert.equal((await askRouter(router, await token(carol))).status, 200);
  assert.equal((await askRouter(router, "not-a-token")).status, 401);
  await sleep(200);

  const after1 = await scrape(g1);
  const after2 = await scrape(g2);
  const routerAfter = await scrape(router.url);
  const delta = (a: Map<string, number>, b: Map<string, number>, name: string, labels = {}) =>
    sum(a, name, labels) - sum(b, name, labels);

  assert.equal(delta(after1, before1, "rt_sends_total", { rt_result: "ok" }), n);
  assert.equal(delta(after1, before1, "rt_ws_frames_received_total", { rt_op: "send" }), n);
  assert.equal(delta(after1, before1, "rt_ws_frames_sent_total", { rt_op: "ack" }), n);
  assert.equal(delta(after1, before1, "messaging_client_sent_messages_total"), n);
  assert.equal(delta(after1, before1, "rt_send_duration_count"), n);
  assert.ok(delta(after1, before1, "messaging_client_operation_duration_count") >= 1);
  assert.equal(
    delta(after1, before1, "rt_auth_failures_total", {
      rt_auth_stage: "hello",
      rt_auth_reason: "bad_signature",
    }),
    1,
  );
  // dave's first socket got n events live; the resumed one got the last one again, from a replay.
  assert.equal(delta(after2, before2, "rt_ws_frames_sent_total", { rt_op: "event" }), n + 1);
  assert.equal(delta(after2, before2, "rt_delivery_latency_count", { rt_delivery_mode: "live" }), n);
  assert.equal(delta(after2, before2, "rt_delivery_latency_count", { rt_delivery_mode: "replay" }), 1);
  assert.equal(delta(after2, before2, "rt_resumes_total", { rt_resume_outcome: "recovered" }), 1);
  // The cursor is recent: served from the resume window, with no catch-up seek.
  assert.equal(delta(after2, before2, "rt_resume_window_hits_total"), 1);
  assert.equal(delta(after2, before2, "rt_catchup_scans_total"), 0);
  assert.ok(sum(after2, "rt_resume_window_size") > 0, "the window holds dave's events");
  assert.ok(delta(after2, before2, "messaging_client_consumed_messages_total") >= n);
  // Open sockets now: on gateway 2, dave twice (plus the earlier test's bob); exact for carol's gateway.
  const liveOn = (m: Map<string, number>) => sum(m, "rt_ws_connections", { rt_state: "live" });
  assert.equal(liveOn(after1), liveOn(before1) + 1);
  assert.equal(liveOn(after2), liveOn(before2) + 2);
  assert.ok(sum(after2, "rt_partitions_owned") >= 1);
  assert.ok(
    [...after2.keys()].some((k) => k.startsWith("rt_consumer_lag{")),
    "lag per owned partition",
  );
  assert.equal(sum(after2, "rt_consumer_lag"), 0, "all caught up");

  const answers = (m: Map<string, number>, status: string) =>
    sum(m, "http_server_request_duration_count", { http_response_status_code: status });
  assert.equal(answers(routerAfter, "200") - answers(routerBefore, "200"), 1);
  assert.equal(answers(routerAfter, "401") - answers(routerBefore, "401"), 1);
  assert.equal(sum(routerAfter, "rt_router_gateways"), 2);
  assert.ok(routerAfter.has("rt_router_connect_held"), "held requests are reported");
  assert.equal(sum(routerAfter, "rt_router_connect_held"), 0, "nothing is held in a stable group");
});

test("no token and no payload reaches a log line, even at debug level", async () => {
  const user = await userOn(0, "erin");
  const ws = `${gw[0]!.http.replace("http", "ws")}/v1/ws`;
  const good = await token(user);
  const expired = await token(user, { ttlS: -60 });
  const forged = await token(user, { secret: "another-secret-of-at-least-32-bytes!!" });
  const marker = `PAYLOAD-${randomBytes(6).toString("hex")}`;
  // hello with good and bad tokens, a refresh, a token on the upgrade, tokens at the router.
  const { client } = await connect(user, ws);
  client.send({ op: "auth", id: "a1", token: forged });
  client.send({ op: "auth", id: "a2", token: good });
  client.send({ op: "send", id: "p1", to: `user:${user}`, type: "t", data: { secret_text: marker } });
  await client.waitFor((f) => f.op === "event" && f.id === "p1");
  for (const jwt of [expired, forged, "garbage.token.value"]) {
    const c = await TestClient.open(ws);
    c.send({ op: "hello", token: jwt });
    await c.closed;
  }
  const up = await TestClient.open(ws, { headers: { authorization: `Bearer ${good}` } });
  await up.waitFor((f) => f.op === "welcome");
  up.close();
  await TestClient.open(ws, { headers: { authorization: `Bearer ${forged}` } }).catch(() => null);
  await askRouter(router, good);
  await askRouter(router, forged, { query: true });
  await sleep(500);
  const output = [gw[0]!.proc.output(), gw[1]!.proc.output(), router.proc.output()].join("\n");
  assert.match(output, /"level":"debug"/, "debug lines were written");
  for (const jwt of [good, expired, forged]) {
    assert.equal(output.includes(jwt), false, "a token was logged");
    const signature = jwt.split(".")[2]!;
    assert.equal(output.includes(signature), false, "a token's signature was logged");
  }
  assert.equal(output.includes("garbage.token.value"), false);
  assert.equal(output.includes(marker), false, "a payload was logged");
});
