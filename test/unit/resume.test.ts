import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { planResume, type ResumeInput } from "../../gateway/resume.ts";

const base: ResumeInput = {
  cursor: { epoch: "p4", partition: 2, offset: 90n },
  epoch: "p4",
  partition: 2,
  liveEdge: 99n,
  logStart: 10n,
  logEnd: 100n,
  ageStart: 50n,
  scanMax: 1000,
};
const cur = (offset: bigint, epoch = "p4", partition = 2) => ({ epoch, partition, offset });

test("planResume: every outcome", () => {
  const cases: [string, Partial<ResumeInput>, ReturnType<typeof planResume>][] = [
    ["recovered", {}, { recovered: true, startAfter: 90n }],
    ["at the live edge", { cursor: cur(99n) }, { recovered: true, startAfter: 99n }],
    [
      "empty log, cursor -1",
      { cursor: cur(-1n), liveEdge: -1n, logStart: 0n, logEnd: 0n, ageStart: 0n },
      { recovered: true, startAfter: -1n },
    ],
    ["no cursor", { cursor: null }, { recovered: false, startAfter: 99n, reason: "no_cursor" }],
    [
      "other epoch",
      { cursor: cur(90n, "p8") },
      { recovered: false, startAfter: 99n, reason: "epoch_changed" },
    ],
    [
      "other partition",
      { cursor: cur(90n, "p4", 3) },
      { recovered: false, startAfter: 99n, reason: "wrong_partition" },
    ],
    ["far future", { cursor: cur(5000n) }, { recovered: false, startAfter: 99n, reason: "future_cursor" }],
    [
      "just past the end",
      { cursor: cur(100n) },
      { recovered: false, startAfter: 99n, reason: "future_cursor" },
    ],
    [
      "ahead of a lagging gateway but in the log",
      { cursor: cur(95n), liveEdge: 80n },
      { recovered: true, startAfter: 95n },
    ],
    [
      "retention deleted the next event",
      { cursor: cur(8n), ageStart: 0n },
      { recovered: false, startAfter: 99n, reason: "retention" },
    ],
    [
      "next event exactly at log start",
      { cursor: cur(9n), ageStart: 0n },
      { recovered: true, startAfter: 9n },
    ],
    ["too old", { cursor: cur(40n) }, { recovered: false, startAfter: 99n, reason: "age_limit" }],
    [
      "nothing young but nothing to read either",
      { cursor: cur(99n), ageStart: 100n },
      { recovered: true, startAfter: 99n },
    ],
    [
      "scan limit",
      { cursor: cur(60n), scanMax: 10 },
      { recovered: false, startAfter: 99n, reason: "scan_limit" },
    ],
    ["scan limit exactly", { cursor: cur(89n), scanMax: 10 }, { recovered: true, startAfter: 89n }],
  ];
  for (const [name, patch, want] of cases) assert.deepEqual(planResume({ ...base, ...patch }), want, name);
});

test("planResume: a recovered plan starts at the cursor, anything else at the live edge", () => {
  const seed = Number(process.env.RT_TEST_SEED ?? Date.now());
  console.log(`resume property seed: ${seed}`);
  const off = fc.bigInt({ min: -1n, max: 500n });
  fc.assert(
    fc.property(
      off,
      off,
      off,
      off,
      off,
      fc.integer({ min: 0, max: 600 }),
      fc.boolean(),
      (c, live, start, end, age, scanMax, sameLog) => {
        const logStart = start < 0n ? 0n : start;
        const logEnd = end < logStart ? logStart : end;
        const input: ResumeInput = {
          cursor: cur(c, sameLog ? "p4" : "p5"),
          epoch: "p4",
          partition: 2,
          liveEdge: live,
          logStart,
          logEnd,
          ageStart: age < logStart ? logStart : age,
          scanMax,
        };
        const plan = planResume(input);
        if (plan.recovered) {
          assert.equal(plan.startAfter, c);
          assert.ok(sameLog);
          assert.ok(c + 1n >= logStart, "never recovered across a retention gap");
        } else assert.equal(plan.startAfter, live);
      },
    ),
    { seed, numRuns: 2000 },
  );
});
