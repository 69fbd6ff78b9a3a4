/**
 * Adversarial property tests of the client frame decoder (schemas/frames.ts), beyond the table
 * and fuzz tests of frames.test.ts: every truncation and single-character mutation of valid
 * frames, deep nesting, huge numbers and strings, lone surrogates, prototype-shaped keys, and
 * values that must never be echoed. Every input must give a typed result, never a throw.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_FRAME_LIMITS, decodeClientFrame, type FrameLimits } from "../../schemas/frames.ts";
import { isErrorCode, type ErrorCode } from "../../schemas/errors.ts";
import { recordMeasurements } from "../helpers/reliability.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`frames-prop.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const VALID_FRAMES: readonly string[] = [
  { op: "hello", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", cursor: "p4:3:42" },
  { op: "auth", id: "a1", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln" },
  {
    op: "send",
    id: "c1",
    to: "user:bob",
    type: "chat.message",
    data: { t: [1, "x", null] },
    traceparent: TRACEPARENT,
  },
  { op: "join", id: "j1", room: "lobby" },
  { op: "leave", id: "l1", room: "lobby" },
  { op: "subscribe", id: "s1", channel: "*" },
  { op: "unsubscribe", id: "u1", channel: "news" },
  { op: "ping", id: "p1" },
  { op: "pong" },
].map((f) => JSON.stringify(f));

/** Inputs decoded by this file, reported as "bad inputs tried" in docs/RELIABILITY.md. */
let decoded = 0;
let threw = 0;

type Result = ReturnType<typeof decodeClientFrame>;

/** Decodes and checks the result is typed; counts the input. A throw fails the test. */
function decodeTyped(text: string, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Result {
  decoded += 1;
  let r: Result;
  try {
    r = decodeClientFrame(text, limits);
  } catch (e) {
    threw += 1;
    throw e;
  }
  if (!r.ok) {
    assert.ok(isErrorCode(r.error.code), `untyped error ${JSON.stringify(r.error)}`);
    assert.equal(typeof r.error.message, "string");
    assert.ok(r.error.message.length <= 200, `message of ${r.error.message.length} chars`);
  }
  return r;
}

function expectCode(text: string, code: ErrorCode, limits?: FrameLimits): void {
  const r = decodeTyped(text, limits);
  assert.ok(!r.ok, `expected ${code}, got ok for ${text.slice(0, 100)}`);
  assert.equal(r.error.code, code, `${text.slice(0, 100)}: ${r.error.message}`);
}

after(() => {
  recordMeasurements("frames-prop", { framesDecoded: decoded, decoderThrows: threw });
});

test("every proper prefix of a valid frame is refused as bad_json (truncated frames)", () => {
  for (const frame of VALID_FRAMES) {
    assert.ok(decodeTyped(frame).ok, frame);
    for (let i = 0; i < frame.length; i++) {
      const r = decodeTyped(frame.slice(0, i));
      assert.ok(!r.ok, `prefix ${i} of ${frame} was accepted`);
      assert.equal(r.error.code, "bad_json");
    }
  }
});

test("any single-character change to a valid frame gives a typed result", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID_FRAMES),
      fc.nat(),
      fc.oneof(
        fc.string({ unit: "binary", minLength: 0, maxLength: 3 }),
        fc.constantFrom("\u0000", "\\", '"', "{", "]"),
      ),
      fc.boolean(),
      (frame, at, insert, replace) => {
        const i = at % (frame.length + 1);
        const text = frame.slice(0, i) + insert + frame.slice(replace ? i + 1 : i);
        const r = decodeTyped(text);
        // Whatever was accepted is still exactly one known frame.
        if (r.ok) assert.deepEqual(decodeTyped(JSON.stringify(r.frame)), r);
      },
    ),
    { seed, numRuns: 20_000 },
  );
});

test("nesting: deep arrays and objects anywhere are typed errors, never a stack overflow", () => {
  for (const depth of [33, 1_000, 100_000, 1_000_000]) {
    const limits = { ...DEFAULT_FRAME_LIMITS, maxFrameChars: 8 * depth + 200 };
    const arrays = "[".repeat(depth) + "]".repeat(depth);
    const objects = '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
    const send = (data: string) => `{"op":"send","id":"a","to":"user:b","type":"t","data":${data}}`;
    expectCode(send(arrays), "too_big", limits);
    expectCode(send(objects), "too_big", limits);
    // Nesting outside `data`: the frame's shape is wrong, whatever is inside.
    expectCode(arrays, "bad_frame", limits);
    expectCode(`{"op":"ping","id":${arrays}}`, "bad_frame", limits);
    expectCode(`{"op":"hello","token":${objects}}`, "bad_frame", limits);
    // Unbalanced: not JSON at all.
    expectCode(send("[".repeat(depth)), "bad_json", limits);
  }
});

test("depth limit: data of depth d is accepted exactly when d <= maxDepth", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 80 }),
      fc.integer({ min: 1, max: 64 }),
      fc.boolean(),
      (d, max, useObjects) => {
        const data = useObjects
          ? '{"k":'.repeat(d) + "0" + "}".repeat(d)
          : "[".repeat(d) + "0" + "]".repeat(d);
        const r = decodeTyped(`{"op":"send","id":"a","to":"user:b","type":"t","data":${data}}`, {
          ...DEFAULT_FRAME_LIMITS,
          maxDepth: max,
        });
        assert.equal(r.ok, d <= max, `depth ${d}, max ${max}`);
        if (!r.ok) assert.equal(r.error.code, "too_big");
      },
    ),
    { seed, numRuns: 2_000 },
  );
});

test("huge numbers, long strings and odd characters are typed outcomes", () => {
  const send = (data: string) => `{"op":"send","id":"a","to":"user:b","type":"t","data":${data}}`;
  for (const n of ["1e400", "-1e400", "1e-400", "123456789012345678901234567890", "-0", "9007199254740993"]) {
    const r = decodeTyped(send(n));
    assert.ok(r.ok, n);
    // Whatever the number became, the frame re-serializes (Infinity becomes null, as documented).
    assert.doesNotThrow(() => JSON.stringify(r.frame));
  }
  for (const bad of ["NaN", "Infinity", "0x10", "01", "1.", ".5", "+1", "1e", "--1"]) {
    expectCode(send(bad), "bad_json");
  }
  // A number where a string belongs is a typed bad_frame, however big.
  expectCode('{"op":"ping","id":1e400}', "bad_frame");
  expectCode(`{"op":"ping","id":${"9".repeat(5000)}}`, "bad_frame");
  // Strings: over the id cap, over the token cap, over the frame cap.
  expectCode(`{"op":"ping","id":"${"a".repeat(65)}"}`, "bad_frame");
  // A token over its cap: unauthorized (the same token never passes), not the retriable too_big.
  expectCode(`{"op":"auth","id":"a","token":"${"t".repeat(8193)}"}`, "unauthorized");
  expectCode(`{"op":"hello","token":"${"t".repeat(70_000)}"}`, "too_big");
  // Lone surrogates and control characters (escaped, as valid JSON) in every string field.
  for (const s of ["\\ud800", "\\udfff", "\\u0000", "a\\nb", "\\u202e", "\\ufeff"]) {
    expectCode(`{"op":"ping","id":"${s}"}`, "bad_frame");
    expectCode(`{"op":"send","id":"a","to":"user:${s}","type":"t","data":1}`, "bad_target");
    expectCode(`{"op":"hello","token":"x","cursor":"p1:0:${s}"}`, "bad_cursor");
    assert.ok(decodeTyped(send(`"${s}"`)).ok, "any string is fine inside data");
  }
  // Raw lone surrogates in the text (what a decoder might make of broken UTF-16).
  expectCode('{"op":"ping","id":"\ud800"}', "bad_frame");
  expectCode('\udc00{"op":"ping"}', "bad_json");
});

test("prototype-shaped keys and ops are refused and pollute nothing", () => {
  const cases: [string, ErrorCode][] = [
    ['{"op":"__proto__"}', "unknown_op"],
    ['{"op":"constructor"}', "unknown_op"],
    ['{"op":"toString"}', "unknown_op"],
    ['{"op":"hasOwnProperty"}', "unknown_op"],
    ['{"op":"ping","__proto__":{"polluted":true}}', "bad_frame"],
    ['{"op":"ping","constructor":{"prototype":{"polluted":true}}}', "bad_frame"],
    ['{"__proto__":{"op":"ping"}}', "bad_frame"],
    [
      '{"op":"send","id":"a","to":"user:b","type":"t","data":{"__proto__":{"polluted":true}}}',
      "ok" as ErrorCode,
    ],
  ];
  for (const [text, code] of cases) {
    if (code === ("ok" as ErrorCode)) assert.ok(decodeTyped(text).ok);
    else expectCode(text, code);
  }
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
});

test("error messages never echo a field's value (tokens, long strings)", () => {
  // A secret-looking value of 33+ characters that appears nowhere else in the frame.
  const secret = fc.stringMatching(/^[A-Za-z0-9]{33,80}$/).map((s) => `SECRET${s}`);
  const fields = ["op", "id", "token", "cursor", "to", "type", "traceparent", "room", "channel", "extra"];
  const ops = ["hello", "auth", "send", "join", "subscribe", "ping"];
  fc.assert(
    fc.property(
      fc.constantFrom(...ops),
      fc.constantFrom(...fields),
      secret,
      fc.boolean(),
      (op, field, value, asKey) => {
        const frame: Record<string, unknown> = { op };
        if (asKey) frame[value] = 1;
        else frame[field] = value;
        const r = decodeTyped(JSON.stringify(frame));
        if (!r.ok) assert.ok(!r.error.message.includes(value), `${r.error.message} echoes the value`);
      },
    ),
    { seed, numRuns: 5_000 },
  );
});

test("duplicate keys: the last one wins, and the frame is still checked as a whole", () => {
  // JSON.parse keeps the last duplicate; the decoder then checks the resulting object exactly.
  const r = decodeTyped('{"op":"ping","op":"hello","token":"x"}');
  assert.ok(r.ok);
  assert.equal(r.frame.op, "hello");
  expectCode('{"op":"hello","token":"x","op":"ping"}', "bad_frame");
});

test("arbitrary text, including invalid UTF-16 and binary noise, is a typed outcome", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 300 }),
        fc.string({
          unit: fc.constantFrom("{", "}", "[", "]", '"', ":", ",", "\\", "op", "hello", "1", "e", " "),
          maxLength: 200,
        }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("utf8")),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
      ),
      (text) => {
        decodeTyped(text);
      },
    ),
    { seed, numRuns: 20_000 },
  );
});

test("the frame size cap applies before parsing, at exactly maxFrameChars", () => {
  fc.assert(
    fc.property(fc.integer({ min: 16, max: 4096 }), fc.integer({ min: -3, max: 3 }), (max, delta) => {
      const len = Math.max(13, max + delta);
      const padding = " ".repeat(len - 13);
      const text = `{"op":"ping"}${padding}`;
      assert.equal(text.length, len);
      const r = decodeTyped(text, { ...DEFAULT_FRAME_LIMITS, maxFrameChars: max });
      assert.equal(r.ok, len <= max);
      if (!r.ok) assert.equal(r.error.code, "too_big");
    }),
    { seed, numRuns: 1_000 },
  );
});
