import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  OFFSET_MAX,
  PARTITION_MAX,
  formatCursor,
  isAfter,
  nextOffset,
  parseCursor,
  sameLog,
  type Cursor,
} from "../../schemas/cursor.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`cursor.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

test("parseCursor accepts canonical cursors", () => {
  const cases: ReadonlyArray<readonly [string, Cursor]> = [
    ["a:0:0", { epoch: "a", partition: 0, offset: 0n }],
    ["p4:3:-1", { epoch: "p4", partition: 3, offset: -1n }], // before the first event
    ["e1:11:42", { epoch: "e1", partition: 11, offset: 42n }],
    [
      "0123456789abcdef:2147483647:9223372036854775807",
      { epoch: "0123456789abcdef", partition: PARTITION_MAX, offset: OFFSET_MAX },
    ],
    ["z:7:9007199254740993", { epoch: "z", partition: 7, offset: 9007199254740993n }], // > 2^53, exact
  ];
  for (const [text, cursor] of cases) {
    assert.deepEqual(parseCursor(text), { ok: true, cursor }, text);
    assert.equal(formatCursor(cursor), text);
  }
});

test("parseCursor rejects malformed cursors with a reason", () => {
  const bad = [
    "",
    "a",
    "a:0",
    "a:0:0:0",
    ":0:0",
    "A:0:0", // uppercase epoch
    "a-b:0:0",
    "0123456789abcdefg:0:0", // epoch of 17 chars
    "a::0",
    "a:0:",
    "a:01:0", // leading zero
    "a:0:01",
    "a:-1:0",
    "a:0:-2",
    "a:0:-0",
    "a:0:-01",
    "a:+1:0",
    "a:1.0:0",
    "a:1e3:0",
    "a:0x1:0",
    "a: 1:0",
    "a:1 :0",
    "a:2147483648:0", // 2^31
    "a:99999999999:0",
    "a:0:9223372036854775808", // 2^63
    "a:0:99999999999999999999",
    "a:0:0\n",
    "a:٣:0", // non-ASCII digit
    "a".repeat(65),
    `a:0:${"0".repeat(62)}`,
  ];
  for (const text of bad) {
    const r = parseCursor(text);
    assert.equal(r.ok, false, JSON.stringify(text));
    if (!r.ok) assert.ok(r.reason.length > 0);
  }
});

test("formatCursor refuses cursors no parse could produce", () => {
  const bad: Cursor[] = [
    { epoch: "", partition: 0, offset: 0n },
    { epoch: "A", partition: 0, offset: 0n },
    { epoch: "a", partition: -1, offset: 0n },
    { epoch: "a", partition: 1.5, offset: 0n },
    { epoch: "a", partition: 2 ** 31, offset: 0n },
    { epoch: "a", partition: 0, offset: -2n },
    { epoch: "a", partition: 0, offset: OFFSET_MAX + 1n },
  ];
  for (const c of bad) assert.throws(() => formatCursor(c), RangeError);
});

test("isAfter compares offsets within one log and nothing across logs", () => {
  const c = (epoch: string, partition: number, offset: bigint): Cursor => ({ epoch, partition, offset });
  assert.equal(isAfter(c("e", 1, 5n), c("e", 1, 4n)), true);
  assert.equal(isAfter(c("e", 1, 4n), c("e", 1, 5n)), false);
  assert.equal(isAfter(c("e", 1, 5n), c("e", 1, 5n)), false);
  assert.equal(isAfter(c("e", 2, 5n), c("e", 1, 4n)), false);
  assert.equal(isAfter(c("f", 1, 5n), c("e", 1, 4n)), false);
  assert.equal(sameLog(c("e", 1, 0n), c("e", 1, 9n)), true);
  assert.equal(sameLog(c("e", 1, 0n), c("e", 2, 0n)), false);
  assert.equal(nextOffset(c("e", 1, 41n)), 42n);
  assert.equal(nextOffset(c("e", 1, OFFSET_MAX)), 2n ** 63n);
});

const arbCursor: fc.Arbitrary<Cursor> = fc
  .record({
    epoch: fc.stringMatching(/^[0-9a-z]{1,16}$/),
    partition: fc.integer({ min: 0, max: PARTITION_MAX }),
    offset: fc.bigInt({ min: 0n, max: OFFSET_MAX }),
  })
  .map((c) => ({ ...c })); // plain objects: fc.record builds null-prototype ones

test("format then parse is the identity", () => {
  fc.assert(
    fc.property(arbCursor, (cursor) => {
      const text = formatCursor(cursor);
      assert.ok(text.length <= 47);
      assert.deepEqual(parseCursor(text), { ok: true, cursor });
    }),
    { seed, numRuns: 2000 },
  );
});

test("parse then format is the identity on accepted strings", () => {
  const nearCursor = fc
    .tuple(fc.string({ maxLength: 18 }), fc.string({ maxLength: 12 }), fc.string({ maxLength: 21 }))
    .map(([a, b, c]) => `${a}:${b}:${c}`);
  fc.assert(
    fc.property(fc.oneof(nearCursor, fc.string({ maxLength: 80 })), (text) => {
      const r = parseCursor(text);
      if (r.ok) assert.equal(formatCursor(r.cursor), text);
    }),
    { seed, numRuns: 2000 },
  );
});

test("parseCursor never throws on arbitrary strings", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 100 }), (text) => {
      const r = parseCursor(text);
      assert.equal(typeof r.ok, "boolean");
    }),
    { seed, numRuns: 5000 },
  );
});

test("isAfter is a strict order within a log", () => {
  fc.assert(
    fc.property(arbCursor, fc.bigInt({ min: 0n, max: OFFSET_MAX }), (a, offset) => {
      const b = { ...a, offset };
      assert.equal(isAfter(a, b), a.offset > b.offset);
      assert.ok(!(isAfter(a, b) && isAfter(b, a)));
    }),
    { seed, numRuns: 1000 },
  );
});
