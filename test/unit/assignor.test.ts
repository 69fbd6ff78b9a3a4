import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { assignSticky, type AssignInput } from "../../common/assignor.ts";

const seed = Number(process.env.RT_TEST_SEED ?? Date.now());
console.log(`assignor.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);
const runs = { seed, numRuns: 1000 };

type Members = AssignInput["members"];

/** Messy inputs: claims out of range, negative, duplicated, and contested between members. */
const inputArb: fc.Arbitrary<AssignInput> = fc.integer({ min: 0, max: 48 }).chain((partitionCount) =>
  fc.record({
    partitionCount: fc.constant(partitionCount),
    members: fc
      .uniqueArray(
        fc.nat(999).map((n) => `m-${n}`),
        { maxLength: 12 },
      )
      .chain((ids) =>
        fc.tuple(
          ...ids.map((memberId) =>
            fc.record({
              memberId: fc.constant(memberId),
              previous: fc.array(fc.integer({ min: -2, max: partitionCount + 3 }), { maxLength: 12 }),
            }),
          ),
        ),
      ),
  }),
);

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Partition -> owner, asserting that every partition has exactly one owner. */
function ownerOf(result: Map<string, number[]>, partitionCount: number): Map<number, string> {
  const owner = new Map<number, string>();
  for (const [id, partitions] of result) {
    for (const p of partitions) {
      assert.ok(p >= 0 && p < partitionCount, `partition ${p} out of range`);
      assert.equal(owner.get(p), undefined, `partition ${p} assigned twice`);
      owner.set(p, id);
    }
  }
  assert.equal(owner.size, partitionCount, "every partition assigned");
  return owner;
}

function assertWellFormed(input: AssignInput, result: Map<string, number[]>): Map<number, string> {
  assert.deepEqual([...result.keys()], input.members.map((m) => m.memberId).sort(compareIds));
  if (input.members.length === 0) return new Map();
  const sizes = [...result.values()].map((ps) => ps.length);
  if (sizes.length > 0) assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `unbalanced ${sizes}`);
  for (const ps of result.values())
    assert.deepEqual(
      ps,
      [...ps].sort((a, b) => a - b),
    );
  return ownerOf(result, input.partitionCount);
}

/** Independent oracle: partition -> the one claimant it may stay with (smallest id wins). */
function resolvedClaims(input: AssignInput): Map<number, string> {
  const claimant = new Map<number, string>();
  for (const m of input.members) {
    for (const p of m.previous) {
      if (!Number.isInteger(p) || p < 0 || p >= input.partitionCount) continue;
      const current = claimant.get(p);
      if (current === undefined || compareIds(m.memberId, current) < 0) claimant.set(p, m.memberId);
    }
  }
  return claimant;
}

/** The most partitions any balanced assignment can leave with their claimant. */
function maxKept(input: AssignInput): number {
  const n = input.members.length;
  if (n === 0) return 0;
  const counts = new Map<string, number>(input.members.map((m) => [m.memberId, 0]));
  for (const id of resolvedClaims(input).values()) counts.set(id, (counts.get(id) ?? 0) + 1);
  const base = Math.floor(input.partitionCount / n);
  const extra = input.partitionCount % n;
  let sum = 0;
  let canUseExtra = 0;
  for (const c of counts.values()) {
    sum += Math.min(c, base);
    if (c > base) canUseExtra++;
  }
  return sum + Math.min(extra, canUseExtra);
}

function asPrevious(result: Map<string, number[]>): Members {
  return [...result].map(([memberId, previous]) => ({ memberId, previous }));
}

test("table: fresh, contested, out of range, more members than partitions, zero", () => {
  const cases: Array<{ name: string; input: AssignInput; want: Record<string, number[]> }> = [
    {
      name: "fresh group splits in ranges",
      input: {
        partitionCount: 6,
        members: [
          { memberId: "c", previous: [] },
          { memberId: "a", previous: [] },
          { memberId: "b", previous: [] },
        ],
      },
      want: { a: [0, 1], b: [2, 3], c: [4, 5] },
    },
    {
      name: "contested partition goes to the smallest memberId",
      input: {
        partitionCount: 4,
        members: [
          { memberId: "b", previous: [1, 2, 3] },
          { memberId: "a", previous: [0, 1] },
        ],
      },
      want: { a: [0, 1], b: [2, 3] },
    },
    {
      name: "claims past the partition count and negative claims are ignored",
      input: { partitionCount: 2, members: [{ memberId: "a", previous: [5, 1, -1, 1] }] },
      want: { a: [0, 1] },
    },
    {
      name: "more members than partitions: the extra ones get none",
      input: {
        partitionCount: 2,
        members: [
          { memberId: "c", previous: [] },
          { memberId: "b", previous: [] },
          { memberId: "a", previous: [] },
        ],
      },
      want: { a: [0], b: [1], c: [] },
    },
    {
      name: "the extra slot goes to the member claiming most",
      input: {
        partitionCount: 3,
        members: [
          { memberId: "a", previous: [0] },
          { memberId: "b", previous: [1, 2] },
        ],
      },
      want: { a: [0], b: [1, 2] },
    },
    {
      name: "a joiner takes one excess partition from each",
      input: {
        partitionCount: 6,
        members: [
          { memberId: "a", previous: [0, 1, 2] },
          { memberId: "b", previous: [3, 4, 5] },
          { memberId: "c", previous: [] },
        ],
      },
      want: { a: [0, 1], b: [3, 4], c: [2, 5] },
    },
    {
      name: "a leaver's partitions are spread, the rest stays",
      input: {
        partitionCount: 6,
        members: [
          { memberId: "a", previous: [0, 1] },
          { memberId: "c", previous: [2, 5] },
        ],
      },
      want: { a: [0, 1, 3], c: [2, 4, 5] },
    },
    {
      name: "zero partitions",
      input: { partitionCount: 0, members: [{ memberId: "a", previous: [0] }] },
      want: { a: [] },
    },
  ];
  for (const { name, input, want } of cases) {
    assert.deepEqual(Object.fromEntries(assignSticky(input)), want, name);
  }
});

test("zero members give an empty assignment", () => {
  assert.equal(assignSticky({ partitionCount: 12, members: [] }).size, 0);
});

test("caller bugs throw", () => {
  const a = { memberId: "a", previous: [] };
  assert.throws(() => assignSticky({ partitionCount: 2, members: [a, a] }), RangeError);
  assert.throws(() => assignSticky({ partitionCount: -1, members: [a] }), RangeError);
  assert.throws(() => assignSticky({ partitionCount: 1.5, members: [a] }), RangeError);
});

test("property: every partition owned exactly once, balanced, one entry per member", () => {
  fc.assert(
    fc.property(inputArb, (input) => {
      assertWellFormed(input, assignSticky(input));
    }),
    runs,
  );
});

test("property: as many partitions stay with their claimant as balance allows", () => {
  fc.assert(
    fc.property(inputArb, (input) => {
      const owner = assertWellFormed(input, assignSticky(input));
      let kept = 0;
      for (const [p, id] of resolvedClaims(input)) if (owner.get(p) === id) kept++;
      assert.equal(kept, maxKept(input));
    }),
    runs,
  );
});

test("property: deterministic whatever the order of members and claims", () => {
  const arb = inputArb.chain((input) =>
    fc.record({
      input: fc.constant(input),
      shuffled: fc.shuffledSubarray([...input.members], {
        minLength: input.members.length,
        maxLength: input.members.length,
      }),
    }),
  );
  fc.assert(
    fc.property(arb, ({ input, shuffled }) => {
      const reordered = shuffled.map((m) => ({ memberId: m.memberId, previous: [...m.previous].reverse() }));
      assert.deepEqual(
        [...assignSticky({ partitionCount: input.partitionCount, members: reordered })],
        [...assignSticky(input)],
      );
    }),
    runs,
  );
});

test("property: a joiner moves only the excess of the others, the fewest moves balance allows", () => {
  // Joining an empty group is the fresh case, covered above: nothing was owned, nothing moves.
  const nonEmpty = inputArb.filter((input) => input.members.length > 0);
  fc.assert(
    fc.property(
      nonEmpty,
      fc.nat(999).map((n) => `j-${n}`),
      (input, joiner) => {
        const before = assignSticky(input);
        const members = [...asPrevious(before), { memberId: joiner, previous: [] }];
        const after = assignSticky({ partitionCount: input.partitionCount, members });
        assertWellFormed({ partitionCount: input.partitionCount, members }, after);
        for (const [id, old] of before) {
          const now = after.get(id) ?? [];
          assert.ok(
            now.every((p) => old.includes(p)),
            `${id} gained a partition`,
          );
        }
        const moved = [...before].reduce(
          (sum, [id, old]) => sum + old.length - (after.get(id)?.length ?? 0),
          0,
        );
        assert.equal(moved, after.get(joiner)?.length);
        assert.equal(
          moved,
          input.partitionCount - maxKept({ partitionCount: input.partitionCount, members }),
        );
      },
    ),
    runs,
  );
});

test("property: when a member leaves, only its partitions move", () => {
  const arb = inputArb
    .filter((input) => input.members.length > 0)
    .chain((input) => fc.record({ input: fc.constant(input), leaver: fc.nat(input.members.length - 1) }));
  fc.assert(
    fc.property(arb, ({ input, leaver }) => {
      const before = assignSticky(input);
      const leaverId = [...before.keys()][leaver] ?? "";
      const members = asPrevious(before).filter((m) => m.memberId !== leaverId);
      const after = assignSticky({ partitionCount: input.partitionCount, members });
      if (members.length === 0) {
        assert.equal(after.size, 0);
        return;
      }
      const owner = assertWellFormed({ partitionCount: input.partitionCount, members }, after);
      const beforeOwner = ownerOf(before, input.partitionCount);
      const moved = [...beforeOwner].filter(([p, id]) => owner.get(p) !== id).map(([p]) => p);
      assert.deepEqual(
        moved.sort((a, b) => a - b),
        before.get(leaverId),
      );
    }),
    runs,
  );
});
