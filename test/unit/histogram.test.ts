import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Histogram, percentileRank } from "../../loadtest/histogram.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`histogram.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 300 };

const PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100];

/** The exact value at percentile p of sorted values, by the same rank rule the histogram uses. */
function exactPercentile(sorted: readonly number[], p: number): number {
  if (p === 0) return sorted[0]!;
  return sorted[percentileRank(p, sorted.length) - 1]!;
}

/** The histogram's answer is never below the exact value and at most 10^-digits above it. */
function assertWithinPrecision(h: Histogram, values: readonly number[], digits: number): void {
  const sorted = values.map((v) => Math.round(v)).sort((a, b) => a - b);
  for (const p of PERCENTILES) {
    const exact = exactPercentile(sorted, p);
    const got = h.percentile(p);
    assert.ok(got >= exact, `p${p}: ${got} < exact ${exact}`);
    assert.ok(got - exact <= exact * 10 ** -digits, `p${p}: ${got} too far above exact ${exact}`);
  }
}

test("percentileRank: the smallest rank covering p percent, despite binary floating point", () => {
  const table: readonly [p: number, total: number, rank: number][] = [
    [50, 1, 1],
    [50, 2, 1],
    [50, 3, 2],
    [99, 100, 99],
    [99.9, 1000, 999],
    [99.99, 10_000, 9999],
    [100, 7, 7],
    [0.0001, 7, 1],
    [90, 10, 9],
  ];
  for (const [p, total, rank] of table) assert.equal(percentileRank(p, total), rank, `p${p} of ${total}`);
});

test("an empty histogram reports zeros", () => {
  const h = new Histogram({ highestTrackableValue: 1000, significantDigits: 3 });
  assert.deepEqual(h.summary(), { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 });
});

test("values below the sub-bucket count are exact", () => {
  const h = new Histogram({ highestTrackableValue: 1_000_000, significantDigits: 3 });
  for (let v = 0; v < 2048; v++) {
    assert.equal(h.lowestEquivalentValue(v), v);
    assert.equal(h.highestEquivalentValue(v), v);
  }
  for (let v = 1; v <= 1000; v++) h.record(v);
  assert.equal(h.percentile(50), 500);
  assert.equal(h.percentile(99), 990);
  assert.equal(h.percentile(99.9), 999);
  assert.equal(h.percentile(100), 1000);
  assert.equal(h.min, 1);
  assert.equal(h.max, 1000);
  assert.equal(h.mean, 500.5);
});

test("bucket boundaries: each bucket spans at most 1/half of its lowest value", () => {
  for (const digits of [1, 2, 3, 4] as const) {
    const h = new Histogram({ highestTrackableValue: 2 ** 40, significantDigits: digits });
    for (const v of [2 ** 11, 2 ** 11 + 1, 3000, 4095, 4096, 123_456_789, 2 ** 40 - 1, 2 ** 40]) {
      const lo = h.lowestEquivalentValue(v);
      const hi = h.highestEquivalentValue(v);
      assert.ok(lo <= v && v <= hi, `digits ${digits}: ${v} not in [${lo}, ${hi}]`);
      assert.ok(hi - lo <= lo * 10 ** -digits, `digits ${digits}: bucket [${lo}, ${hi}] too wide`);
      if (hi < h.highestTrackableValue) {
        assert.equal(h.lowestEquivalentValue(hi + 1), hi + 1, `digits ${digits}: next bucket at ${hi + 1}`);
      }
    }
  }
});

test("memory is fixed by range and precision, not by what is recorded", () => {
  const h = new Histogram({ highestTrackableValue: 3_600_000_000, significantDigits: 3 });
  const buckets = h.bucketCount;
  assert.ok(buckets < 30_000, `${buckets} buckets`);
  for (let i = 0; i < 100_000; i++) h.record(i * 36_000);
  assert.equal(h.bucketCount, buckets);
  assert.equal(h.count, 100_000);
});

test("out-of-range values are clamped and counted; non-finite ones throw", () => {
  const h = new Histogram({ highestTrackableValue: 10_000, significantDigits: 2 });
  h.record(-5);
  h.record(50_000, 3);
  h.record(7.4);
  assert.equal(h.count, 5);
  assert.equal(h.clampedCount, 4);
  assert.equal(h.min, 0);
  assert.equal(h.max, 10_000);
  assert.equal(h.percentile(100), 10_000);
  assert.equal(h.percentile(1), 0);
  assert.throws(() => h.record(NaN), RangeError);
  assert.throws(() => h.record(Infinity), RangeError);
  assert.throws(() => h.record(1, 0), RangeError);
  assert.throws(() => h.percentile(101), RangeError);
  assert.throws(() => h.percentile(-1), RangeError);
  assert.throws(() => new Histogram({ highestTrackableValue: 1, significantDigits: 3 }), RangeError);
  assert.throws(
    () => new Histogram({ highestTrackableValue: 100, significantDigits: 5 as unknown as 3 }),
    RangeError,
  );
});

test("a skewed latency-like sample: percentiles within 0.1% of an exact sort", () => {
  // Deterministic: a long tail over six decades, as real latencies have.
  const values: number[] = [];
  let x = 12345;
  for (let i = 0; i < 50_000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const u = x / 2 ** 31;
    values.push(Math.round(200 + 1 / (1 - u * 0.999999) ** 2));
  }
  const h = new Histogram({ highestTrackableValue: 2 ** 42, significantDigits: 3 });
  for (const v of values) h.record(v);
  assertWithinPrecision(h, values, 3);
});

test("property: percentiles are within the precision of an exact sort, for every precision", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 3, 4),
      fc.array(fc.oneof(fc.nat(3000), fc.nat(10_000_000), fc.integer({ min: 0, max: 2 ** 36 })), {
        minLength: 1,
        maxLength: 400,
      }),
      (digits, values) => {
        const h = new Histogram({
          highestTrackableValue: 2 ** 36,
          significantDigits: digits as 1 | 2 | 3 | 4,
        });
        for (const v of values) h.record(v);
        assert.equal(h.count, values.length);
        assert.equal(h.min, Math.min(...values));
        assert.equal(h.max, Math.max(...values));
        assertWithinPrecision(h, values, digits);
      },
    ),
    runs,
  );
});

test("property: merging equals recording everything in one histogram; reset empties", () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat(100_000_000), { maxLength: 200 }),
      fc.array(fc.nat(100_000_000), { maxLength: 200 }),
      (a, b) => {
        const opts = { highestTrackableValue: 2 ** 30, significantDigits: 3 } as const;
        const ha = new Histogram(opts);
        const hb = new Histogram(opts);
        const all = new Histogram(opts);
        for (const v of a) ha.record(v);
        for (const v of b) hb.record(v);
        for (const v of [...a, ...b]) all.record(v);
        ha.merge(hb);
        assert.deepEqual(ha.summary(), all.summary());
        ha.reset();
        assert.equal(ha.count, 0);
        assert.equal(ha.percentile(99), 0);
      },
    ),
    runs,
  );
  const a = new Histogram({ highestTrackableValue: 1000, significantDigits: 3 });
  assert.throws(
    () => a.merge(new Histogram({ highestTrackableValue: 1000, significantDigits: 2 })),
    RangeError,
  );
});
