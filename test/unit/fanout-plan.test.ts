import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { planRoomEvent, ROUTER_SENDER } from "../../router/fanout-plan.ts";
import { MembershipStore, Staged } from "../../router/membership.ts";
import type { Membership, RoomEvent } from "../../schemas/records.ts";

const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`fanout-plan.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

const LIMITS = { maxRoomMembers: 3 };
const ev = (over: Partial<RoomEvent>): RoomEvent => ({
  id: "e1",
  kind: "message",
  room: "r",
  sender: "alice",
  member: null,
  type: "chat.message",
  ts: 1_000,
  data: '{"x":1}',
  attributes: {},
  ...over,
});
const member = (user: string): Membership => ({ room: "r", user, joined_ts: 1, by: user, source: "0:0" });
const members = (...users: string[]) => new Map(users.map((u) => [u, member(u)]));

test("a member's message becomes one delivery per member, carrying its source", () => {
  const plan = planRoomEvent(ev({}), "1:42", members("alice", "bob"), LIMITS);
  assert.equal(plan.refused, null);
  assert.equal(plan.change, null);
  assert.deepEqual(
    plan.deliveries.map((d) => [d.recipient, d.room, d.sender, d.id, d.data, d.attributes["rt.source"]]),
    [
      ["alice", "r", "alice", "e1", '{"x":1}', "1:42"],
      ["bob", "r", "alice", "e1", '{"x":1}', "1:42"],
    ],
  );
});

test("a non-member's message is refused with a notice to the sender only; a service needs no membership", () => {
  const plan = planRoomEvent(ev({ sender: "mallory" }), "0:1", members("alice"), LIMITS);
  assert.equal(plan.refused, "not_member");
  assert.equal(plan.deliveries.length, 1);
  const [d] = plan.deliveries;
  assert.equal(d!.recipient, "mallory");
  assert.equal(d!.type, "rt.rejected");
  assert.equal(d!.sender, ROUTER_SENDER);
  assert.deepEqual(JSON.parse(d!.data), {
    id: "e1",
    room: "r",
    code: "not_member",
    message: "not a member of room r: join it first",
  });
  const svc = planRoomEvent(ev({ sender: "service:billing" }), "0:1", members("alice"), LIMITS);
  assert.deepEqual(
    svc.deliveries.map((d) => d.recipient),
    ["alice"],
  );
  const nobody = planRoomEvent(ev({ sender: "service:x" }), "0:1", undefined, LIMITS);
  assert.deepEqual(nobody.deliveries, []);
  assert.equal(nobody.refused, null);
});

test("join adds the member and tells it; joining twice and leaving twice change nothing; full rooms refuse", () => {
  const join = planRoomEvent(
    ev({ kind: "join", member: "carol", sender: "carol", type: "rt.joined" }),
    "0:5",
    members("alice"),
    LIMITS,
  );
  assert.deepEqual(join.change, {
    room: "r",
    user: "carol",
    membership: { room: "r", user: "carol", joined_ts: 1_000, by: "carol", source: "0:5" },
  });
  assert.deepEqual(
    join.deliveries.map((d) => [d.recipient, d.type, JSON.parse(d.data)]),
    [["carol", "rt.joined", { room: "r", by: "carol" }]],
  );
  const again = planRoomEvent(
    ev({ kind: "join", member: "alice", sender: "alice" }),
    "0:6",
    members("alice"),
    LIMITS,
  );
  assert.deepEqual(again, { deliveries: [], change: null, refused: null });
  const full = planRoomEvent(
    ev({ kind: "join", member: "dave", sender: "dave" }),
    "0:7",
    members("a", "b", "c"),
    LIMITS,
  );
  assert.equal(full.refused, "room_full");
  assert.equal(full.change, null);
  assert.equal(JSON.parse(full.deliveries[0]!.data).code, "limit_reached");
  const leave = planRoomEvent(
    ev({ kind: "leave", member: "alice", sender: "alice" }),
    "0:8",
    members("alice"),
    LIMITS,
  );
  assert.deepEqual(leave.change, { room: "r", user: "alice", membership: null });
  assert.equal(leave.deliveries[0]!.type, "rt.left");
  const leaveAgain = planRoomEvent(
    ev({ kind: "leave", member: "zed", sender: "zed" }),
    "0:9",
    members("alice"),
    LIMITS,
  );
  assert.deepEqual(leaveAgain, { deliveries: [], change: null, refused: null });
});

test("staged changes read through, commit into the store, and vanish on discard", () => {
  const store = new MembershipStore();
  store.reset(0);
  store.apply(0, { room: "r", user: "alice", membership: member("alice") });
  const staged = new Staged(store, 0);
  staged.stage({ room: "r", user: "bob", membership: member("bob") });
  staged.stage({ room: "r", user: "alice", membership: null });
  assert.deepEqual([...staged.members("r")!.keys()], ["bob"]);
  assert.deepEqual([...store.members(0, "r")!.keys()], ["alice"], "the store is untouched before commit");
  staged.discard();
  assert.deepEqual([...staged.members("r")!.keys()], ["alice"]);
  staged.stage({ room: "r", user: "bob", membership: member("bob") });
  staged.commit();
  assert.deepEqual([...store.members(0, "r")!.keys()].sort(), ["alice", "bob"]);
  assert.deepEqual(store.counts(), { partitions: 1, rooms: 1, members: 2 });
  store.apply(1, { room: "x", user: "y", membership: member("y") });
  assert.equal(store.members(1, "x"), undefined, "a partition not held is not written");
});

test("property: applying any sequence of joins, leaves and messages keeps fanout equal to the membership", () => {
  const users = ["u1", "u2", "u3", "u4", "service:s"];
  const op = fc.record({
    kind: fc.constantFrom<RoomEvent["kind"]>("message", "join", "leave"),
    sender: fc.constantFrom(...users),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const store = new MembershipStore();
      store.reset(0);
      const model = new Set<string>();
      for (const [i, o] of ops.entries()) {
        const staged = new Staged(store, 0);
        const e = ev({
          id: `e${i}`,
          kind: o.kind,
          sender: o.sender,
          member: o.kind === "message" ? null : o.sender,
        });
        const plan = planRoomEvent(e, `0:${i}`, staged.members("r"), { maxRoomMembers: 3 });
        if (plan.change !== null) staged.stage(plan.change);
        staged.commit();
        if (o.kind === "join" && !model.has(o.sender) && model.size < 3) model.add(o.sender);
        if (o.kind === "leave") model.delete(o.sender);
        if (o.kind === "message") {
          const allowed = o.sender.startsWith("service:") || model.has(o.sender);
          const got = plan.deliveries
            .filter((d) => d.type === "chat.message")
            .map((d) => d.recipient)
            .sort();
          assert.deepEqual(got, allowed ? [...model].sort() : []);
        }
        assert.deepEqual([...(store.members(0, "r")?.keys() ?? [])].sort(), [...model].sort());
      }
    }),
    { seed, numRuns: 300 },
  );
});
