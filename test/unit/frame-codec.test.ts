import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ERROR_CODE_LIST } from "../../schemas/errors.ts";
import {
  AVRO_SUBPROTOCOL,
  clientFrameCodec,
  decodeClientFrameAvro,
  decodeServerFrameAvro,
  encodeClientFrameAvro,
  encodeEventFrameAvro,
  encodeServerFrameAvro,
  readAvroFrameId,
  serverFrameCodec,
} from "../../schemas/frame-codec.ts";
import {
  ClientOp,
  DEFAULT_FRAME_LIMITS,
  decodeClientFrame,
  type ClientFrame,
  type ServerFrame,
} from "../../schemas/frames.ts";
import { currentFingerprint } from "../../schemas/versions.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`frame-codec.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** One valid frame per op, with every optional field present. */
const VALID: readonly ClientFrame[] = [
  { op: "hello", token: "eyJhbGciOi.x.y", cursor: "pc:3:42" },
  { op: "auth", id: "a1", token: "eyJhbGciOi.x.z" },
  {
    op: "send",
    id: "c1",
    to: "user:bob",
    type: "chat.message",
    data: { text: "hi" },
    traceparent: TRACEPARENT,
  },
  { op: "join", id: "j1", room: "lobby" },
  { op: "leave", id: "l1", room: "lobby" },
  { op: "subscribe", id: "s1", channel: "*" },
  { op: "unsubscribe", id: "u1", channel: "news" },
  { op: "ping", id: "p1" },
  { op: "pong", id: "p1" },
];

/** The JSON protocol's verdict on the same frame: the parity every Avro decode must keep. */
const viaJson = (frame: unknown, limits = DEFAULT_FRAME_LIMITS) =>
  decodeClientFrame(JSON.stringify(frame), { ...limits, maxFrameChars: Number.MAX_SAFE_INTEGER });

function badFrame(bytes: Uint8Array): string {
  const r = decodeClientFrameAvro(bytes);
  assert.equal(r.ok, false, "expected an error");
  if (r.ok) return "";
  assert.equal(r.error.code, "bad_frame", r.error.message);
  return r.error.message;
}

test("the subprotocol token and the single-object header", () => {
  assert.equal(AVRO_SUBPROTOCOL, "rt.v1.avro");
  const bytes = encodeClientFrameAvro({ op: "ping" });
  assert.deepEqual([...bytes.subarray(0, 2)], [0xc3, 0x01]);
  assert.equal(bytes.readBigUInt64LE(2), currentFingerprint("clientFrame"));
  assert.equal(clientFrameCodec.fingerprint, currentFingerprint("clientFrame"));
  const server = encodeServerFrameAvro({ op: "pong" });
  assert.equal(server.readBigUInt64LE(2), currentFingerprint("serverFrame"));
  // One union-index byte names the op; a ping without id is header + 2 bytes.
  assert.equal(bytes.length, 12);
});

test("every op round-trips, with and without its optional fields", () => {
  for (const frame of VALID) {
    assert.deepEqual(decodeClientFrameAvro(encodeClientFrameAvro(frame)), { ok: true, frame }, frame.op);
    const bare: Record<string, unknown> = { ...frame };
    for (const k of ["cursor", "traceparent"]) delete bare[k];
    if (frame.op === "ping" || frame.op === "pong") delete bare["id"];
    const r = decodeClientFrameAvro(encodeClientFrameAvro(bare as unknown as ClientFrame));
    assert.deepEqual(r, { ok: true, frame: bare }, `${frame.op} without optional fields`);
  }
  assert.deepEqual(
    Object.values(ClientOp).sort(),
    VALID.map((f) => f.op).sort(),
    "every client op is covered",
  );
});

test("validation is the JSON protocol's: same codes, same messages", () => {
  const cases: readonly Record<string, unknown>[] = [
    { op: "send", id: "bad id!", to: "user:bob", type: "t", data: 1 },
    { op: "send", id: "c1", to: "user:", type: "t", data: 1 },
    { op: "send", id: "c1", to: "room:no room", type: "t", data: 1 },
    { op: "send", id: "c1", to: "user:bob", type: "", data: 1 },
    { op: "send", id: "c1", to: "user:bob", type: "t", data: 1, traceparent: "00-0-0-0" },
    { op: "hello", token: "" },
    { op: "hello", token: "x".repeat(9000) },
    { op: "hello", token: "t", cursor: "not a cursor" },
    { op: "join", id: "j1", room: "no spaces" },
    { op: "subscribe", id: "s1", channel: "" },
    { op: "ping", id: "" },
    { op: "auth", id: "a".repeat(65), token: "t" },
  ];
  for (const frame of cases) {
    const json = viaJson(frame);
    assert.equal(json.ok, false, JSON.stringify(frame));
    assert.deepEqual(decodeClientFrameAvro(encodeClientFrameAvro(frame as unknown as ClientFrame)), json);
  }
});

test("data: depth limit as in JSON, and it must be JSON text", () => {
  const limits = { ...DEFAULT_FRAME_LIMITS, maxDepth: 3 };
  const send = (data: unknown) => ({ op: "send", id: "c1", to: "user:bob", type: "t", data });
  for (const data of [[[[]]], [[[[]]]], { a: { b: { c: { d: 1 } } } }, "x", null]) {
    const frame = send(data);
    const avro = decodeClientFrameAvro(encodeClientFrameAvro(frame as ClientFrame), limits);
    assert.deepEqual(avro, viaJson(frame, limits), JSON.stringify(data));
  }
  // Depth far beyond the limit (and beyond what a recursive stringify survives) is too_big.
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  const rawSend = (id: string, data: string) =>
    clientFrameCodec.encode({
      frame: { "rt.v1.client.Send": { id, to: "user:bob", type: "t", data, traceparent: null } },
    });
  const big = { ...DEFAULT_FRAME_LIMITS, maxFrameChars: 1 << 20 };
  const r = decodeClientFrameAvro(rawSend("c1", deep), big);
  assert.deepEqual(r, { ok: false, error: { code: "too_big", message: "send.data nests deeper than 32" } });
  // A bad id still wins over a too-deep data, as in JSON (id is checked first).
  const rb = decodeClientFrameAvro(rawSend("", deep), big);
  assert.equal(rb.ok ? "ok" : rb.error.code, "bad_frame");
  // A hand-made frame whose data is not JSON text.
  assert.match(badFrame(rawSend("c1", "{nope")), /send\.data is not JSON text/);
});

test("binary messages that are not our frames are bad_frame, never a throw", () => {
  assert.match(badFrame(new Uint8Array(0)), /empty/);
  assert.match(badFrame(Buffer.from('{"op":"ping"}')), /JSON frames go in text messages/);
  assert.match(badFrame(Buffer.from([0x00, 0, 0, 0, 1, 0])), /single-object/);
  const good = encodeClientFrameAvro(VALID[2]!);
  for (let n = 0; n < good.length; n++) badFrame(good.subarray(0, n)); // every strict prefix
  const wrongFp = Buffer.from(good);
  wrongFp[5]! ^= 0xff;
  assert.match(badFrame(wrongFp), /unknown_fingerprint/);
  assert.match(badFrame(Buffer.concat([good, Buffer.from([0])])), /bad_body/);
  // A server frame is not a client frame.
  assert.match(badFrame(encodeServerFrameAvro({ op: "ping" })), /unknown_fingerprint/);
  // Union index 9 of 9 branches.
  assert.match(badFrame(Buffer.concat([good.subarray(0, 10), Buffer.from([18])])), /bad_body/);
});

test("the byte limit is checked first", () => {
  const frame = encodeClientFrameAvro({ op: "hello", token: "x".repeat(100) });
  const limits = { ...DEFAULT_FRAME_LIMITS, maxFrameChars: frame.length - 1 };
  assert.deepEqual(decodeClientFrameAvro(frame, limits), {
    ok: false,
    error: { code: "too_big", message: `frame is longer than ${frame.length - 1} bytes` },
  });
  assert.equal(decodeClientFrameAvro(frame, { ...limits, maxFrameChars: frame.length }).ok, true);
});

// ---- properties ----

const idLike = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/),
  fc.string({ maxLength: 70 }),
  fc.constant(""),
);
const nameLike = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,20}$/), fc.constant("*"), fc.string());
const target = fc.oneof(
  fc.stringMatching(/^[\x21-\x7e]{1,20}$/).map((u) => `user:${u}`),
  nameLike.map((r) => `room:${r}`),
  nameLike.map((c) => `channel:${c}`),
  fc.string(),
);
const cursorLike = fc.oneof(
  fc.tuple(fc.nat(10_000), fc.nat()).map(([p, o]) => `pc:${p}:${o}`),
  fc.constant("pc:1:-1"),
  fc.string(),
);
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const dropUndefined = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** Frames of every op with valid and invalid field values (always the right types). */
const arbClientFrame: fc.Arbitrary<ClientFrame> = fc
  .oneof(
    fc.record({ op: fc.constant("hello"), token: fc.string({ maxLength: 30 }), cursor: opt(cursorLike) }),
    fc.record({ op: fc.constant("auth"), id: idLike, token: fc.string({ maxLength: 30 }) }),
    fc.record({
      op: fc.constant("send"),
      id: idLike,
      to: target,
      type: idLike,
      data: fc.jsonValue({ maxDepth: 40 }),
      traceparent: opt(fc.oneof(fc.constant(TRACEPARENT), fc.string())),
    }),
    fc.record({ op: fc.constantFrom("join", "leave"), id: idLike, room: nameLike }),
    fc.record({ op: fc.constantFrom("subscribe", "unsubscribe"), id: idLike, channel: nameLike }),
    fc.record({ op: fc.constantFrom("ping", "pong"), id: opt(idLike) }),
  )
  .map((f) => dropUndefined(f) as unknown as ClientFrame);

test("property: every frame decodes exactly as its JSON twin", () => {
  fc.assert(
    fc.property(arbClientFrame, (frame) => {
      const r = decodeClientFrameAvro(encodeClientFrameAvro(frame));
      assert.deepEqual(r, viaJson(frame));
    }),
    { seed, numRuns: 3000 },
  );
});

test("property: random bytes, and random bodies behind a valid header, never throw", () => {
  const header = encodeClientFrameAvro({ op: "ping" }).subarray(0, 10);
  const check = (bytes: Uint8Array) => {
    const r = decodeClientFrameAvro(bytes);
    if (!r.ok) assert.ok(ERROR_CODE_LIST.includes(r.error.code));
    const s = decodeServerFrameAvro(bytes);
    if (!s.ok) assert.equal(s.error.code, "bad_frame");
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), check), { seed, numRuns: 3000 });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (tail) => check(Buffer.concat([header, tail]))),
    { seed, numRuns: 3000 },
  );
  fc.assert(
    fc.property(arbClientFrame, fc.nat(), fc.integer({ min: 0, max: 255 }), (frame, at, byte) => {
      const bytes = Buffer.from(encodeClientFrameAvro(frame));
      bytes[at % bytes.length] = byte;
      check(bytes);
    }),
    { seed, numRuns: 2000 },
  );
});

// ---- server frames ----

const text = fc.string({ unit: "grapheme", maxLength: 30 });
const int32 = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const arbServerFrame: fc.Arbitrary<ServerFrame> = fc
  .oneof(
    fc.record({
      op: fc.constant("welcome"),
      user: text,
      cursor: text,
      recovered: fc.boolean(),
      reason: opt(text),
      heartbeat_s: int32,
      session: text,
      node: text,
      limits: fc.record({
        max_frame_bytes: int32,
        max_data_depth: int32,
        max_rooms: int32,
        max_channels: int32,
        sends_per_s: int32,
      }),
    }),
    fc.record({ op: fc.constant("redirect"), url: text }),
    fc.record({ op: fc.constant("ack"), id: text, ok: fc.constant(true), cursor: opt(text) }),
    fc.record({
      op: fc.constant("ack"),
      id: text,
      ok: fc.constant(false),
      error: fc.record({ code: fc.constantFrom(...ERROR_CODE_LIST), message: text }),
    }),
    fc.record({
      op: fc.constant("event"),
      cursor: opt(text),
      id: text,
      from: text,
      to: text,
      type: text,
      data: fc.jsonValue(),
      ts: fc.integer({ min: 0, max: 2 ** 53 - 2 }),
    }),
    fc.record({ op: fc.constantFrom("ping", "pong"), id: opt(text) }),
    fc.record({ op: fc.constant("error"), code: fc.constantFrom(...ERROR_CODE_LIST), message: text }),
  )
  .map((f) => JSON.parse(JSON.stringify(f)) as ServerFrame); // plain objects, as JSON sees them

test("property: server frames round-trip to the frame their JSON form is", () => {
  fc.assert(
    fc.property(arbServerFrame, (frame) => {
      assert.deepEqual(decodeServerFrameAvro(encodeServerFrameAvro(frame)), { ok: true, frame });
    }),
    { seed, numRuns: 3000 },
  );
});

test("event frames from JSON text match encodeServerFrameAvro byte for byte", () => {
  const event = {
    op: "event",
    cursor: "pc:9:1190",
    id: "m-77",
    from: "bob",
    to: "user:alice",
    type: "t",
  } as const;
  const data = { text: "hello alice", n: [1, 2.5] };
  const withTs = { ...event, ts: 1_764_300_000_123 };
  assert.deepEqual(
    encodeEventFrameAvro(withTs, JSON.stringify(data)),
    encodeServerFrameAvro({ ...withTs, data }),
  );
  // A live channel event has no cursor.
  const live = encodeEventFrameAvro({ ...withTs, cursor: undefined, to: "channel:news" }, "1");
  const r = decodeServerFrameAvro(live);
  assert.deepEqual(r.ok && r.frame, {
    op: "event",
    id: "m-77",
    from: "bob",
    to: "channel:news",
    type: "t",
    data: 1,
    ts: withTs.ts,
  });
});

test("server frames that break the ack and event rules are bad_frame", () => {
  const ack = (fields: Record<string, unknown>) =>
    serverFrameCodec.encode({
      frame: { "rt.v1.server.Ack": { id: "a", cursor: null, error: null, ...fields } },
    });
  const cases: ReadonlyArray<readonly [Buffer, RegExp]> = [
    [ack({ ok: true, error: { code: "internal", message: "x" } }), /ok with an error/],
    [ack({ ok: false }), /not ok without an error/],
    [ack({ ok: false, cursor: "pc:1:1", error: { code: "internal", message: "x" } }), /not ok with a cursor/],
    [
      serverFrameCodec.encode({
        frame: {
          "rt.v1.server.Event": { cursor: null, id: "i", from: "f", to: "t", type: "t", data: "{", ts: 1 },
        },
      }),
      /event\.data is not JSON text/,
    ],
    [encodeClientFrameAvro({ op: "ping" }), /unknown_fingerprint/],
    [Buffer.from('{"op":"pong"}'), /JSON frames go in text messages/],
  ];
  for (const [bytes, message] of cases) {
    const r = decodeServerFrameAvro(bytes);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.error.code, "bad_frame");
      assert.match(r.error.message, message);
    }
  }
  // An error code this client does not know reads as internal, as with JSON (client/decode.ts).
  const unknown = serverFrameCodec.encode({
    frame: { "rt.v1.server.Error": { code: "new_code", message: "m" } },
  });
  assert.deepEqual(decodeServerFrameAvro(unknown), {
    ok: true,
    frame: { op: "error", code: "internal", message: "m" },
  });
});

test("encoding a frame that does not fit the schema throws a CodecError", () => {
  assert.throws(() => encodeServerFrameAvro({ op: "welcome", heartbeat_s: 1.5 } as unknown as ServerFrame));
  assert.throws(() => encodeClientFrameAvro({ op: "send", id: "c", to: "user:b", type: "t" } as ClientFrame));
  assert.throws(() => encodeClientFrameAvro({ op: "nope" } as unknown as ClientFrame));
});

test("readAvroFrameId finds the id of a frame that fails the protocol's checks, and only a valid one", () => {
  const badTarget = encodeClientFrameAvro({ op: "send", id: "m-1", to: "nobody", type: "t", data: 1 });
  const decoded = decodeClientFrameAvro(badTarget);
  assert.equal(decoded.ok, false);
  assert.equal(decoded.ok ? "" : decoded.error.code, "bad_target");
  assert.equal(readAvroFrameId(badTarget), "m-1");
  assert.equal(readAvroFrameId(encodeClientFrameAvro({ op: "join", id: "has space", room: "r" })), null);
  assert.equal(readAvroFrameId(encodeClientFrameAvro({ op: "hello", token: "a.b.c" })), null);
  assert.equal(readAvroFrameId(encodeClientFrameAvro({ op: "ping" })), null);
  assert.equal(readAvroFrameId(Buffer.from('{"op":"send","id":"x"}')), null);
  assert.equal(readAvroFrameId(badTarget.subarray(0, badTarget.length - 2)), null);
});
