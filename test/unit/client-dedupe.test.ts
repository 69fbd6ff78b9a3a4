import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CursorTracker } from "../../client/dedupe.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`client-dedupe.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

test("offer: new, duplicate, other log, invalid", () => {
  const t = new CursorTracker();
  assert.equal(t.cursor, undefined);
  const steps: ReadonlyArray<readonly [string, string, string | undefined]> = [
    // [offered, verdict, cursor after]
    ["e1:3:10", "deliver", "e1:3:10"],
    ["e1:3:10", "duplicate", "e1:3:10"],
    ["e1:3:9", "duplicate", "e1:3:10"],
    ["e1:3:0", "duplicate", "e1:3:10"],
    ["e1:3:11", "deliver", "e1:3:11"],
    ["e1:3:500", "deliver", "e1:3:500"],
    ["e1:3:499", "duplicate", "e1:3:500"],
    ["e1:4:2", "deliver+log", "e1:4:2"], // another partition: incomparable, accepted
    ["e2:4:0", "deliver+log", "e2:4:0"], // another epoch
    ["e2:4:0", "duplicate", "e2:4:0"],
    ["bogus", "invalid", "e2:4:0"],
    ["e2:4:01", "invalid", "e2:4:0"],
    ["e2:4:18446744073709551615", "invalid", "e2:4:0"],
    ["e2:4:9007199254740993", "deliver", "e2:4:9007199254740993"], // past 2^53: compared as bigint
    ["e2:4:9007199254740992", "duplicate", "e2:4:9007199254740993"],
  ];
  for (const [offered, verdict, after] of steps) {
    const r = t.offer(offered);
    const got = r.kind === "deliver" ? (r.logChanged ? "deliver+log" : "deliver") : r.kind;
    assert.equal(got, verdict, offered);
    assert.equal(t.cursor, after, offered);
  }
});

test("a stored cursor drops everything at or below it", () => {
  const t = new CursorTracker("e1:0:41");
  assert.equal(t.offer("e1:0:41").kind, "duplicate");
  assert.equal(t.offer("e1:0:42").kind, "deliver");
  assert.equal(new CursorTracker("").cursor, undefined);
  assert.throws(() => new CursorTracker("e1:0"), TypeError);
  assert.throws(() => new CursorTracker("E1:0:1"), TypeError);
});

test("welcome: keep the own cursor when recovered in the same log, adopt the server's otherwise", () => {
  const cases: ReadonlyArray<
    readonly [
      own: string | undefined,
      welcome: string,
      recovered: boolean,
      after: string | undefined,
      resync: boolean,
      logChanged: boolean,
    ]
  > = [
    [undefined, "", true, undefined, false, false], // empty log, fresh client
    [undefined, "e1:2:7", true, "e1:2:7", false, false], // fresh client starts where the server is
    ["e1:2:3", "e1:2:9", true, "e1:2:3", false, false], // replay of 4..9 may follow: keep ours
    ["e1:2:9", "e1:2:3", true, "e1:2:9", false, false], // redelivery of 4..9 may follow: keep ours
    ["e1:2:3", "", true, "e1:2:3", false, false],
    ["e1:2:3", "e1:2:9", false, "e1:2:9", true, false], // limits or retention: live from the server's
    ["e1:2:900", "e1:2:5", false, "e1:2:5", true, false], // past the end of a recreated log
    [undefined, "e1:2:-1", false, "e1:2:-1", true, false], // no cursor in the hello, empty log
    ["e1:2:3", "e2:2:1", false, "e2:2:1", true, true], // new epoch
    ["e1:2:3", "e1:5:1", true, "e1:5:1", true, true], // another partition, even if the server says recovered
    ["e1:2:3", "junk", true, "e1:2:3", false, false],
  ];
  for (const [own, welcome, recovered, after, resync, logChanged] of cases) {
    const t = new CursorTracker(own);
    assert.deepEqual(t.welcome(welcome, recovered), { resync, logChanged }, `${own} ${welcome} ${recovered}`);
    assert.equal(t.cursor, after, `${own} ${welcome} ${recovered}`);
  }
});

/** An increasing cursor stream of one log, with random gaps between offsets. */
const stream = fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 60 }).map((gaps) => {
  let offset = -1;
  return gaps.map((g) => `e1:7:${(offset += g)}`);
});

test("property: reconnects that replay from anywhere at or before the cursor yield each event once, in order", () => {
  fc.assert(
    fc.property(
      stream,
      fc.array(fc.tuple(fc.nat(20), fc.integer({ min: 1, max: 30 })), { maxLength: 20 }),
      (events, sessions) => {
        const t = new CursorTracker();
        const out: string[] = [];
        let next = 0; // first index not yet delivered
        const deliver = (from: number, to: number) => {
          for (let i = from; i < to; i++) {
            if (t.offer(events[i]!).kind === "deliver") out.push(events[i]!);
          }
          next = Math.max(next, to);
        };
        for (const [back, length] of sessions) {
          const from = Math.max(0, next - back); // never past the cursor: resume leaves no gap
          deliver(from, Math.min(events.length, from + length));
        }
        deliver(Math.max(0, next - 3), events.length);
        assert.deepEqual(out, events);
        assert.equal(t.cursor, events[events.length - 1]);
      },
    ),
    { seed, numRuns: 1000 },
  );
});

test("property: duplicates interleaved anywhere after their first delivery are dropped", () => {
  fc.assert(
    fc.property(
      stream,
      fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 100 }),
      fc.nat(),
      (events, dups, startRaw) => {
        // Each duplicate is (position, which): after event `position`, event `which <= position` again.
        const after = new Map<number, number[]>();
        for (const [p, w] of dups) {
          const position = p % events.length;
          after.set(position, [...(after.get(position) ?? []), w % (position + 1)]);
        }
        const delivered: string[] = [];
        for (let i = 0; i < events.length; i++) {
          delivered.push(events[i]!);
          for (const w of after.get(i) ?? []) delivered.push(events[w]!);
        }
        // A client that resumes from a stored cursor drops everything up to it as well.
        const start = startRaw % (events.length + 1);
        const t = new CursorTracker(start === 0 ? undefined : events[start - 1]);
        const out = delivered.filter((c) => t.offer(c).kind === "deliver");
        assert.deepEqual(out, events.slice(start));
      },
    ),
    { seed, numRuns: 1000 },
  );
});
