import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_PATTERNS, allows, readGrants } from "../../common/grants.ts";
import { Revocations } from "../../gateway/revocations.ts";
import { RoomRates } from "../../gateway/room-rates.ts";

test("patterns: exact names, prefixes ending in *, and * for all", () => {
  assert.equal(allows(["team-*"], "team-42"), true);
  assert.equal(allows(["team-*"], "team-"), true);
  assert.equal(allows(["team-*"], "tea"), false);
  assert.equal(allows(["lobby"], "lobby"), true);
  assert.equal(allows(["lobby"], "lobby2"), false);
  assert.equal(allows(["*"], "anything"), true);
  assert.equal(allows(["*"], "*"), true);
  assert.equal(allows([], "x"), false);
});

test("claims: missing ones grant nothing, malformed ones are errors naming the claim", () => {
  const none = readGrants({});
  assert.ok(none.ok);
  assert.deepEqual([none.grants.rooms, none.grants.channels, none.grants.publish], [[], [], []]);
  const some = readGrants({
    rt_rooms: ["a*"],
    rt_channels: ["news"],
    rt_publish: ["*"],
    scope: "rt:publish  rt:revoke",
  });
  assert.ok(some.ok);
  assert.deepEqual([...some.grants.scopes].sort(), ["rt:publish", "rt:revoke"]);
  for (const [claims, name] of [
    [{ rt_rooms: "a*" }, "rt_rooms"],
    [{ rt_channels: [1] }, "rt_channels"],
    [{ rt_publish: ["has space"] }, "rt_publish"],
    [{ rt_rooms: ["a**"] }, "rt_rooms"],
    [{ rt_rooms: Array.from({ length: MAX_PATTERNS + 1 }, () => "a") }, "rt_rooms"],
    [{ scope: ["rt:publish"] }, "scope"],
  ] as const) {
    const r = readGrants(claims);
    assert.equal(r.ok, false);
    assert.match((r as { message: string }).message, new RegExp(name));
  }
});

test("revocations: newest wins, older tokens are refused, entries expire and are bounded", () => {
  const r = new Revocations(60_000, 2);
  r.note("a", 1_000);
  r.note("a", 500);
  assert.equal(r.revokedAt("a", 2_000), 1_000);
  r.note("b", 1_000);
  r.note("c", 1_000);
  assert.equal(r.size, 2);
  assert.equal(r.revokedAt("a", 2_000), undefined, "the oldest entry went first");
  assert.equal(r.revokedAt("c", 1_000 + 60_001), undefined, "forgotten after rememberMs");
});

test("room rates: a bucket per room, refusals carry the wait, rooms are independent", () => {
  const rates = new RoomRates(2, 2);
  assert.equal(rates.take("r1", 0), 0);
  assert.equal(rates.take("r1", 0), 0);
  const wait = rates.take("r1", 0);
  assert.ok(wait > 0 && wait <= 500, `wait ${wait}`);
  assert.equal(rates.take("r2", 0), 0, "another room has its own bucket");
  assert.equal(rates.take("r1", 600), 0, "refilled");
});
