import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createTokenBucket, type TokenBucket } from "../../gateway/rate-limit.ts";

const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`rate-limit.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 500 };

test("a new bucket is full, grants its burst at once, then rejects", () => {
  const b = createTokenBucket({ ratePerSec: 10, burst: 3 });
  assert.equal(b.available(0), 3);
  for (let i = 0; i < 3; i++) assert.deepEqual(b.take(1000), { ok: true });
  assert.deepEqual(b.take(1000), { ok: false, retryAfterMs: 100, consecutiveRejections: 1 });
  assert.equal(b.consecutiveRejections, 1);
});

test("take table: refill, retryAfterMs and consecutive rejections", () => {
  type Step = readonly [nowMs: number, n: number, expected: ReturnType<TokenBucket["take"]>];
  const cases: readonly { name: string; ratePerSec: number; burst: number; steps: readonly Step[] }[] = [
    {
      name: "refills at the rate",
      ratePerSec: 10,
      burst: 2,
      steps: [
        [0, 2, { ok: true }],
        [50, 1, { ok: false, retryAfterMs: 50, consecutiveRejections: 1 }],
        [99, 1, { ok: false, retryAfterMs: 1, consecutiveRejections: 2 }],
        [100, 1, { ok: true }],
        [100, 1, { ok: false, retryAfterMs: 100, consecutiveRejections: 1 }],
      ],
    },
    {
      name: "never holds more than burst",
      ratePerSec: 1000,
      burst: 2,
      steps: [
        [0, 2, { ok: true }],
        [1_000_000, 2, { ok: true }],
        [1_000_000, 1, { ok: false, retryAfterMs: 1, consecutiveRejections: 1 }],
      ],
    },
    {
      name: "a cost of n waits for n tokens",
      ratePerSec: 4,
      burst: 5,
      steps: [
        [0, 5, { ok: true }],
        [0, 3, { ok: false, retryAfterMs: 750, consecutiveRejections: 1 }],
        [500, 3, { ok: false, retryAfterMs: 250, consecutiveRejections: 2 }],
        [750, 3, { ok: true }],
      ],
    },
    {
      name: "a cost above burst can never succeed",
      ratePerSec: 100,
      burst: 2,
      steps: [
        [0, 3, { ok: false, retryAfterMs: Infinity, consecutiveRejections: 1 }],
        [1_000_000, 3, { ok: false, retryAfterMs: Infinity, consecutiveRejections: 2 }],
        [1_000_000, 2, { ok: true }],
      ],
    },
    {
      name: "a fractional rate",
      ratePerSec: 0.5,
      burst: 1,
      steps: [
        [0, 1, { ok: true }],
        [1000, 1, { ok: false, retryAfterMs: 1000, consecutiveRejections: 1 }],
        [2000, 1, { ok: true }],
      ],
    },
    {
      name: "a clock that goes back refills nothing, and counts the way back in retryAfterMs",
      ratePerSec: 10,
      burst: 1,
      steps: [
        [1000, 1, { ok: true }],
        [0, 1, { ok: false, retryAfterMs: 1100, consecutiveRejections: 1 }],
        [1050, 1, { ok: false, retryAfterMs: 50, consecutiveRejections: 2 }],
        [1100, 1, { ok: true }],
      ],
    },
  ];
  for (const c of cases) {
    const b = createTokenBucket({ ratePerSec: c.ratePerSec, burst: c.burst });
    c.steps.forEach(([nowMs, n, expected], i) => {
      assert.deepEqual(b.take(nowMs, n), expected, `${c.name}: step ${i}`);
    });
  }
});

test("a success resets consecutiveRejections", () => {
  const b = createTokenBucket({ ratePerSec: 1, burst: 1 });
  b.take(0);
  b.take(0);
  b.take(10);
  assert.equal(b.consecutiveRejections, 2);
  assert.deepEqual(b.take(1000), { ok: true });
  assert.equal(b.consecutiveRejections, 0);
});

test("bad config and bad arguments throw", () => {
  for (const ratePerSec of [0, -1, NaN, Infinity]) {
    assert.throws(() => createTokenBucket({ ratePerSec, burst: 1 }), RangeError);
  }
  for (const burst of [0, -1, 1.5, NaN]) {
    assert.throws(() => createTokenBucket({ ratePerSec: 1, burst }), RangeError);
  }
  const b = createTokenBucket({ ratePerSec: 1, burst: 1 });
  for (const n of [0, -1, 1.5]) assert.throws(() => b.take(0, n), RangeError);
  assert.throws(() => b.take(NaN), RangeError);
});

// One step of a generated run: move the clock by dtMs (negative: backwards), then take n.
const stepArb = (burst: number) =>
  fc.record({ dtMs: fc.integer({ min: -300, max: 400 }), n: fc.integer({ min: 1, max: burst + 1 }) });
const runArb = fc
  .record({ ratePerSec: fc.integer({ min: 1, max: 2000 }), burst: fc.integer({ min: 1, max: 20 }) })
  .chain((cfg) =>
    fc.record({ cfg: fc.constant(cfg), steps: fc.array(stepArb(cfg.burst), { maxLength: 80 }) }),
  );

test("property: never grants more than burst + rate * elapsed over any window", () => {
  fc.assert(
    fc.property(runArb, ({ cfg, steps }) => {
      const b = createTokenBucket(cfg);
      // Grants at the latest time seen so far: backwards steps only make windows shorter.
      const grants: { atMs: number; n: number }[] = [];
      let nowMs = 0;
      let latestMs = -Infinity;
      for (const { dtMs, n } of steps) {
        nowMs += dtMs;
        latestMs = Math.max(latestMs, nowMs);
        if (b.take(nowMs, n).ok) grants.push({ atMs: latestMs, n });
      }
      for (let i = 0; i < grants.length; i++) {
        let granted = 0;
        for (let j = i; j < grants.length; j++) {
          granted += grants[j]!.n;
          const elapsedMs = grants[j]!.atMs - grants[i]!.atMs;
          // In thousandths of a token, so the comparison is exact.
          assert.ok(granted * 1000 <= cfg.burst * 1000 + cfg.ratePerSec * elapsedMs, `window ${i}..${j}`);
        }
      }
    }),
    runs,
  );
});

test("property: a clock going backwards mints nothing (same as a clock that stood still)", () => {
  fc.assert(
    fc.property(runArb, ({ cfg, steps }) => {
      const jumpy = createTokenBucket(cfg);
      const clamped = createTokenBucket(cfg);
      let nowMs = 0;
      let latestMs = -Infinity;
      for (const { dtMs, n } of steps) {
        nowMs += dtMs;
        latestMs = Math.max(latestMs, nowMs);
        const a = jumpy.take(nowMs, n);
        const b = clamped.take(latestMs, n);
        assert.equal(a.ok, b.ok);
        assert.equal(jumpy.available(latestMs), clamped.available(latestMs));
      }
    }),
    runs,
  );
});

test("property: refill is monotonic in time, capped at burst, and peeking changes nothing", () => {
  fc.assert(
    fc.property(runArb, fc.array(fc.nat({ max: 5000 }), { minLength: 2 }), ({ cfg, steps }, offsets) => {
      const b = createTokenBucket(cfg);
      const twin = createTokenBucket(cfg);
      let nowMs = 0;
      for (const { dtMs, n } of steps) {
        nowMs += dtMs;
        b.take(nowMs, n);
        twin.take(nowMs, n);
      }
      const sorted = [...offsets].sort((x, y) => x - y);
      let previous = -1;
      for (const offset of sorted) {
        const tokens = b.available(nowMs + offset);
        assert.ok(tokens >= previous && tokens <= cfg.burst);
        previous = tokens;
      }
      const probeMs = nowMs + (offsets[0] ?? 0);
      assert.deepEqual(b.take(probeMs, 1), twin.take(probeMs, 1));
    }),
    runs,
  );
});

test("property: retryAfterMs is exact (a ms earlier fails, then it succeeds)", () => {
  fc.assert(
    fc.property(runArb, ({ cfg, steps }) => {
      const b = createTokenBucket(cfg);
      let nowMs = 0;
      for (const { dtMs, n } of steps) {
        nowMs += dtMs;
        const r = b.take(nowMs, n);
        if (r.ok || r.retryAfterMs === Infinity) continue;
        assert.ok(r.retryAfterMs >= 1);
        const early = b.take(nowMs + r.retryAfterMs - 1, n);
        assert.equal(early.ok, false);
        assert.deepEqual(b.take(nowMs + r.retryAfterMs, n), { ok: true });
        nowMs += r.retryAfterMs;
      }
    }),
    runs,
  );
});
