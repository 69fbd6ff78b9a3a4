import { test } from "node:test";
import assert from "node:assert/strict";
import { serviceOf, parsePublish, parseRevoke } from "../../router/publish.ts";
import { decodeDelivery } from "../../schemas/codec.ts";
import { channelEventCodec, roomEventCodec, CONTROL_HEADER } from "../../schemas/records.ts";
import { partitionForKey } from "../../schemas/partition.ts";

const COUNTS = { deliveries: 12, rooms: 6, channels: 3 };
const body = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));

test("service tokens need the scope; user tokens are forbidden", () => {
  assert.deepEqual(serviceOf("billing", { scope: "rt:publish" }, "rt:publish"), {
    ok: true,
    value: "service:billing",
  });
  const user = serviceOf("alice", {}, "rt:publish");
  assert.equal(user.ok, false);
  assert.equal((user as { code: string }).code, "forbidden");
  assert.equal((serviceOf("x", { scope: "rt:revoke" }, "rt:publish") as { code: string }).code, "forbidden");
  assert.equal((serviceOf("x", { scope: 5 }, "rt:publish") as { code: string }).code, "unauthorized");
});

test("a publish to a user, a room or a channel becomes the record the gateways would write", () => {
  const u = parsePublish(
    body({ to: "user:bob", type: "a.b", data: { x: [1] }, id: "m1" }),
    "service:s",
    COUNTS,
    8,
    5,
  );
  assert.ok(u.ok);
  assert.equal(u.value.record.role, "deliveries");
  assert.equal(u.value.record.partition, partitionForKey("bob", 12));
  assert.deepEqual(decodeDelivery(u.value.record.value), {
    id: "m1",
    type: "a.b",
    sender: "service:s",
    recipient: "bob",
    room: null,
    ts: 5,
    data: '{"x":[1]}',
    attributes: {},
  });
  const r = parsePublish(body({ to: "room:lobby", type: "a.b", data: null }), "service:s", COUNTS, 8, 5);
  assert.ok(r.ok);
  assert.equal(r.value.record.role, "roomEvents");
  assert.equal(r.value.record.key, "lobby");
  const re = roomEventCodec.decode(r.value.record.value);
  assert.equal(re.kind, "message");
  assert.match(re.id, /^pub-/);
  const c = parsePublish(body({ to: "channel:*", type: "a.b", data: "hi" }), "service:s", COUNTS, 8, 5);
  assert.ok(c.ok);
  assert.equal(channelEventCodec.decode(c.value.record.value).channel, "*");
});

test("bad publish bodies are refused with a message naming the problem", () => {
  const cases: [unknown, RegExp][] = [
    ["{", /not valid JSON/],
    ["[]", /JSON object/],
    [{ to: "user:bob", type: "a.b" }, /missing field data/],
    [{ to: "user:bob", type: "a.b", data: 1, x: 1 }, /unexpected field "x"/],
    [{ to: "group:x", type: "a.b", data: 1 }, /to must be/],
    [{ to: "user:bob", type: "bad type", data: 1 }, /type must be/],
    [{ to: "user:bob", type: "rt.joined", data: 1 }, /reserved/],
    [{ to: "user:bob", type: "a.b", data: 1, id: "" }, /id must be/],
    [{ to: "user:bob", type: "a.b", data: [[[[1]]]] }, /deeper than 3/],
  ];
  for (const [b, message] of cases) {
    const r = parsePublish(body(b), "service:s", COUNTS, 3);
    assert.equal(r.ok, false, JSON.stringify(b));
    assert.equal((r as { code: string }).code, "bad_request");
    assert.match((r as { message: string }).message, message);
  }
});

test("revoke becomes a control record for the user's partition", () => {
  const r = parseRevoke(body({ user: "eve", reason: "stolen laptop" }), "service:sec", COUNTS, 9);
  assert.ok(r.ok);
  assert.equal(r.value.record.key, "eve");
  assert.equal(r.value.record.headers[CONTROL_HEADER], "revoke");
  const d = decodeDelivery(r.value.record.value);
  assert.equal(d.type, "rt.revoke");
  assert.equal(d.ts, 9);
  assert.equal(d.sender, "service:sec");
  assert.equal(JSON.parse(d.data).reason, "stolen laptop");
  for (const b of [
    {},
    { user: "" },
    { user: "a b" },
    { user: "eve", reason: "x".repeat(201) },
    { user: "eve", other: 1 },
  ]) {
    assert.equal(parseRevoke(body(b), "service:sec", COUNTS).ok, false, JSON.stringify(b));
  }
});
