import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CatchUp } from "../../gateway/catchup.ts";

function harness() {
  const seeks: [number, bigint][] = [];
  const deferred: (() => void)[] = [];
  const c = new CatchUp(
    (p, o) => seeks.push([p, o]),
    (fn) => deferred.push(fn),
  );
  const flush = () => deferred.splice(0).forEach((fn) => fn());
  return { c, seeks, flush };
}

test("a cursor ahead of the stream needs no seek", () => {
  const { c, seeks, flush } = harness();
  assert.equal(c.request(0, 5n, 4n), 0, "nothing read yet, the stream starts before the cursor");
  c.handled(0, 10n);
  assert.equal(c.request(0, 10n, 0n), 0, "at the read position");
  assert.equal(c.request(0, 12n, 0n), 0);
  flush();
  assert.deepEqual(seeks, []);
});

test("a newly owned partition that starts after the cursor seeks back", () => {
  const { c, seeks, flush } = harness();
  const g = c.request(7, 5n, 40n);
  assert.ok(g > 0);
  flush();
  assert.deepEqual(seeks, [[7, 6n]]);
});

test("resumes on one partition share one seek to the lowest cursor", () => {
  const { c, seeks, flush } = harness();
  c.handled(3, 100n);
  const g1 = c.request(3, 50n, 0n);
  const g2 = c.request(3, 20n, 0n);
  const g3 = c.request(3, 70n, 0n);
  assert.ok(g1 > 0);
  assert.equal(g2, g1);
  assert.equal(g3, g1);
  flush();
  assert.deepEqual(seeks, [[3, 21n]]);
  assert.equal(c.stats().scans, 1);
  assert.equal(c.stats().rewindResumes, 3);
  assert.equal(c.applied(3), 0, "not applied before a batch from the target arrives");
  c.batchStarts(3, 101n); // fetched before the seek took effect
  assert.equal(c.applied(3), 0);
  c.batchStarts(3, 21n);
  assert.equal(c.applied(3), g1);
});

test("a lower cursor after the seek went out starts a new, lower seek", () => {
  const { c, seeks, flush } = harness();
  c.handled(1, 100n);
  const g1 = c.request(1, 50n, 0n);
  flush();
  assert.equal(c.request(1, 60n, 0n), g1, "covered by the issued seek");
  const g2 = c.request(1, 10n, 0n);
  assert.ok(g2 > g1);
  flush();
  assert.deepEqual(seeks, [
    [1, 51n],
    [1, 11n],
  ]);
  c.batchStarts(1, 11n);
  assert.equal(c.applied(1), g2, "the newest seek covers the older waiters too");
});

test("a seek counts as applied when the stream goes back, even if the target was deleted", () => {
  const { c, flush } = harness();
  c.handled(2, 100n);
  const g = c.request(2, 5n, 0n);
  flush();
  c.batchStarts(2, 40n); // retention moved the log start past the target
  assert.equal(c.applied(2), g);
});

test("property: a waiting session never takes a record from before its seek took effect", () => {
  const seed = Number(process.env.RT_TEST_SEED ?? Date.now());
  console.log(`catchup property seed: ${seed}`);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 1, maxLength: 20 }), (cursors) => {
      const { c, flush } = harness();
      const log = Array.from({ length: 200 }, (_, i) => BigInt(i));
      // The stream has read up to 150 when the resumes arrive.
      for (const o of log.slice(0, 151)) c.handled(0, o);
      const sessions = cursors.map((cur) => ({
        last: BigInt(cur),
        wait: c.request(0, BigInt(cur), 0n),
        got: [] as bigint[],
      }));
      flush();
      // Records 151..160 were already fetched: they arrive before the seek's batch.
      const target = sessions.length > 0 ? cursors.reduce((a, b) => Math.min(a, b)) + 1 : 0;
      const batches = [log.slice(151, 161), log.slice(target)];
      for (const batch of batches) {
        c.batchStarts(0, batch[0]!);
        for (const o of batch) {
          for (const s of sessions) {
            if (c.applied(0) >= s.wait && o > s.last) {
              s.last = o;
              s.got.push(o);
            }
          }
          c.handled(0, o);
        }
      }
      for (const [i, s] of sessions.entries()) {
        const want = log.filter((o) => o > BigInt(cursors[i]!));
        assert.deepEqual(s.got, want, "every record after the cursor, once, in order");
      }
    }),
    { seed, numRuns: 300 },
  );
});
