/**
 * The binary subprotocol rt.v1.avro against a real gateway process and Kafka: negotiation, the
 * same frames and events as JSON (a JSON client and an Avro client talk to each other), every
 * kind of bad binary input refused with a typed error and close code without touching other
 * sessions, corrupt records in the deliveries topic skipped and counted without stalling the
 * partition, and the parity run: the protocol test files again, every client on Avro.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { encodeDelivery } from "../../schemas/codec.ts";
import { AVRO_SUBPROTOCOL, encodeClientFrameAvro } from "../../schemas/frame-codec.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, TestClient, token, type Encoding, type Frame } from "../helpers/ws-client.ts";

const PARTITIONS = 4;
let t: TestKafka;
let gw: GatewayProc;
const open: TestClient[] = [];

before(async () => {
  t = await testKafka();
  gw = await startGatewayProc(gatewayEnv(t.brokers, t.prefix, { RT_GATEWAY_NODE_ID: "avro" }));
  await waitAllReady([gw]);
});

after(async () => {
  for (const c of open) c.close();
  await gw.proc.stop("SIGTERM", 20_000);
  await t.cleanup();
});

async function user(name: string, encoding: Encoding): Promise<TestClient> {
  const { client, welcome } = await connectUser(gw.url, await token(name), { encoding });
  assert.equal(welcome.user, name);
  open.push(client);
  return client;
}

/** A raw socket on rt.v1.avro that has not sent hello. */
async function rawAvro(): Promise<TestClient> {
  const c = await TestClient.open(gw.url, { encoding: "avro" });
  open.push(c);
  return c;
}

async function refusedWith(c: TestClient, code: number, error: string, message?: RegExp): Promise<Frame> {
  const closed = await c.closed;
  assert.equal(closed.code, code, JSON.stringify({ closed, frames: c.frames }));
  const frame = c.frames.find((f) => f.op === "error");
  assert.ok(frame !== undefined, `an error frame before the close: ${JSON.stringify(c.frames)}`);
  assert.equal(frame.code, error);
  if (message !== undefined) assert.match(frame.message as string, message);
  return frame;
}

test("rt.v1.avro is negotiated when offered; JSON stays the default and the first supported offer wins", async () => {
  const avro = await TestClient.open(gw.url, { protocols: ["mqtt", AVRO_SUBPROTOCOL, "rt.v1.json"] });
  const json = await TestClient.open(gw.url, { protocols: ["rt.v1.json", AVRO_SUBPROTOCOL] });
  const none = await TestClient.open(gw.url, { protocols: [] });
  open.push(avro, json, none);
  assert.equal(avro.ws.protocol, AVRO_SUBPROTOCOL);
  assert.equal(json.ws.protocol, "rt.v1.json");
  assert.equal(none.ws.protocol, "");

  // The Avro socket gets binary frames that decode; the pong is the same frame as on JSON.
  avro.sendBinary(encodeClientFrameAvro({ op: "hello", token: await token(`neg-${t.prefix}`) }));
  const welcome = await avro.waitFor((f) => f.op === "welcome");
  assert.equal(welcome.user, `neg-${t.prefix}`);
  assert.match(welcome.cursor as string, /^[^:]+:\d+:-?\d+$/);
  avro.send({ op: "ping", id: "p1" });
  assert.deepEqual(await avro.waitFor((f) => f.op === "pong"), { op: "pong", id: "p1" });
  assert.equal(avro.undecodable.length, 0);
});

test("a JSON client and an Avro client exchange the same events both ways", async () => {
  const jName = `pj-${t.prefix}`;
  const aName = `pa-${t.prefix}`;
  const j = await user(jName, "json");
  const a = await user(aName, "avro");
  const payloads = [
    { text: "héllo ✓ 😀", n: 1.5, deep: { list: [1, [2, [3]]], nil: null, yes: true } },
    "a plain string",
    -42,
    [],
  ];
  payloads.forEach((data, i) => a.send({ op: "send", id: `a${i}`, to: `user:${jName}`, type: "chat", data }));
  payloads.forEach((data, i) => j.send({ op: "send", id: `j${i}`, to: `user:${aName}`, type: "chat", data }));
  const aAcks = await a.waitForCount((f) => f.op === "ack", payloads.length);
  const jAcks = await j.waitForCount((f) => f.op === "ack", payloads.length);
  for (const ack of [...aAcks, ...jAcks]) assert.equal(ack.ok, true, JSON.stringify(ack));
  const toJ = await j.waitForCount((f) => f.op === "event", payloads.length);
  const toA = await a.waitForCount((f) => f.op === "event", payloads.length);
  assert.deepEqual(
    toJ.map((e) => e.data),
    payloads,
  );
  assert.deepEqual(
    toA.map((e) => e.data),
    payloads,
  );
  // Field for field the frames are the JSON protocol's.
  const e = toA[0]!;
  assert.deepEqual(Object.keys(e).sort(), ["cursor", "data", "from", "id", "op", "to", "ts", "type"]);
  assert.equal(e.from, jName);
  assert.equal(e.to, `user:${aName}`);
  assert.equal(typeof e.ts, "number");
  assert.equal(aAcks[0]!.cursor, toJ[0]!.cursor, "the ack names the record the recipient got");
});

test("bad binary input: each case a typed error and close, other sessions unaffected", async () => {
  const bystander = await user(`by-${t.prefix}`, "avro");
  const sender = await user(`bs-${t.prefix}`, "json");
  const hello = encodeClientFrameAvro({ op: "hello", token: "x.y.z" });
  const unknownFingerprint = Buffer.from(hello);
  randomBytes(8).copy(unknownFingerprint, 2);
  const cases: [string, (c: TestClient) => void, number, string, RegExp][] = [
    ["JSON text on the binary protocol", (c) => c.send('{"op":"ping"}'), 4002, "bad_frame", /text messages/],
    [
      "JSON bytes in a binary message",
      (c) => c.sendBinary(Buffer.from('{"op":"ping"}')),
      4002,
      "bad_frame",
      /JSON frames go in text messages/,
    ],
    ["garbage bytes", (c) => c.sendBinary(randomBytes(40)), 4002, "bad_frame", /not an rt\.v1\.avro frame/],
    ["an empty binary message", (c) => c.sendBinary(Buffer.alloc(0)), 4002, "bad_frame", /empty/],
    [
      "a truncated frame",
      (c) => c.sendBinary(hello.subarray(0, hello.length - 3)),
      4002,
      "bad_frame",
      /truncated/,
    ],
    [
      "trailing bytes after the frame",
      (c) => c.sendBinary(Buffer.concat([hello, Buffer.from([1, 2])])),
      4002,
      "bad_frame",
      /bad_body/,
    ],
    [
      "an unknown schema fingerprint",
      (c) => c.sendBinary(unknownFingerprint),
      4002,
      "bad_frame",
      /unknown_fingerprint/,
    ],
    [
      "a frame over the size limit",
      (c) => c.sendBinary(Buffer.concat([Buffer.from([0xc3, 1]), Buffer.alloc(70_000)])),
      4009,
      "too_big",
      /over the limit/,
    ],
    [
      "a valid frame before hello",
      (c) => c.send({ op: "send", id: "s1", to: "user:x", type: "t", data: 1 }),
      4002,
      "not_authenticated",
      /hello first/,
    ],
  ];
  for (const [name, act, code, error, message] of cases) {
    const c = await rawAvro();
    act(c);
    await t_(name, () => refusedWith(c, code, error, message));
  }
  // A JSON session that sends binary is told which subprotocol carries binary frames.
  const j = await TestClient.open(gw.url, { encoding: "json" });
  open.push(j);
  j.sendBinary(hello);
  await t_("binary on JSON", () => refusedWith(j, 4002, "bad_frame", /offer rt\.v1\.avro/));

  // Inside a live Avro session a bad target is a failed ack, and the session goes on.
  bystander.send({ op: "send", id: "bt", to: "nobody", type: "t", data: 1 });
  const ack = await bystander.waitFor((f) => f.op === "ack" && f.id === "bt");
  assert.equal(ack.ok, false);
  assert.equal(ack.error.code, "bad_target");
  sender.send({ op: "send", id: "after", to: `user:by-${t.prefix}`, type: "t", data: "still here" });
  const ev = await bystander.waitFor((f) => f.op === "event" && f.id === "after");
  assert.equal(ev.data, "still here");
  assert.equal(bystander.isClosed, null);
});

/** Runs a check and names the case in its failure. */
async function t_(name: string, check: () => Promise<unknown>): Promise<void> {
  try {
    await check();
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
  }
}

test("corrupt records in the deliveries topic are skipped and counted; the records after them arrive", async () => {
  const name = `cr-${t.prefix}`;
  const clients = [await user(name, "avro"), await user(name, "json")];
  const partition = partitionForKey(name, PARTITIONS);
  const good = (id: string) =>
    encodeDelivery({
      id,
      type: "t",
      sender: "service:test",
      recipient: name,
      room: null,
      ts: Date.now(),
      data: JSON.stringify(id),
      attributes: {},
    });
  const valid = good("after");
  const unknownFingerprint = Buffer.from(valid);
  unknownFingerprint.writeUInt8(unknownFingerprint[2]! ^ 0xff, 2);
  const corrupt = [
    randomBytes(30),
    valid.subarray(0, valid.length - 4),
    unknownFingerprint,
    Buffer.concat([valid, Buffer.from([7])]),
    encodeDelivery({ ...decodeFields(name), data: "{not json" }),
  ];
  const producer = await t.kafka.producer();
  try {
    await producer.send(t.names.deliveries, [
      { key: name, value: good("before"), partition },
      ...corrupt.map((value) => ({ key: name, value, partition })),
      { key: name, value: valid, partition },
    ]);
  } finally {
    await producer.close();
  }
  for (const c of clients) {
    const events = await c.waitForCount((f) => f.op === "event", 2);
    assert.deepEqual(
      events.map((e) => e.data),
      ["before", "after"],
    );
  }
  const metrics = await (await fetch(`${gw.http}/metrics`)).text();
  const skipped = (reason: string) =>
    metrics
      .split("\n")
      .filter((l) => l.startsWith("rt_delivery_undeliverable") && l.includes(`rt_reason="${reason}"`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
  assert.equal(skipped("bad_magic"), 1, metrics);
  assert.equal(skipped("truncated"), 1);
  assert.equal(skipped("unknown_fingerprint"), 1);
  assert.equal(skipped("bad_body"), 1);
  assert.equal(skipped("bad_json_data"), 1);
});

function decodeFields(recipient: string) {
  return {
    id: "bad-data",
    type: "t",
    sender: "service:test",
    recipient,
    room: null,
    ts: Date.now(),
    data: "",
    attributes: {},
  };
}

/**
 * Parity: the protocol test files again, in a child test run where every test client speaks
 * rt.v1.avro (RT_TEST_ENCODING=avro). Together with their JSON run in the same `npm test`, every
 * protocol behaviour they assert holds in both encodings.
 */
const PARITY_FILES = [
  "test/integration/gateway-delivery.test.ts",
  "test/integration/gateway-resume.test.ts",
  "test/integration/gateway-limits.test.ts",
  "test/integration/rooms.test.ts",
];

test("parity: the protocol tests pass with every client on rt.v1.avro", async () => {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=tap", ...PARITY_FILES],
    { cwd: REPO_ROOT, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((done) => child.on("close", (c) => done(c)));
  const count = (label: string) => Number(new RegExp(`^# ${label} (\\d+)$`, "m").exec(out)?.[1] ?? NaN);
  const failures = out.split("\n").filter((l) => l.startsWith("not ok"));
  assert.equal(code, 0, `failed over Avro:\n${failures.join("\n")}\n${out.slice(-4000)}`);
  assert.equal(count("fail"), 0);
  assert.equal(count("skipped"), 0);
  assert.ok(count("tests") > 0);
  assert.equal(count("pass"), count("tests"), "every parity test ran and passed");
});

/** The child is a test run of its own, not a subprocess reporting to this one's runner. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, RT_TEST_ENCODING: "avro" };
  delete env.NODE_TEST_CONTEXT;
  return env;
}
