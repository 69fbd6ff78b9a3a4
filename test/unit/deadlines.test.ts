import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Deadlines } from "../../gateway/deadlines.ts";

test("deadlines fire by due second, never before they are due, and removed ones never", async () => {
  const fired: { item: string; atMs: number }[] = [];
  const d = new Deadlines<string>((item) => fired.push({ item, atMs: Date.now() }));
  const t0 = Date.now();
  const due = { a: t0 + 150, b: t0 + 1200, c: t0 + 100, gone: t0 + 120 };
  const keys = Object.fromEntries(Object.entries(due).map(([k, at]) => [k, d.add(k, at)]));
  assert.ok(Object.values(keys).every((k) => Number.isInteger(k) && k > 0));
  d.remove("gone", keys["gone"]!);
  d.remove("never-added", keys["a"]!);
  assert.equal(d.size, 3);
  await sleep(2600);
  assert.equal(fired.at(-1)?.item, "b", "the one due a second later fires last");
  assert.deepEqual(fired.map((f) => f.item).sort(), ["a", "b", "c"]);
  for (const f of fired) assert.ok(f.atMs >= due[f.item as keyof typeof due], `${f.item} fired early`);
  assert.equal(d.size, 0);
});

test("deadlines: an item re-added from its own callback fires again", async () => {
  let count = 0;
  const d: Deadlines<string> = new Deadlines<string>((item) => {
    count++;
    if (count === 1) d.add(item, Date.now() + 50);
  });
  d.add("x", Date.now() + 10);
  await sleep(2600);
  assert.equal(count, 2);
});
