import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { InRecord } from "../../common/kafka/kafka.ts";
import { ResumeWindow } from "../../gateway/resume-window.ts";

function rec(partition: number, offset: bigint, user: string, bytes = 100): InRecord {
  return {
    topic: "t",
    partition,
    offset: String(offset),
    key: Buffer.from(user),
    value: Buffer.alloc(bytes, 1),
    headers: {},
    timestampMs: 0,
  };
}

const offsets = (r: { entries: { offset: bigint }[] } | null) => r?.entries.map((e) => e.offset) ?? null;

test("a cursor inside the window gets its user's later records, in order", () => {
  const w = new ResumeWindow<string>(1 << 20);
  for (let o = 10n; o < 20n; o++)
    w.observe(0, o, rec(0, o, o % 2n === 0n ? "a" : "b"), o % 2n === 0n ? "a" : "b");
  assert.deepEqual(offsets(w.since(0, 11n, "a")), [12n, 14n, 16n, 18n]);
  assert.deepEqual(
    offsets(w.since(0, 9n, "b")),
    [11n, 13n, 15n, 17n, 19n],
    "cursor just before the first record",
  );
  assert.equal(w.since(0, 11n, "a")?.last, 19n);
  assert.deepEqual(offsets(w.since(0, 19n, "a")), [], "at the end: nothing to send");
  assert.deepEqual(offsets(w.since(0, 30n, "a")), [], "past the end (the stream will bring it)");
  assert.deepEqual(offsets(w.since(0, 11n, "nobody")), []);
});

test("a cursor older than the window, or in a partition it never saw, is refused", () => {
  const w = new ResumeWindow<string>(1 << 20);
  w.observe(0, 10n, rec(0, 10n, "a"), "a");
  assert.equal(w.since(0, 8n, "a"), null, "offset 9 was never seen");
  assert.equal(w.since(1, 8n, "a"), null);
});

test("records read again after a seek change nothing", () => {
  const w = new ResumeWindow<string>(1 << 20);
  for (const o of [5n, 6n, 7n]) assert.notEqual(w.observe(0, o, rec(0, o, "a"), "a"), null);
  assert.equal(w.observe(0, 6n, rec(0, 6n, "a"), "a"), null);
  assert.equal(w.observe(0, 7n, rec(0, 7n, "a"), "a"), null);
  w.observe(0, 8n, rec(0, 8n, "a"), "a");
  assert.deepEqual(offsets(w.since(0, 4n, "a")), [5n, 6n, 7n, 8n]);
});

test("records that are not events are covered but not kept", () => {
  const w = new ResumeWindow<string>(1 << 20);
  w.observe(0, 1n, rec(0, 1n, "a"), "a");
  assert.equal(w.observe(0, 2n, rec(0, 2n, "a"), null), null);
  w.observe(0, 3n, rec(0, 3n, "a"), "a");
  assert.deepEqual(offsets(w.since(0, 0n, "a")), [1n, 3n]);
  assert.equal(w.stats().records, 2);
});

test("the kept value is a copy, not a view of the fetch buffer", () => {
  const w = new ResumeWindow<string>(1 << 20);
  const r = rec(0, 1n, "a");
  const e = w.observe(0, 1n, r, "a")!;
  r.value!.fill(9);
  assert.equal(e.record.value![0], 1);
});

test("over budget the oldest records go and the window starts later", () => {
  // Each 100-byte record costs 2*100 + 1 + 256 = 457 bytes: three fit in 1,400.
  const w = new ResumeWindow<string>(1_400);
  for (let o = 0n; o < 5n; o++) w.observe(0, o, rec(0, o, "a"), "a");
  assert.equal(w.stats().records, 3);
  assert.ok(w.stats().bytes <= 1_400);
  assert.equal(w.since(0, 0n, "a"), null, "offset 1 was evicted");
  assert.deepEqual(offsets(w.since(0, 1n, "a")), [2n, 3n, 4n]);
});

test("the budget is shared by the partitions held; forget frees one", () => {
  const w = new ResumeWindow<string>(2 * 1_400);
  for (let o = 0n; o < 5n; o++) w.observe(0, o, rec(0, o, "a"), "a");
  assert.equal(w.stats().records, 5);
  w.observe(1, 0n, rec(1, 0n, "b"), "b");
  assert.equal(w.stats().partitions, 2);
  assert.ok(w.stats().bytes <= 2 * 1_400, "partition 0 shrank to its share when 1 arrived");
  assert.deepEqual(offsets(w.since(0, 1n, "a")), [2n, 3n, 4n]);
  w.forget(0);
  assert.equal(w.since(0, 1n, "a"), null);
  assert.equal(w.stats().records, 1);
  assert.equal(w.stats().bytes, 457);
});

test("a zero budget keeps nothing and serves nothing", () => {
  const w = new ResumeWindow<string>(0);
  assert.equal(w.enabled, false);
  assert.equal(w.observe(0, 1n, rec(0, 1n, "a"), "a"), null);
  assert.equal(w.since(0, 0n, "a"), null);
});

test("property: whatever it serves is exactly the user's records after the cursor", () => {
  // The model: every record observed, in order. The window may refuse (null), but what it
  // serves must be exactly the model's records of that user after the cursor, up to `last`.
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("next" as const),
      user: fc.constantFrom("a", "b", "c", null),
      bytes: fc.nat(300),
    }),
    fc.record({ kind: fc.constant("reread" as const), back: fc.nat(10) }),
    fc.record({
      kind: fc.constant("resume" as const),
      back: fc.nat(40),
      user: fc.constantFrom("a", "b", "c"),
    }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), fc.integer({ min: 0, max: 20_000 }), (ops, budget) => {
      const w = new ResumeWindow<string>(budget);
      const seen: { offset: bigint; user: string | null }[] = [];
      let next = 100n;
      for (const o of ops) {
        if (o.kind === "next") {
          w.observe(0, next, rec(0, next, o.user ?? "x", o.bytes), o.user);
          seen.push({ offset: next, user: o.user });
          next += 1n + BigInt(o.bytes % 3); // gaps: transaction markers take offsets too
        } else if (o.kind === "reread") {
          const again = seen[Math.max(0, seen.length - 1 - o.back)];
          if (again !== undefined) w.observe(0, again.offset, rec(0, again.offset, "x"), again.user);
        } else {
          const cursor = next - 1n - BigInt(o.back);
          const got = w.since(0, cursor, o.user);
          if (got === null) continue;
          const want = seen.filter((s) => s.offset > cursor && s.offset <= got.last && s.user === o.user);
          assert.deepEqual(
            got.entries.map((e) => e.offset),
            want.map((s) => s.offset),
          );
          const lastSeen = seen.at(-1)?.offset;
          if (lastSeen !== undefined) assert.equal(got.last, lastSeen);
        }
      }
      assert.ok(w.stats().bytes <= budget);
    }),
  );
});

test("property: a cursor at the last record served is always covered while the budget holds one record", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom("a", "b"), { minLength: 1, maxLength: 100 }), (users) => {
      const w = new ResumeWindow<string>(10_000);
      users.forEach((u, i) => w.observe(0, BigInt(i), rec(0, BigInt(i), u), u));
      const last = BigInt(users.length - 1);
      assert.deepEqual(offsets(w.since(0, last - 1n, users.at(-1)!)), [last]);
    }),
  );
});
