import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import fc from "fast-check";
import { Partitioners } from "kafkajs";
import { murmur2, partitionForKey, toPositive } from "../../schemas/partition.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`partition.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

// KafkaJS's murmur2 is a port of the Java client's; it is the oracle for random keys.
const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require("kafkajs/src/producer/partitioners/default/murmur2.js") as (
  key: Buffer | string,
) => number;

// Java-computed values, from Kafka's UtilsTest.testMurmur2 and KafkaJS's murmur2 spec.
const JAVA_VECTORS: ReadonlyArray<readonly [string, number]> = [
  ["21", -973932308],
  ["foobar", -790332482],
  ["a-little-bit-long-string", -985981536],
  ["a-little-bit-longer-string", -1486304829],
  ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
  ["abc", 479470107],
  ["0", 971027396],
];

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

test("murmur2 matches the Java client's known values", () => {
  for (const [key, expected] of JAVA_VECTORS) {
    assert.equal(murmur2(utf8(key)), expected, key);
    assert.equal(kafkajsMurmur2(key), expected, `oracle agrees on ${key}`);
  }
});

test("murmur2 covers every tail length (0..3 trailing bytes)", () => {
  for (const key of ["", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"]) {
    assert.equal(murmur2(utf8(key)), kafkajsMurmur2(key), JSON.stringify(key));
  }
});

test("murmur2 equals KafkaJS's port on arbitrary bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      assert.equal(murmur2(bytes), kafkajsMurmur2(Buffer.from(bytes)));
    }),
    { seed, numRuns: 2000 },
  );
});

test("partitionForKey equals KafkaJS's DefaultPartitioner for arbitrary keys", () => {
  const partitioner = Partitioners.DefaultPartitioner();
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme", maxLength: 80 }),
      fc.integer({ min: 1, max: 1000 }),
      (key, n) => {
        const partitionMetadata = Array.from({ length: n }, (_, i) => ({
          partitionId: i,
          leader: 0,
          replicas: [0],
          isr: [0],
          partitionErrorCode: 0,
        }));
        const expected = partitioner({ topic: "t", partitionMetadata, message: { key, value: null } });
        assert.equal(partitionForKey(key, n), expected);
      },
    ),
    { seed, numRuns: 1000 },
  );
});

test("partitionForKey uses toPositive, not Math.abs", () => {
  // "21" hashes negative: toPositive(-973932308) = 1173551340, Math.abs would give 973932308.
  assert.equal(toPositive(-973932308), 1173551340);
  assert.equal(partitionForKey("21", 1000), 1173551340 % 1000);
  assert.equal(partitionForKey("21", 1), 0);
});

test("partitionForKey refuses a bad partition count or a key with no UTF-8 form", () => {
  for (const n of [0, -1, 1.5, Number.NaN, 2 ** 31]) {
    assert.throws(() => partitionForKey("bob", n), RangeError, String(n));
  }
  assert.throws(() => partitionForKey("a\uD800b", 12), RangeError);
  assert.throws(() => partitionForKey("\uDC00", 12), RangeError);
  assert.doesNotThrow(() => partitionForKey("\uD83D\uDE00", 12)); // a proper pair is fine
});
