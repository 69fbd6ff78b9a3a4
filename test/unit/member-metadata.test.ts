import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MEMBER_METADATA_ERRORS,
  MEMBER_METADATA_LIMITS,
  decodeMemberMetadata,
  encodeMemberMetadata,
} from "../../common/kafka/member-metadata.ts";

const seed = Number(process.env.RT_TEST_SEED ?? Date.now());
console.log(`member-metadata.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 300 };

const bytes = (text: string): Buffer => Buffer.from(text, "utf8");

test("round trip; owned comes back sorted and deduplicated", () => {
  const encoded = encodeMemberMetadata({ url: "wss://gw-1.example.com:9001/v1/ws", owned: [7, 3, 7, 0] });
  assert.deepEqual(JSON.parse(encoded.toString("utf8")), {
    v: 1,
    url: "wss://gw-1.example.com:9001/v1/ws",
    owned: [0, 3, 7],
  });
  assert.deepEqual(decodeMemberMetadata(encoded), {
    ok: true,
    value: { url: "wss://gw-1.example.com:9001/v1/ws", owned: [0, 3, 7] },
  });
});

test("unknown fields are ignored (forward compatible within v1)", () => {
  const result = decodeMemberMetadata(bytes('{"v":1,"url":"ws://a:1","owned":[2],"zone":"eu-1"}'));
  assert.deepEqual(result, { ok: true, value: { url: "ws://a:1", owned: [2] } });
});

test("table: garbage gives a typed failure", () => {
  const { tooLarge, notJson, badShape, unsupportedVersion } = MEMBER_METADATA_ERRORS;
  const cases: Array<[string, Uint8Array | null | undefined, string]> = [
    ["null", null, badShape],
    ["undefined", undefined, badShape],
    ["empty", Buffer.alloc(0), badShape],
    ["not json", bytes("{v:1"), notJson],
    ["invalid utf-8", Buffer.from([0x7b, 0xff, 0x7d]), notJson],
    ["array", bytes("[1]"), badShape],
    ["string", bytes('"x"'), badShape],
    ["json null", bytes("null"), badShape],
    ["no version", bytes('{"url":"ws://a","owned":[]}'), unsupportedVersion],
    ["version 2", bytes('{"v":2,"url":"ws://a","owned":[]}'), unsupportedVersion],
    ["version as string", bytes('{"v":"1","url":"ws://a","owned":[]}'), unsupportedVersion],
    ["url missing", bytes('{"v":1,"owned":[]}'), badShape],
    ["url empty", bytes('{"v":1,"url":"","owned":[]}'), badShape],
    ["url not a url", bytes('{"v":1,"url":"gw-1:9001","owned":[]}'), badShape],
    ["url http", bytes('{"v":1,"url":"http://a","owned":[]}'), badShape],
    ["owned missing", bytes('{"v":1,"url":"ws://a"}'), badShape],
    ["owned object", bytes('{"v":1,"url":"ws://a","owned":{}}'), badShape],
    ["owned negative", bytes('{"v":1,"url":"ws://a","owned":[-1]}'), badShape],
    ["owned fraction", bytes('{"v":1,"url":"ws://a","owned":[1.5]}'), badShape],
    ["owned string", bytes('{"v":1,"url":"ws://a","owned":["1"]}'), badShape],
    ["owned past int32", bytes('{"v":1,"url":"ws://a","owned":[2147483648]}'), badShape],
    ["too large", Buffer.alloc(MEMBER_METADATA_LIMITS.maxBytes + 1, 0x20), tooLarge],
  ];
  for (const [name, input, code] of cases) {
    const result = decodeMemberMetadata(input);
    assert.equal(result.ok, false, name);
    if (!result.ok) assert.equal(result.code, code, name);
  }
});

test("limits: too many owned partitions or too long a url", () => {
  const owned = Array.from({ length: MEMBER_METADATA_LIMITS.ownedMax + 1 }, (_, i) => i);
  const many = decodeMemberMetadata(bytes(JSON.stringify({ v: 1, url: "ws://a", owned })));
  assert.equal(many.ok, false);
  const atLimit = owned.slice(0, MEMBER_METADATA_LIMITS.ownedMax);
  assert.equal(decodeMemberMetadata(encodeMemberMetadata({ url: "ws://a", owned: atLimit })).ok, true);

  const longUrl = `ws://a/${"x".repeat(MEMBER_METADATA_LIMITS.urlMaxChars)}`;
  assert.equal(decodeMemberMetadata(bytes(JSON.stringify({ v: 1, url: longUrl, owned: [] }))).ok, false);
});

test("encoding what no decoder would accept throws", () => {
  assert.throws(() => encodeMemberMetadata({ url: "http://a", owned: [] }), RangeError);
  assert.throws(() => encodeMemberMetadata({ url: "", owned: [] }), RangeError);
  assert.throws(() => encodeMemberMetadata({ url: "ws://a", owned: [-1] }), RangeError);
  assert.throws(() => encodeMemberMetadata({ url: "ws://a", owned: [0.5] }), RangeError);
  const owned = Array.from({ length: MEMBER_METADATA_LIMITS.ownedMax + 1 }, (_, i) => i);
  assert.throws(() => encodeMemberMetadata({ url: "ws://a", owned }), RangeError);
});

test("property: arbitrary bytes never throw and give a result or a typed failure", () => {
  const codes = new Set<string>(Object.values(MEMBER_METADATA_ERRORS));
  const jsonish = fc.oneof(
    fc.uint8Array({ maxLength: 256 }),
    fc.jsonValue().map((v) => bytes(JSON.stringify(v) ?? "")),
    fc
      .record({ v: fc.oneof(fc.constant(1), fc.anything()), url: fc.anything(), owned: fc.anything() })
      .map((v) => bytes(JSON.stringify(v) ?? "")),
  );
  fc.assert(
    fc.property(jsonish, (input) => {
      const result = decodeMemberMetadata(input);
      if (!result.ok) assert.ok(codes.has(result.code), result.code);
    }),
    runs,
  );
});

test("property: encode then decode returns the url and the sorted distinct partitions", () => {
  const urlArb = fc
    .tuple(fc.constantFrom("ws", "wss"), fc.domain(), fc.integer({ min: 1, max: 65535 }), fc.webPath())
    .map(([scheme, host, port, path]) => `${scheme}://${host}:${port}${path}`);
  const ownedArb = fc.array(fc.integer({ min: 0, max: MEMBER_METADATA_LIMITS.partitionMax }), {
    maxLength: 200,
  });
  fc.assert(
    fc.property(urlArb, ownedArb, (url, owned) => {
      const result = decodeMemberMetadata(encodeMemberMetadata({ url, owned }));
      assert.deepEqual(result, {
        ok: true,
        value: { url, owned: [...new Set(owned)].sort((a, b) => a - b) },
      });
    }),
    runs,
  );
});
