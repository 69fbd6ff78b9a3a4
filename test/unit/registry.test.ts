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

test("registry: one socket per user, then a set, then one again, keeps every count right", () => {
  const r = new Registry<{ n: number }>(3);
  const [a, b, c] = [{ n: 1 }, { n: 2 }, { n: 3 }];
  assert.equal(r.add("u", a), true);
  assert.deepEqual([...(r.sockets("u") ?? [])], [a]);
  assert.equal(r.add("u", b), true);
  assert.equal(r.add("u", c), true);
  assert.equal(r.add("u", { n: 4 }), false, "fourth refused at limit 3");
  assert.equal(r.connections, 3);
  r.remove("u", b);
  r.remove("u", c);
  assert.deepEqual([...(r.sockets("u") ?? [])], [a]);
  r.remove("u", b);
  assert.equal(r.connections, 1);
  r.remove("u", a);
  assert.equal(r.sockets("u"), undefined);
  assert.equal(r.connections, 0);
  assert.equal(r.userCount, 0);
  const one = new Registry<{ n: number }>(1);
  assert.equal(one.add("v", a), true);
  assert.equal(one.add("v", b), false, "limit 1: a second socket is refused");
  assert.equal(one.connections, 1);
});
