import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "../../gateway/registry.ts";

test("registry tracks several devices per user up to the limit", () => {
  const r = new Registry<string>(2);
  assert.equal(r.add("alice", "a1"), true);
  assert.equal(r.add("alice", "a2"), true);
  assert.equal(r.add("alice", "a2"), true, "adding the same socket twice is a no-op");
  assert.equal(r.add("alice", "a3"), false, "third device refused at limit 2");
  assert.equal(r.add("bob", "b1"), true);
  assert.equal(r.connections, 3);
  assert.deepEqual([...(r.sockets("alice") ?? [])], ["a1", "a2"]);
  r.remove("alice", "a1");
  r.remove("alice", "a1");
  assert.equal(r.connections, 2);
  assert.equal(r.add("alice", "a3"), true);
  r.remove("alice", "a2");
  r.remove("alice", "a3");
  assert.equal(r.sockets("alice"), undefined);
  assert.deepEqual([...r.users()], ["bob"]);
  assert.equal(r.userCount, 1);
});
