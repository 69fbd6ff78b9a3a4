/**
 * The pure parts of Kafka fault handling: what a probe outcome means for readiness and for the
 * log's identity, the epoch derived from a topic's identity, and the per-user write bucket.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { epochOf, parseCursor } from "../../schemas/cursor.ts";
import { kafkaUnavailable } from "../../common/kafka/errors.ts";
import { probeVerdict } from "../../gateway/kafka-health.ts";
import { UserRates } from "../../gateway/user-rates.ts";

const ID = "0123456789abcdef0123456789abcdef";
const initial = { topicId: ID, partitions: 4, leaderless: 0 };

test("probe verdicts: ready, unreachable, missing, leaderless, replaced", () => {
  const ok = { exists: true as const, identity: initial };
  assert.deepEqual(probeVerdict("d", initial, ok), { ready: true });
  const cases: [Parameters<typeof probeVerdict>[2], RegExp, boolean][] = [
    [
      kafkaUnavailable("metadata from 127.0.0.1:1: no answer in 1000 ms"),
      /Kafka unreachable: .*no answer/,
      false,
    ],
    [{ exists: false }, /topic d does not exist/, false],
    [{ exists: true, identity: { ...initial, leaderless: 2 } }, /2 partitions of d have no leader/, false],
    [{ exists: true, identity: { ...initial, topicId: "f".repeat(32) } }, /recreated or repartitioned/, true],
    [{ exists: true, identity: { ...initial, partitions: 8 } }, /recreated or repartitioned/, true],
  ];
  for (const [outcome, reason, replaced] of cases) {
    const v = probeVerdict("d", initial, outcome);
    assert.equal(v.ready, false);
    if (v.ready) continue;
    assert.match(v.reason, reason);
    assert.equal(v.replaced, replaced, v.reason);
  }
});

test("the epoch: valid in a cursor, different per topic ID and per partition count", () => {
  const e = epochOf(4, ID);
  assert.equal(e, `4t${BigInt(`0x${ID.slice(0, 14)}`).toString(36)}`);
  assert.ok(parseCursor(`${e}:3:42`).ok, e);
  assert.notEqual(epochOf(4, ID), epochOf(4, `1${ID.slice(1)}`));
  assert.notEqual(epochOf(4, ID), epochOf(5, ID));
  // The longest: the largest count and an ID of all ones still fit the 16 characters.
  const longest = epochOf(36 ** 4 - 1, "f".repeat(32));
  assert.ok(longest.length <= 16 && parseCursor(`${longest}:0:0`).ok, longest);
  assert.throws(() => epochOf(0, ID), RangeError);
  assert.throws(() => epochOf(36 ** 4, ID), RangeError);
  assert.throws(() => epochOf(4, "xyz"), RangeError);
});

test("user rates: one bucket per user, shared by the user's connections, forgotten with the last", () => {
  const r = new UserRates(2, 3);
  for (let i = 0; i < 3; i++) assert.equal(r.take("u", 1000).ok, true);
  assert.equal(r.take("u", 1000).ok, false);
  assert.equal(r.take("v", 1000).ok, true, "another user has its own bucket");
  assert.equal(r.take("u", 1500).ok, true, "2/s refills one token in 500 ms");
  assert.equal(r.users, 2);
  r.forget("u");
  assert.equal(r.users, 1);
  assert.equal(r.take("u", 1500).ok, true);
});
