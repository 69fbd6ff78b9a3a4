/**
 * A bad-input suite against real gateway and router processes: malformed, truncated and
 * wrong-typed frames, deep nesting, huge numbers and strings, invalid UTF-8, unknown ops, frames
 * before hello, broken WebSocket framing and floods over the JSON protocol; and malformed,
 * oversized and odd HTTP requests to both services. Every case must end in a typed error frame
 * and a documented close code (or, for transport-level garbage, a dropped connection or an HTTP
 * error status); neither process may crash, a bystander session must keep being served, and the
 * gateway's memory must stay bounded. The totals go to docs/RELIABILITY.md.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { routerEnv, startRouterProc, type RouterProc } from "../helpers/router-proc.ts";
import { SignJWT } from "jose";
import { connectUser, TEST_SECRET, token, type TestClient } from "../helpers/ws-client.ts";
import {
  clientFrame,
  liveWs,
  mustUpgrade,
  processMemory,
  rawTcp,
  upgradeRequest,
  type Ws,
} from "../helpers/abuse.ts";
import { recordMeasurements } from "../helpers/reliability.ts";

const MAX_FRAME = 4096;

let t: TestKafka;
let gw: GatewayProc;
let router: RouterProc;
let bystander: { client: TestClient; user: string };
let sender: TestClient;
let seq = 0;
const counts = { ws: 0, http: 0, crashes: 0 };
let rssBefore = 0;

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_MAX_FRAME_BYTES: String(MAX_FRAME),
      RT_HELLO_TIMEOUT_MS: "2000",
      RT_SENDS_PER_S: "1000",
    }),
  );
  router = await startRouterProc(routerEnv(t.brokers, t.prefix));
  await waitAllReady([gw]);
  const b = `bystander-${t.prefix}`;
  bystander = { client: (await connectUser(gw.url, await token(b))).client, user: b };
  sender = (await connectUser(gw.url, await token(`sender-${t.prefix}`))).client;
  rssBefore = processMemory(gw.proc.child.pid!).rssBytes;
});

after(async () => {
  const mem = processMemory(gw.proc.child.pid!);
  recordMeasurements("hardening-bad-input", {
    badWebSocketInputs: counts.ws,
    badHttpInputs: counts.http,
    crashes: counts.crashes,
    gatewayRssBeforeBytes: rssBefore,
    gatewayRssAfterBytes: mem.rssBytes,
    gatewayPeakRssBytes: mem.peakRssBytes,
  });
  bystander.client.close();
  sender.close();
  await router.proc.stop("SIGTERM", 20_000);
  await gw.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

/** Both processes still run and answer, and the bystander still gets its messages. */
async function allStillServed(): Promise<void> {
  const alive = async (url: string) => (await fetch(`${url}/healthz`).catch(() => null))?.status === 200;
  const up = gw.proc.child.exitCode === null && router.proc.child.exitCode === null;
  if (!up || !(await alive(gw.http)) || !(await alive(router.url))) {
    counts.crashes += 1;
    assert.fail(`a process died:\n${gw.proc.output().slice(-3000)}\n${router.proc.output().slice(-3000)}`);
  }
  const id = `b${seq++}`;
  sender.send({ op: "send", id, to: `user:${bystander.user}`, type: "check", data: null });
  await bystander.client.waitFor((f) => f.op === "event" && f.id === id);
}

interface Expect {
  /** Acceptable close codes. */
  readonly close: readonly number[];
  /** The error frame's code, when one must precede the close. */
  readonly error?: string;
}
const protocol = (error: string): Expect => ({ close: [4002], error });
const DROPPED: Expect = { close: [1006, 1002, 1007, 1009] };

/** One message on a fresh socket (no hello): the socket must close as expected. */
async function firstMessage(
  what: string,
  message: string | Buffer,
  expect: Expect,
  binary = false,
): Promise<void> {
  counts.ws += 1;
  const c = await mustUpgrade(gw.url);
  c.ws.send(message, { binary });
  await expectClosed(c, what, expect);
}

async function expectClosed(c: Ws, what: string, expect: Expect): Promise<void> {
  const closed = await Promise.race([c.closed, sleep(15_000).then(() => null)]);
  assert.ok(closed !== null, `${what}: the socket was not closed`);
  assert.ok(
    expect.close.includes(closed.code),
    `${what}: closed ${JSON.stringify(closed)}, expected ${expect.close.join("/")}; frames ${JSON.stringify(c.frames)}`,
  );
  assert.ok(!c.frames.some((f) => f.op === "welcome"), `${what}: welcomed`);
  if (expect.error !== undefined) {
    assert.equal(
      c.frames.find((f) => f.op === "error")?.code,
      expect.error,
      `${what}: ${JSON.stringify(c.frames)}`,
    );
  }
}

test("malformed, truncated and wrong-typed frames before hello: error frame, close 4002", async () => {
  const hello = JSON.stringify({ op: "hello", token: await token("x"), cursor: "p4:1:2" });
  const cases: [string, string, Expect][] = [
    ["empty message", "", protocol("bad_json")],
    ["whitespace", "   \n\t", protocol("bad_json")],
    ["lone brace", "{", protocol("bad_json")],
    ["trailing comma", '{"op":"ping",}', protocol("bad_json")],
    ["single quotes", "{'op':'ping'}", protocol("bad_json")],
    ["NaN", '{"op":"ping","id":NaN}', protocol("bad_json")],
    ["two objects", '{"op":"ping"}{"op":"ping"}', protocol("bad_json")],
    ["BOM first", '\ufeff{"op":"ping"}', protocol("bad_json")],
    ["null", "null", protocol("bad_frame")],
    ["array", '[{"op":"hello"}]', protocol("bad_frame")],
    ["string", '"hello"', protocol("bad_frame")],
    ["number", "42", protocol("bad_frame")],
    ["no op", '{"token":"x"}', protocol("bad_frame")],
    ["op null", '{"op":null}', protocol("bad_frame")],
    ["op number", '{"op":1}', protocol("bad_frame")],
    ["op object", '{"op":{"op":"hello"}}', protocol("bad_frame")],
    ["token number", '{"op":"hello","token":1}', protocol("bad_frame")],
    ["token array", '{"op":"hello","token":["a"]}', protocol("bad_frame")],
    ["token null", '{"op":"hello","token":null}', protocol("bad_frame")],
    ["token empty", '{"op":"hello","token":""}', protocol("bad_frame")],
    ["token huge number", '{"op":"hello","token":1e999}', protocol("bad_frame")],
    ["cursor null", `{"op":"hello","token":"a.b.c","cursor":null}`, protocol("bad_frame")],
    ["cursor number", `{"op":"hello","token":"a.b.c","cursor":12}`, protocol("bad_frame")],
    ["cursor malformed", `{"op":"hello","token":"a.b.c","cursor":"p4:01:2"}`, protocol("bad_cursor")],
    [
      "cursor past int64",
      `{"op":"hello","token":"a.b.c","cursor":"p4:1:9223372036854775808"}`,
      protocol("bad_cursor"),
    ],
    ["extra field", '{"op":"hello","token":"a.b.c","admin":true}', protocol("bad_frame")],
    ["__proto__ field", '{"op":"hello","token":"a.b.c","__proto__":{"admin":true}}', protocol("bad_frame")],
    ["unknown op", '{"op":"shout"}', protocol("unknown_op")],
    ["empty op", '{"op":""}', protocol("unknown_op")],
    ["__proto__ op", '{"op":"__proto__"}', protocol("unknown_op")],
    ["server op from a client", '{"op":"welcome","user":"me"}', protocol("unknown_op")],
  ];
  for (let i = 1; i < hello.length; i += Math.max(1, Math.floor(hello.length / 25))) {
    cases.push([`hello truncated at ${i}`, hello.slice(0, i), protocol("bad_json")]);
  }
  for (const [what, text, expect] of cases) await firstMessage(what, text, expect);
  await allStillServed();
});

test("deep nesting, huge numbers and long strings: typed outcomes", async () => {
  const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
  const cases: [string, string, Expect][] = [
    ["2000-deep array", deep(2000), protocol("bad_frame")],
    ["2000-deep unbalanced", "[".repeat(4000), protocol("bad_json")],
    [
      "deep object as token",
      `{"op":"hello","token":${'{"a":'.repeat(500)}1${"}".repeat(500)}}`,
      protocol("bad_frame"),
    ],
    ["deep array as id", `{"op":"ping","id":${deep(1000)}}`, protocol("bad_frame")],
    ["huge integer as id", `{"op":"ping","id":${"9".repeat(3000)}}`, protocol("bad_frame")],
    [
      "garbage token of 3000 chars",
      JSON.stringify({ op: "hello", token: "x".repeat(3000) }),
      { close: [4001], error: "unauthorized" },
    ],
    [
      "frame over the limit",
      JSON.stringify({ op: "hello", token: "x".repeat(MAX_FRAME) }),
      { close: [4009], error: "too_big" },
    ],
    // Past twice the limit uWS drops the connection before the gateway sees the frame.
    [
      "frame over twice the limit",
      JSON.stringify({ op: "hello", token: "x".repeat(3 * MAX_FRAME) }),
      DROPPED,
    ],
    ["a megabyte", "x".repeat(1024 * 1024), DROPPED],
  ];
  for (const [what, text, expect] of cases) await firstMessage(what, text, expect);
  await allStillServed();
});

test("invalid UTF-8 text and binary messages are refused", async () => {
  const invalid: [string, Buffer][] = [
    ["lone continuation byte", Buffer.from([0x7b, 0x80, 0x7d])],
    ["overlong encoding", Buffer.from([0xc0, 0xaf])],
    ["UTF-16 surrogate in UTF-8", Buffer.from([0xed, 0xa0, 0x80])],
    ["truncated sequence", Buffer.from('{"op":"ping","id":"\xe2\x82"}', "latin1")],
    ["0xFF byte", Buffer.from([0xff, 0xfe, 0x7b, 0x7d])],
  ];
  for (const [what, bytes] of invalid) await firstMessage(what, bytes, DROPPED);
  await firstMessage(
    "binary message",
    Buffer.from('{"op":"hello","token":"a.b.c"}'),
    protocol("bad_frame"),
    true,
  );
  await firstMessage("empty binary message", Buffer.alloc(0), protocol("bad_frame"), true);
  await allStillServed();
});

test("frames before hello: every other op gets not_authenticated, close 4002", async () => {
  const frames = [
    { op: "ping" },
    { op: "pong" },
    { op: "ping", id: "p" },
    { op: "auth", id: "a", token: "a.b.c" },
    { op: "send", id: "s", to: "user:bob", type: "t", data: 1 },
    { op: "join", id: "j", room: "lobby" },
    { op: "leave", id: "l", room: "lobby" },
    { op: "subscribe", id: "s", channel: "*" },
    { op: "unsubscribe", id: "u", channel: "*" },
  ];
  for (const f of frames)
    await firstMessage(`${f.op} before hello`, JSON.stringify(f), protocol("not_authenticated"));
  // A second hello while the first is being checked.
  counts.ws += 1;
  const c = await mustUpgrade(gw.url);
  // A header field beyond alg/typ/kid sends the token through jose's asynchronous check (the
  // inline HS256 path would finish the first hello before the second frame is read).
  const slowToken = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256", cty: "slow-path" })
    .setSubject(`twice-${t.prefix}`)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(TEST_SECRET));
  const hello = JSON.stringify({ op: "hello", token: slowToken });
  // Both frames in one TCP write, so the gateway reads the second before the first is verified.
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  c.send(hello);
  c.send(hello);
  socket.uncork();
  await expectClosed(c, "second hello", protocol("already_authenticated"));
  await allStillServed();
});

test("broken WebSocket framing on a raw socket: the connection is dropped, nothing else is", async () => {
  const hello = Buffer.from(JSON.stringify({ op: "hello", token: await token(`raw-${t.prefix}`) }));
  const framings: [string, Buffer][] = [
    ["RSV1 set (compression was never negotiated)", clientFrame(0xc1, hello)],
    ["RSV2 and RSV3 set", clientFrame(0xb1, hello)],
    ["reserved data opcode 0x3", clientFrame(0x83, hello)],
    ["reserved control opcode 0xB", clientFrame(0x8b, Buffer.alloc(0))],
    ["unmasked client frame", Buffer.concat([Buffer.from([0x81, hello.length]), hello])],
    ["control frame over 125 bytes", clientFrame(0x89, Buffer.alloc(200))],
    ["fragmented control frame", clientFrame(0x09, Buffer.alloc(2))],
    ["continuation without a start", clientFrame(0x80, hello)],
    ["64-bit length of 2^62", Buffer.from([0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4])],
    ["close frame with a 1-byte payload", clientFrame(0x88, Buffer.from([3]))],
    ["close frame with code 999", clientFrame(0x88, Buffer.from([0x03, 0xe7]))],
  ];
  const request = upgradeRequest("/v1/ws");
  for (const [what, frame] of framings) {
    counts.ws += 1;
    const r = await rawTcp(gw.port, [request, frame], { gapMs: 100, waitMs: 10_000 });
    const text = r.received.toString("latin1");
    assert.match(text, /^HTTP\/1\.1 101 /, `${what}: the upgrade itself was fine`);
    assert.ok(r.closedByServer, `${what}: the gateway kept the connection`);
    assert.ok(!text.includes('"op":"welcome"'), `${what}: welcomed`);
  }
  // Fragmentation is legal: a hello split over three frames is one message.
  const split = [
    clientFrame(0x01, hello.subarray(0, 10)),
    clientFrame(0x00, hello.subarray(10, 20)),
    clientFrame(0x80, hello.subarray(20)),
  ];
  const ok = await rawTcp(gw.port, [request, ...split], { gapMs: 50, waitMs: 3_000 });
  assert.match(ok.received.toString("latin1"), /"op":"welcome"/);
  await allStillServed();
});

test("floods: a burst of bad frames, a storm of bad connections, and a live session flooding requests", async () => {
  // One socket sends 2000 frames before hello: the first closes it, the rest go nowhere.
  counts.ws += 2000;
  const c = await mustUpgrade(gw.url);
  for (let i = 0; i < 2000; i++) c.ws.send('{"op":"ping"}');
  await expectClosed(c, "ping flood before hello", protocol("not_authenticated"));
  // 200 connections at once, each sending garbage.
  counts.ws += 200;
  const storm = await Promise.all(Array.from({ length: 200 }, () => mustUpgrade(gw.url)));
  for (const s of storm) s.ws.send("{garbage");
  await Promise.all(storm.map((s) => expectClosed(s, "storm", protocol("bad_json"))));
  // A live session floods pings, malformed sends and sends over its rate: it is answered or
  // closed with a documented code, and nothing else is disturbed.
  counts.ws += 6000;
  const me = `flood-${t.prefix}`;
  const live = await liveWs(gw.url, await token(me));
  for (let i = 0; i < 2000; i++) {
    live.send({ op: "ping", id: `p${i}` });
    live.send({ op: "send", id: `bad${i}`, to: "user:", type: "t", data: 1 });
    live.send({ op: "send", id: `s${i}`, to: `user:${me}`, type: "t", data: i });
  }
  const outcome = await Promise.race([
    live.closed,
    live.waitFor((f) => f.op === "pong" && f.id === "p1999", 60_000).then(() => null),
  ]);
  if (outcome !== null) assert.equal(outcome.code, 4029, `closed ${JSON.stringify(outcome)}`);
  const acks = live.frames.filter((f) => f.op === "ack");
  assert.ok(
    acks
      .filter((a) => String(a.id).startsWith("bad"))
      .every((a) => a.ok === false && a.error.code === "bad_target"),
  );
  assert.ok(acks.every((a) => a.ok === true || typeof a.error?.code === "string"));
  live.ws.terminate();
  await allStillServed();
});

test("inside a live session, a protocol violation closes only that session", async () => {
  const cases: [string, string, Expect][] = [
    ["bad JSON", "{", protocol("bad_json")],
    ["unknown op", '{"op":"shout"}', protocol("unknown_op")],
    ["second hello", JSON.stringify({ op: "hello", token: "a.b.c" }), protocol("already_authenticated")],
    ["send without an id", '{"op":"send","to":"user:x","type":"t","data":1}', protocol("bad_frame")],
    [
      "frame over the limit",
      JSON.stringify({ op: "ping", id: "x".repeat(MAX_FRAME) }),
      { close: [4009], error: "too_big" },
    ],
  ];
  for (const [what, text, expect] of cases) {
    counts.ws += 1;
    const c = await liveWs(gw.url, await token(`v${seq++}-${t.prefix}`));
    c.frames.length = 0;
    c.ws.send(text);
    await expectClosed(c, what, expect);
  }
  await allStillServed();
});

/**
 * The status of an HTTP answer, or why there is none: "closed" (by the server) or "hung" (still
 * open after 15 s, past uWS's 10 s timeout for a request that never completes).
 */
async function http(port: number, request: string | Buffer): Promise<string> {
  counts.http += 1;
  const r = await rawTcp(port, [request], { waitMs: 15_000 });
  const text = r.received.toString("latin1");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (status !== null) return status[1]!;
  return r.closedByServer ? "closed" : "hung";
}

const HTTP_GARBAGE: [string, string | Buffer][] = [
  ["not HTTP", "GARBAGE\r\n\r\n"],
  ["binary noise", Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256))],
  ["NUL bytes in the path", "GET /v1/\0\0 HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["unknown method", "BREW /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["HTTP/0.9", "GET /\r\n\r\n"],
  ["HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
  ["request line of 100 kB", `GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
  ["header of 100 kB", `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(100_000)}\r\n\r\n`],
  [
    "1000 headers",
    `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 1000 }, (_, i) => `X-H${i}: v`).join("\r\n")}\r\n\r\n`,
  ],
  ["header without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"],
  ["bare LF line ends", "GET /healthz HTTP/1.1\nHost: x\n\n"],
  [
    "content-length and chunked",
    "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  ],
  ["negative content-length", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"],
  [
    "bad chunk size",
    "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
  ],
  ["1000 pipelined requests", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000)],
  ["percent-encoding garbage", "GET /%ZZ%00%ff?%%=%% HTTP/1.1\r\nHost: x\r\n\r\n"],
];

test("HTTP garbage to the gateway: an error status or a closed connection, never a crash", async () => {
  const cases: [string, string | Buffer][] = [
    ...HTTP_GARBAGE,
    ["upgrade without a key", upgradeRequest("/v1/ws", { "sec-websocket-key": "" })],
    ["upgrade with version 8", upgradeRequest("/v1/ws", { "sec-websocket-version": "8" })],
    [
      "upgrade with a 4 kB subprotocol list",
      upgradeRequest("/v1/ws", { "sec-websocket-protocol": "x,".repeat(2000) }),
    ],
    [
      "upgrade with an 8 kB Authorization header",
      upgradeRequest("/v1/ws", { authorization: `Bearer ${"t".repeat(8000)}` }),
    ],
    [
      "upgrade with a bad cursor header",
      upgradeRequest("/v1/ws", { authorization: "Bearer a.b.c", "x-rt-cursor": "\u0000".repeat(100) }),
    ],
    ["upgrade on another path", upgradeRequest("/v1/wsx")],
    ["POST to the WebSocket path", "POST /v1/ws HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"],
  ];
  // In parallel: a request uWS cannot parse is only dropped by its 10 s request timeout.
  const outcomes = await Promise.all(
    cases.map(async ([what, request]) => [what, await http(gw.port, request)]),
  );
  console.log(`# gateway HTTP outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  const got = Object.fromEntries(outcomes) as Record<string, string>;
  for (const [what, outcome] of Object.entries(got)) {
    assert.ok(
      outcome === "closed" || /^\d{3}$/.test(outcome),
      `${what}: ${outcome} (no answer and no close within 15 s)`,
    );
  }
  // Whatever uWS makes of a malformed upgrade, it never yields a socket that skipped the checks.
  assert.ok(["401", "closed"].includes(got["upgrade with an 8 kB Authorization header"]!));
  assert.ok(["400", "closed"].includes(got["upgrade with a 4 kB subprotocol list"]!));
  for (const what of ["upgrade without a key", "upgrade on another path", "POST to the WebSocket path"]) {
    assert.notEqual(got[what], "101", what);
  }
  await allStillServed();
});

test("HTTP garbage and odd /v1/connect requests to the router: an error status or a closed connection", async () => {
  const bad = [
    "?token=%ZZ",
    `?token=${"t".repeat(20_000)}`,
    "?token=a&token=b",
    "?token=",
    "?token=%00",
    "?token=a.b.c",
  ];
  const cases: [string, string | Buffer][] = [
    ...HTTP_GARBAGE,
    ...bad.map((q): [string, string] => [
      `/v1/connect${q.slice(0, 20)}`,
      `GET /v1/connect${q} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ]),
    ...[
      "Bearer",
      "Bearer  ",
      "Basic YTpi",
      "Bearer a.b.c d",
      `Bearer ${"t".repeat(3000)}`,
      "Bearer \u0000",
    ].map((auth): [string, string] => [
      `Authorization ${auth.slice(0, 20)}`,
      `GET /v1/connect HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n\r\n`,
    ]),
    ["DELETE /v1/connect", "DELETE /v1/connect HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["OPTIONS with a hostile Origin", "OPTIONS /v1/connect HTTP/1.1\r\nHost: x\r\nOrigin: null\r\n\r\n"],
  ];
  const outcomes = await Promise.all(
    cases.map(async ([what, request]) => [what, await http(router.port, request)]),
  );
  console.log(`# router HTTP outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  for (const [what, got] of outcomes) {
    assert.ok(
      got === "closed" || /^\d{3}$/.test(got!),
      `${what}: ${got} (no answer and no close within 15 s)`,
    );
    // No odd request is ever placed: a 200 is only the pipelined /healthz.
    if (got === "200") assert.ok(what!.includes("pipelined") || what!.includes("header of"), `${what}: 200`);
  }
  await allStillServed();
});

test("memory: all of the above left the gateway's resident memory bounded", async () => {
  // Let the collector run over what the cases left behind.
  await sleep(1_000);
  const mem = processMemory(gw.proc.child.pid!);
  const grownMiB = (mem.rssBytes - rssBefore) / 2 ** 20;
  assert.ok(grownMiB < 128, `the gateway grew by ${grownMiB.toFixed(1)} MiB`);
  assert.equal(counts.crashes, 0);
});
