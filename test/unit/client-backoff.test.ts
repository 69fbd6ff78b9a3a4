import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Backoff,
  DEFAULT_BACKOFF,
  backoffWindowMs,
  fullJitterMs,
  validateBackoff,
} from "../../client/backoff.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`client-backoff.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

test("the window doubles from base up to the cap", () => {
  const windows = Array.from({ length: 9 }, (_, n) => backoffWindowMs(n));
  assert.deepEqual(windows, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(backoffWindowMs(10_000), 30_000, "no overflow for huge attempts");
  assert.equal(backoffWindowMs(-3), 500, "negative attempts count as the first");
  assert.equal(backoffWindowMs(2, { baseMs: 100, capMs: 250 }), 250);
});

test("full jitter spans the whole window: 0 at random 0, the window just below random 1", () => {
  assert.equal(
    fullJitterMs(3, DEFAULT_BACKOFF, () => 0),
    0,
  );
  assert.equal(
    fullJitterMs(3, DEFAULT_BACKOFF, () => 0.9999999999),
    4000,
  );
  assert.equal(
    fullJitterMs(3, DEFAULT_BACKOFF, () => 0.5),
    2000,
  );
  // A broken random source cannot push the delay out of the window.
  assert.equal(
    fullJitterMs(3, DEFAULT_BACKOFF, () => 7),
    4000,
  );
  assert.equal(
    fullJitterMs(3, DEFAULT_BACKOFF, () => -1),
    0,
  );
  assert.equal(
    fullJitterMs(3, DEFAULT_BACKOFF, () => Number.NaN),
    0,
  );
});

test("property: every delay is a whole number in [0, min(cap, base * 2^n)]", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: 1, max: 10_000 }),
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, baseMs, extra, r) => {
        const options = { baseMs, capMs: baseMs + extra };
        const d = fullJitterMs(attempt, options, () => r);
        const bound = Math.min(options.capMs, baseMs * 2 ** attempt);
        return Number.isInteger(d) && d >= 0 && d <= bound;
      },
    ),
    { seed, numRuns: 2000 },
  );
});

test("property: a Backoff's n-th delay is within the n-th window, and reset starts over", () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
        minLength: 1,
        maxLength: 80,
      }),
      fc.integer({ min: 0, max: 80 }),
      (randoms, resetAt) => {
        let i = 0;
        const b = new Backoff({ baseMs: 500, capMs: 30_000 }, () => randoms[i++ % randoms.length]!);
        let n = 0;
        for (let k = 0; k < randoms.length; k++) {
          if (k === resetAt) {
            b.reset();
            n = 0;
          }
          assert.equal(b.attempt, n);
          const d = b.next();
          if (d < 0 || d > Math.min(30_000, 500 * 2 ** n)) return false;
          n += 1;
        }
        return true;
      },
    ),
    { seed, numRuns: 500 },
  );
});

test("backoff options are checked where they enter", () => {
  assert.deepEqual(validateBackoff({ baseMs: 10, capMs: 10 }), { baseMs: 10, capMs: 10 });
  assert.throws(() => validateBackoff({ baseMs: 0, capMs: 10 }), RangeError);
  assert.throws(() => validateBackoff({ baseMs: 100, capMs: 10 }), RangeError);
  assert.throws(() => validateBackoff({ baseMs: Number.NaN, capMs: 10 }), RangeError);
});
