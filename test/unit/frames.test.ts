import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ClientOp,
  DEFAULT_FRAME_LIMITS,
  ServerOp,
  decodeClientFrame,
  encodeServerFrame,
  type FrameLimits,
  type ServerFrame,
} from "../../schemas/frames.ts";
import { isErrorCode, type ErrorCode } from "../../schemas/errors.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`frames.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** One valid frame per op, with every optional field present. */
const VALID: Readonly<Record<ClientOp, Record<string, unknown>>> = {
  hello: { op: "hello", token: "eyJhbGciOi.x.y", cursor: "e1:3:42" },
  auth: { op: "auth", id: "a1", token: "eyJhbGciOi.x.z" },
  send: {
    op: "send",
    id: "c1",
    to: "user:bob",
    type: "chat.message",
    data: { text: "hi" },
    traceparent: TRACEPARENT,
  },
  join: { op: "join", id: "j1", room: "lobby" },
  leave: { op: "leave", id: "l1", room: "lobby" },
  subscribe: { op: "subscribe", id: "s1", channel: "news" },
  unsubscribe: { op: "unsubscribe", id: "u1", channel: "news" },
  ping: { op: "ping", id: "p1" },
  pong: { op: "pong", id: "p1" },
};
const OPTIONAL: Readonly<Record<ClientOp, readonly string[]>> = {
  hello: ["cursor"],
  auth: [],
  send: ["traceparent"],
  join: [],
  leave: [],
  subscribe: [],
  unsubscribe: [],
  ping: ["id"],
  pong: ["id"],
};

function decode(frame: unknown, limits?: FrameLimits) {
  return decodeClientFrame(typeof frame === "string" ? frame : JSON.stringify(frame), limits);
}
function expectError(frame: unknown, code: ErrorCode, message?: RegExp, limits?: FrameLimits): void {
  const r = decode(frame, limits);
  assert.equal(r.ok, false, `expected ${code} for ${JSON.stringify(frame)}`);
  if (r.ok) return;
  assert.equal(r.error.code, code, `${JSON.stringify(frame)}: ${r.error.message}`);
  if (message) assert.match(r.error.message, message);
}

test("every op decodes, with and without its optional fields", () => {
  for (const op of Object.values(ClientOp)) {
    const full = VALID[op];
    assert.deepEqual(decode(full), { ok: true, frame: full }, op);
    const bare = Object.fromEntries(Object.entries(full).filter(([k]) => !OPTIONAL[op].includes(k)));
    assert.deepEqual(decode(bare), { ok: true, frame: bare }, `${op} without optionals`);
  }
  assert.deepEqual(decode({ op: "ping" }), { ok: true, frame: { op: "ping" } });
});

test("targets: user, room, channel, broadcast", () => {
  const send = (to: string) => ({ ...VALID.send, to });
  for (const to of [
    "user:bob",
    "user:a:b|c~!",
    `user:${"x".repeat(128)}`,
    "room:lobby",
    "room:a.b_c-d:e@f",
    "channel:*",
    "channel:news",
  ]) {
    assert.equal(decode(send(to)).ok, true, to);
  }
  const bad = [
    "bob",
    "user:",
    "user:bo b",
    "user:bö",
    "user:a\tb",
    `user:${"x".repeat(129)}`,
    "room:",
    "room:a/b",
    "room:*",
    "channel:",
    "channel:a b",
    "channel:**",
    "team:x",
    "USER:bob",
    ":bob",
    `room:${"r".repeat(129)}`,
  ];
  for (const to of bad) expectError(send(to), "bad_target", /send\.to/);
  assert.equal(decode({ ...VALID.subscribe, channel: "*" }).ok, true);
  expectError({ ...VALID.subscribe, channel: "a b" }, "bad_target", /subscribe\.channel/);
  expectError({ ...VALID.unsubscribe, channel: "" }, "bad_target");
  expectError({ ...VALID.join, room: "*" }, "bad_target", /join\.room/);
  expectError({ ...VALID.leave, room: "x".repeat(129) }, "bad_target");
});

test("not JSON, not an object, no op, unknown op", () => {
  for (const text of ["", "{", "{op:'hello'}", "nul", '{"op":"ping"} x', "\u0000"])
    expectError(text, "bad_json");
  for (const value of ["[]", "null", "1", '"ping"', "true", '[{"op":"ping"}]'])
    expectError(value, "bad_frame", /JSON object/);
  expectError({}, "bad_frame", /missing field op/);
  expectError({ op: 1 }, "bad_frame", /op must be a string/);
  expectError({ op: null }, "bad_frame");
  expectError({ op: "welcome" }, "unknown_op", /"welcome"/);
  expectError({ op: "HELLO" }, "unknown_op");
  expectError({ op: "toString" }, "unknown_op");
  expectError({ op: "__proto__" }, "unknown_op");
  expectError({ op: "x".repeat(1000) }, "unknown_op", /…/);
});

test("an extra field is rejected, named, for every op", () => {
  for (const op of Object.values(ClientOp)) {
    expectError({ ...VALID[op], extra: 1 }, "bad_frame", new RegExp(`^${op}: unexpected field "extra"$`));
  }
  expectError('{"op":"ping","__proto__":{}}', "bad_frame", /"__proto__"/);
  expectError({ ...VALID.send, Data: 1 }, "bad_frame", /"Data"/);
});

test("a missing required field is rejected, named, for every op", () => {
  for (const op of Object.values(ClientOp)) {
    for (const field of Object.keys(VALID[op])) {
      if (field === "op" || OPTIONAL[op].includes(field)) continue;
      const frame: Record<string, unknown> = { ...VALID[op] };
      delete frame[field];
      expectError(frame, "bad_frame", new RegExp(`^${op}: missing field ${field}$`));
    }
  }
});

test("a wrong-typed field is rejected for every op and field", () => {
  const codeFor: Record<string, ErrorCode> = { to: "bad_target", room: "bad_target", channel: "bad_target" };
  for (const op of Object.values(ClientOp)) {
    for (const field of Object.keys(VALID[op])) {
      if (field === "op" || field === "data") continue; // data takes any JSON value
      for (const wrong of [1, null, true, [], {}]) {
        expectError(
          { ...VALID[op], [field]: wrong },
          codeFor[field] ?? "bad_frame",
          new RegExp(`^${op}\\.${field} `),
        );
      }
    }
  }
});

test("ids and event types: length and alphabet", () => {
  for (const good of ["a", "A-z_0.9:x", "x".repeat(64)]) {
    assert.equal(decode({ ...VALID.join, id: good }).ok, true, good);
    assert.equal(decode({ ...VALID.send, type: good }).ok, true, good);
  }
  for (const bad of ["", "x".repeat(65), "a b", "a/b", "é", "a\n", "a*"]) {
    expectError({ ...VALID.join, id: bad }, "bad_frame", /join\.id/);
    expectError({ ...VALID.ping, id: bad }, "bad_frame", /ping\.id/);
    expectError({ ...VALID.send, type: bad }, "bad_frame", /send\.type/);
  }
});

test("data: any JSON value up to the depth limit", () => {
  for (const data of [null, 0, -1.5, "", "x", true, [], {}, [1, "a", null, { b: [] }]]) {
    assert.equal(decode({ ...VALID.send, data }).ok, true, JSON.stringify(data));
  }
  const nest = (depth: number, inner: unknown = 1): unknown => {
    let v = inner;
    for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { k: v };
    return v;
  };
  assert.equal(decode({ ...VALID.send, data: nest(32) }).ok, true);
  expectError({ ...VALID.send, data: nest(33) }, "too_big", /send\.data nests deeper than 32/);
  const limits = { ...DEFAULT_FRAME_LIMITS, maxDepth: 2 };
  assert.equal(decode({ ...VALID.send, data: { a: [1] } }, limits).ok, true);
  expectError({ ...VALID.send, data: { a: [[]] } }, "too_big", undefined, limits);
  expectError({ ...VALID.send, data: [1, 2, [3, [4, [5]]]] }, "too_big", undefined, limits);
  // Far deeper than the limit, and than a naive recursive walk would survive.
  const deep = "[".repeat(5000) + "]".repeat(5000);
  expectError(`{"op":"send","id":"c","to":"user:u","type":"t","data":${deep}}`, "too_big");
});

test("token: non-empty, within maxTokenChars (else unauthorized: never retried), never echoed", () => {
  const long = "t".repeat(8193);
  expectError({ op: "hello", token: long }, "unauthorized", /hello\.token is longer than 8192 characters/);
  expectError({ ...VALID.auth, token: long }, "unauthorized");
  assert.equal(decode({ op: "hello", token: "t".repeat(8192) }).ok, true);
  expectError({ op: "hello", token: "" }, "bad_frame", /hello\.token/);
  expectError({ op: "hello", token: "ab" }, "unauthorized", undefined, {
    ...DEFAULT_FRAME_LIMITS,
    maxTokenChars: 1,
  });
  const secret = "SECRET-TOKEN-VALUE";
  const r = decode({ op: "hello", token: secret, cursor: "bad" });
  assert.ok(!r.ok && !r.error.message.includes(secret));
});

test("hello cursor must parse", () => {
  for (const bad of ["", "e1:3", "E1:3:42", "e1:03:42", "e1:3:-2", "e1:3:9223372036854775808"]) {
    expectError({ op: "hello", token: "t", cursor: bad }, "bad_cursor", /hello\.cursor/);
  }
  expectError({ op: "hello", token: "t", cursor: 42 }, "bad_frame");
});

test("traceparent: W3C format", () => {
  for (const good of [TRACEPARENT, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future"]) {
    assert.equal(decode({ ...VALID.send, traceparent: good }).ok, true, good);
  }
  const bad = [
    "",
    TRACEPARENT.toUpperCase(),
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", // short trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 has no suffix
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    `01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-${"x".repeat(300)}`,
  ];
  for (const t of bad) expectError({ ...VALID.send, traceparent: t }, "bad_frame", /send\.traceparent/);
});

test("frames over maxFrameChars are refused before parsing", () => {
  const limits = { ...DEFAULT_FRAME_LIMITS, maxFrameChars: 20 };
  expectError('{"op":"ping","id":"abcdefgh"}', "too_big", /longer than 20/, limits);
  expectError("x".repeat(64 * 1024 + 1), "too_big");
});

test("encodeServerFrame writes one JSON object per frame", () => {
  const frames: ServerFrame[] = [
    {
      op: "welcome",
      user: "bob",
      cursor: "e1:3:42",
      recovered: true,
      heartbeat_s: 30,
      session: "s1",
      node: "gw-1",
      limits: {
        max_frame_bytes: 65536,
        max_data_depth: 32,
        max_rooms: 100,
        max_channels: 100,
        sends_per_s: 20,
      },
    },
    { op: "redirect", url: "wss://gw-2.example/v1/ws" },
    { op: "ack", id: "c1", ok: true, cursor: "e1:3:43" },
    { op: "ack", id: "c2", ok: false, error: { code: "unavailable", message: "kafka down" } },
    {
      op: "event",
      cursor: "e1:3:43",
      id: "c1",
      from: "alice",
      to: "user:bob",
      type: "chat.message",
      data: { t: 1 },
      ts: 1,
    },
    { op: "ping" },
    { op: "pong", id: "p1" },
    { op: "error", code: "bad_frame", message: "send: missing field id" },
  ];
  const serverOps = new Set<string>(Object.values(ServerOp));
  for (const frame of frames) {
    const text = encodeServerFrame(frame);
    assert.deepEqual(JSON.parse(text), frame);
    assert.ok(serverOps.has(frame.op));
  }
});

const arbJsonText = fc.oneof(
  fc.json({ maxDepth: 6 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
);
const junk = fc.jsonValue({ maxDepth: 1 });
/** Mostly valid values, sometimes near misses, sometimes junk of any JSON type. */
const mostly = (valid: fc.Arbitrary<unknown>, nearMiss: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof(
    { arbitrary: valid, weight: 8 },
    { arbitrary: nearMiss, weight: 1 },
    { arbitrary: junk, weight: 1 },
  );
const FIELD_ARBS: Readonly<Record<string, fc.Arbitrary<unknown>>> = {
  id: mostly(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/), fc.string({ maxLength: 70 })),
  token: mostly(fc.string({ minLength: 1, maxLength: 50 }), fc.constant("")),
  cursor: mostly(fc.constantFrom("e:1:2", "0:0:0"), fc.string({ maxLength: 50 })),
  to: mostly(
    fc.tuple(fc.constantFrom("user:", "room:", "channel:"), fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/)),
    fc.tuple(fc.constantFrom("user:", "x:", ""), fc.string({ maxLength: 130 })),
  ).map((v) =>
    Array.isArray(v) && v.length === 2 && typeof v[0] === "string" ? `${v[0]}${String(v[1])}` : v,
  ),
  type: mostly(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/), fc.string({ maxLength: 70 })),
  data: fc.jsonValue({ maxDepth: 40 }),
  traceparent: mostly(fc.constant(TRACEPARENT), fc.string({ maxLength: 60 })),
  room: mostly(fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/), fc.string({ maxLength: 130 })),
  channel: mostly(fc.oneof(fc.constant("*"), fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/)), fc.string()),
};
/** Frames of a real op with mostly plausible fields, so the fuzz reaches every check. */
const arbFrameish = fc
  .tuple(
    fc.constantFrom(...Object.values(ClientOp)),
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 9 }, junk),
  )
  .chain(([op, extra]) => {
    const fields = Object.keys(VALID[op]).filter((k) => k !== "op");
    const arbs = Object.fromEntries(fields.map((k) => [k, FIELD_ARBS[k]!]));
    const required = fields.filter((k) => !OPTIONAL[op].includes(k));
    return fc
      .oneof(
        { arbitrary: fc.record(arbs, { requiredKeys: required }), weight: 8 },
        fc.record(arbs, { requiredKeys: [] }),
      )
      .map((rest) => JSON.stringify(extra === undefined ? { op, ...rest } : { op, ...rest, extra }));
  });

test("decodeClientFrame never throws, and an accepted frame round-trips", () => {
  fc.assert(
    fc.property(fc.oneof(arbJsonText, arbFrameish), (text) => {
      const r = decodeClientFrame(text);
      if (r.ok) {
        assert.deepEqual(decodeClientFrame(JSON.stringify(r.frame)), r);
      } else {
        assert.ok(isErrorCode(r.error.code));
        assert.equal(typeof r.error.message, "string");
      }
    }),
    { seed, numRuns: 10000 },
  );
});
