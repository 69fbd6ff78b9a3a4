import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import {
  CodecError,
  DELIVERY_CANONICAL_FORM,
  DELIVERY_FINGERPRINT,
  decodeDelivery,
  encodeDelivery,
  tryDecodeDelivery,
  type CodecErrorCode,
  type Delivery,
  type Framing,
} from "../../schemas/codec.ts";

const LONG_MAX = 2 ** 53 - 2;

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`codec.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

const SAMPLE: Delivery = {
  id: "m1",
  type: "chat.message",
  sender: "alice",
  recipient: "bob",
  room: null,
  ts: 1_700_000_000_000,
  data: '{"text":"hi"}',
  attributes: { a: "b" },
};

const FRAMINGS: readonly Framing[] = [
  { framing: "single-object" },
  { framing: "confluent", schemaId: 0 },
  { framing: "confluent", schemaId: 42 },
  { framing: "confluent", schemaId: 2 ** 31 - 1 },
];

function codeOf(bytes: Uint8Array): CodecErrorCode | "ok" {
  const r = tryDecodeDelivery(bytes);
  return r.ok ? "ok" : r.error.code;
}

// Strings that survive UTF-8 (no lone surrogates), as any Avro string must.
const text = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: "grapheme", maxLength });
const arbDelivery: fc.Arbitrary<Delivery> = fc
  .record({
    id: text(64),
    type: text(64),
    sender: text(40),
    recipient: text(40),
    room: fc.option(text(40), { nil: null }),
    ts: fc.oneof(
      fc.nat(),
      fc.maxSafeNat().filter((n) => n <= LONG_MAX),
    ), // avsc's exact long range
    data: fc.json(),
    attributes: fc
      .dictionary(text(20), text(20), { maxKeys: 5, noNullPrototype: true })
      .filter((a) => !Object.hasOwn(a, "__proto__")),
  })
  .map((d) => ({ ...d })); // plain objects: fc.record builds null-prototype ones
const arbFraming: fc.Arbitrary<Framing> = fc.oneof(
  fc.constant<Framing>({ framing: "single-object" }),
  fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((schemaId): Framing => ({ framing: "confluent", schemaId })),
);

test("the schema's canonical form and fingerprint are pinned", () => {
  // Changing either changes the bytes on the wire: that is a new schema version, not an edit.
  assert.equal(
    DELIVERY_CANONICAL_FORM,
    '{"name":"rt.v1.Delivery","type":"record","fields":[{"name":"id","type":"string"},' +
      '{"name":"type","type":"string"},{"name":"sender","type":"string"},{"name":"recipient","type":"string"},' +
      '{"name":"room","type":["null","string"]},{"name":"ts","type":"long"},{"name":"data","type":"string"},' +
      '{"name":"attributes","type":{"type":"map","values":"string"}}]}',
  );
  assert.equal(DELIVERY_FINGERPRINT, 0xcaa51b1e00b17a4dn);
});

test("the .avsc documents the record and every field", () => {
  const schema = JSON.parse(
    readFileSync(new URL("../../schemas/delivery.avsc", import.meta.url), "utf8"),
  ) as {
    doc?: string;
    fields: { name: string; doc?: string }[];
  };
  assert.ok(schema.doc);
  for (const f of schema.fields) assert.ok(f.doc, `field ${f.name} has a doc`);
});

test("headers: single-object and Confluent framing", () => {
  const single = encodeDelivery(SAMPLE);
  assert.deepEqual([...single.subarray(0, 2)], [0xc3, 0x01]);
  assert.equal(single.readBigUInt64LE(2), DELIVERY_FINGERPRINT);
  const confluent = encodeDelivery(SAMPLE, { framing: "confluent", schemaId: 0x01020304 });
  assert.deepEqual([...confluent.subarray(0, 5)], [0x00, 0x01, 0x02, 0x03, 0x04]);
  assert.deepEqual(single.subarray(10), confluent.subarray(5), "same Avro body");
});

test("every framing round-trips and reports itself", () => {
  for (const framing of FRAMINGS) {
    const r = tryDecodeDelivery(encodeDelivery(SAMPLE, framing));
    assert.deepEqual(r, { ok: true, delivery: SAMPLE, framing });
  }
  const room = { ...SAMPLE, room: "lobby", attributes: {} };
  assert.deepEqual(decodeDelivery(encodeDelivery(room)), room);
  // A Uint8Array view that is not a Buffer, at a non-zero offset, decodes the same.
  const bytes = encodeDelivery(SAMPLE);
  const padded = new Uint8Array(bytes.length + 3);
  padded.set(bytes, 3);
  assert.deepEqual(decodeDelivery(padded.subarray(3)), SAMPLE);
});

test("round trip holds for arbitrary deliveries in arbitrary framings", () => {
  fc.assert(
    fc.property(arbDelivery, arbFraming, (d, framing) => {
      assert.deepEqual(tryDecodeDelivery(encodeDelivery(d, framing)), { ok: true, delivery: d, framing });
    }),
    { seed, numRuns: 1000 },
  );
});

test("every strict prefix of a record is truncated", () => {
  for (const framing of FRAMINGS) {
    const bytes = encodeDelivery({ ...SAMPLE, room: "r", attributes: { k1: "v1", k2: "v2" } }, framing);
    for (let n = 0; n < bytes.length; n++) {
      assert.equal(codeOf(bytes.subarray(0, n)), "truncated", `${framing.framing} prefix of ${n}`);
    }
    assert.equal(codeOf(bytes), "ok");
  }
  fc.assert(
    fc.property(arbDelivery, arbFraming, fc.nat(), (d, framing, cut) => {
      const bytes = encodeDelivery(d, framing);
      assert.equal(codeOf(bytes.subarray(0, cut % bytes.length)), "truncated");
    }),
    { seed, numRuns: 500 },
  );
});

test("wrong magic, wrong fingerprint, unaccepted schema id, trailing bytes", () => {
  const single = encodeDelivery(SAMPLE);
  assert.equal(codeOf(Buffer.from([0x01, ...single.subarray(1)])), "bad_magic");
  assert.equal(codeOf(Buffer.from([0xc3, 0x02, ...single.subarray(2)])), "bad_magic");
  assert.equal(codeOf(Buffer.from('{"op":"event"}')), "bad_magic");
  for (let i = 2; i < 10; i++) {
    const wrong = Buffer.from(single);
    wrong[i]! ^= 0x01;
    assert.equal(codeOf(wrong), "unknown_fingerprint", `flipped header byte ${i}`);
  }
  const confluent = encodeDelivery(SAMPLE, { framing: "confluent", schemaId: 7 });
  assert.equal(decodeDelivery(confluent, { confluentSchemaIds: new Set([7]) }).id, "m1");
  const r = tryDecodeDelivery(confluent, { confluentSchemaIds: new Set([8]) });
  assert.equal(r.ok ? "ok" : r.error.code, "unknown_schema_id");
  assert.equal(codeOf(Buffer.concat([single, Buffer.from([0])])), "bad_body");
});

test("decodeDelivery throws a CodecError carrying the code", () => {
  assert.throws(
    () => decodeDelivery(Buffer.from([0x07])),
    (e: unknown) => e instanceof CodecError && e.code === "bad_magic" && e.retriable === false,
  );
});

test("corrupt bodies fail as bad_body or truncated and never throw", () => {
  const header = encodeDelivery(SAMPLE).subarray(0, 10);
  const body = (...bytes: number[]): Buffer => Buffer.concat([header, Buffer.from(bytes)]);
  // A map block claiming 2^62 entries: avsc alone would loop for ages on this.
  const hugeMap = body(0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
  assert.equal(codeOf(hugeMap), "truncated", "stops at the end of the bytes instead of looping 2^62 times");
  assert.equal(codeOf(body(1)), "bad_body", "negative string length");
  assert.equal(codeOf(body(0, 0, 0, 0, 4)), "bad_body", "union index 2 of 2");
  assert.equal(
    codeOf(body(0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
    "bad_body",
  );
  // A long beyond 2^53 is well-formed Avro that avsc refuses to decode into a number.
  assert.equal(
    codeOf(body(0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0)),
    "bad_body",
  );
  fc.assert(
    fc.property(arbDelivery, fc.nat(), fc.integer({ min: 0, max: 255 }), (d, at, byte) => {
      const bytes = Buffer.from(encodeDelivery(d));
      bytes[10 + (at % (bytes.length - 10))] = byte;
      const r = tryDecodeDelivery(bytes);
      assert.ok(r.ok || ["bad_body", "truncated"].includes(r.error.code));
    }),
    { seed, numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
      const r = tryDecodeDelivery(Buffer.concat([header, tail]));
      assert.equal(typeof r.ok, "boolean");
    }),
    { seed, numRuns: 2000 },
  );
});

test("encode refuses values that do not match the schema, naming the field", () => {
  const bad: ReadonlyArray<readonly [unknown, RegExp]> = [
    [{ ...SAMPLE, ts: 1.5 }, /field ts/],
    [{ ...SAMPLE, ts: -1 }, /field ts/],
    [{ ...SAMPLE, ts: 2 ** 60 }, /field ts/],
    [{ ...SAMPLE, ts: LONG_MAX + 1 }, /field ts/],
    [{ ...SAMPLE, id: 7 }, /field id/],
    [{ ...SAMPLE, room: 5 }, /field room/],
    [{ ...SAMPLE, attributes: { x: 1 } }, /field attributes\.x/],
    [{ ...SAMPLE, attributes: JSON.parse('{"__proto__":"x"}') as unknown }, /__proto__/],
  ];
  for (const [value, message] of bad) {
    assert.throws(
      () => encodeDelivery(value as Delivery),
      (e: unknown) => e instanceof CodecError && e.code === "bad_value" && message.test(e.message),
    );
  }
  assert.throws(() => encodeDelivery(SAMPLE, { framing: "confluent", schemaId: -1 }), RangeError);
  assert.throws(() => encodeDelivery(SAMPLE, { framing: "confluent", schemaId: 2 ** 31 }), RangeError);
});

test("golden v1 record decodes to the same fields and re-encodes to the same bytes", () => {
  const golden = readFileSync(new URL("../../schemas/golden/delivery-v1.bin", import.meta.url));
  const expected: Delivery = {
    id: "golden-1",
    type: "chat.message",
    sender: "service:golden",
    recipient: "user-ü-1",
    room: "room:lobby",
    ts: 1_735_689_600_000,
    data: '{"text":"héllo 🌍","n":[1,2,3]}',
    attributes: { origin: "make-golden", schema: "v1" },
  };
  // If this fails, records already in Kafka no longer decode: bump the schema version instead.
  assert.deepEqual(decodeDelivery(golden), expected);
  assert.deepEqual(encodeDelivery(expected), golden);
});
