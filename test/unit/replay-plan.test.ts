import { test } from "node:test";
import assert from "node:assert/strict";
import { planRanges, type PlanInput } from "../../cli/replay-plan.ts";

const OFFSETS = [
  { partition: 0, low: "0", high: "100" },
  { partition: 1, low: "40", high: "90" }, // retention deleted 0..39
  { partition: 2, low: "0", high: "0" }, // empty
];

function plan(input: Partial<PlanInput>) {
  const r = planRanges({ offsets: OFFSETS, ...input });
  assert.ok(r.ok, r.ok ? "" : r.message);
  return r;
}

test("default: the whole retained log of every partition, up to its end now", () => {
  const r = plan({});
  assert.deepEqual(r.ranges, [
    { partition: 0, from: "0", to: "100" },
    { partition: 1, from: "40", to: "90" },
    { partition: 2, from: "0", to: "0" },
  ]);
  assert.deepEqual(r.gaps, []);
});

test("offsets: cut to the log, and what retention deleted is counted exactly", () => {
  const r = plan({ fromOffset: 10n, toOffset: 95n });
  assert.deepEqual(r.ranges, [
    { partition: 0, from: "10", to: "95" },
    { partition: 1, from: "40", to: "90" },
    { partition: 2, from: "0", to: "0" },
  ]);
  assert.deepEqual(r.gaps, [{ partition: 1, logStart: 40n, missing: 30n, exact: true }]);
  // A range that ends before the log start misses only its own records.
  const early = plan({ fromOffset: 10n, toOffset: 20n, partitions: [1] });
  assert.deepEqual(early.ranges, [{ partition: 1, from: "40", to: "40" }]);
  assert.deepEqual(early.gaps, [{ partition: 1, logStart: 40n, missing: 10n, exact: true }]);
});

test("times: resolved offsets per partition; a start at a truncated log start is an upper bound", () => {
  const r = plan({
    fromTime: [
      { partition: 0, offset: "25" },
      { partition: 1, offset: "40" },
      { partition: 2, offset: "-1" },
    ],
    toTime: [
      { partition: 0, offset: "60" },
      { partition: 1, offset: "90" },
    ],
  });
  assert.deepEqual(r.ranges, [
    { partition: 0, from: "25", to: "60" },
    { partition: 1, from: "40", to: "90" },
    { partition: 2, from: "0", to: "0" },
  ]);
  assert.deepEqual(r.gaps, [{ partition: 1, logStart: 40n, missing: 40n, exact: false }]);
});

test("partitions: only the chosen ones, and an unknown one is a bad argument", () => {
  assert.deepEqual(plan({ partitions: [1] }).ranges, [{ partition: 1, from: "40", to: "90" }]);
  assert.deepEqual(planRanges({ offsets: OFFSETS, partitions: [3] }), {
    ok: false,
    message: "bad --partition 3: the topic has partitions 0 to 2",
  });
});

test("a range never runs backwards or past the log end", () => {
  assert.deepEqual(plan({ fromOffset: 99n, toOffset: 500n, partitions: [0] }).ranges, [
    { partition: 0, from: "99", to: "100" },
  ]);
  assert.deepEqual(plan({ fromOffset: 200n, partitions: [0] }).ranges, [
    { partition: 0, from: "100", to: "100" },
  ]);
});
