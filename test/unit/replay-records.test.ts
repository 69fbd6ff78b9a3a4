import { test } from "node:test";
import assert from "node:assert/strict";
import avro from "avsc";
import { decodeValue, isReplayed, matchesFilters, rowSchema, toRow } from "../../cli/replay-records.ts";
import type { ReplayFilters } from "../../cli/replay-args.ts";
import type { InRecord } from "../../common/kafka/kafka.ts";
import { encodeDelivery, type Delivery } from "../../schemas/codec.ts";
import {
  REPLAYED_HEADER,
  channelEventCodec,
  membershipCodec,
  roomEventCodec,
  type ChannelEvent,
  type Membership,
  type RoomEvent,
} from "../../schemas/records.ts";
import type { TopicRole } from "../../schemas/topics.ts";

const D: Delivery = {
  id: "m1",
  type: "chat.message",
  sender: "ann",
  recipient: "bob",
  room: "lobby",
  ts: 1_700_000_000_000,
  data: '{"a":1}',
  attributes: { k: "v" },
};
const R: RoomEvent = {
  id: "r1",
  kind: "join",
  room: "lobby",
  sender: "service:x",
  member: "cid",
  type: "rt.joined",
  ts: 1,
  data: "null",
  attributes: {},
};
const M: Membership = { room: "lobby", user: "cid", joined_ts: 1, by: "cid", source: "0:1" };
const C: ChannelEvent = {
  id: "c1",
  channel: "news",
  sender: "ann",
  type: "t",
  ts: 1,
  data: "1",
  attributes: {},
};

const none: ReplayFilters = { users: [], rooms: [], channels: [], types: [] };
const f = (over: Partial<ReplayFilters>): ReplayFilters => ({ ...none, ...over });

function record(
  value: Buffer | null,
  key: string | null = "bob",
  headers: Record<string, string> = {},
): InRecord {
  return {
    topic: "t",
    partition: 2,
    offset: "41",
    key: key === null ? null : Buffer.from(key),
    value,
    headers,
    timestampMs: 5,
  };
}

test("each topic's values decode with its own codec; anything else is a reported failure", () => {
  assert.deepEqual(decodeValue("deliveries", encodeDelivery(D)), { ok: true, value: D });
  assert.deepEqual(decodeValue("roomEvents", roomEventCodec.encode(R)), { ok: true, value: R });
  assert.deepEqual(decodeValue("roomMembers", membershipCodec.encode(M)), { ok: true, value: M });
  assert.deepEqual(decodeValue("channels", channelEventCodec.encode(C)), { ok: true, value: C });
  assert.deepEqual(decodeValue("roomMembers", null), { ok: true, value: null }, "a tombstone");
  const wrongTopic = decodeValue("channels", encodeDelivery(D));
  assert.equal(wrongTopic.ok ? "ok" : wrongTopic.code, "unknown_fingerprint");
  const nul = decodeValue("deliveries", null);
  assert.equal(nul.ok ? "ok" : nul.code, "null_value");
  const junk = decodeValue("deliveries", Buffer.from("junk"));
  assert.equal(junk.ok ? "ok" : junk.code, "bad_magic");
  const cut = decodeValue("deliveries", encodeDelivery(D).subarray(0, 20));
  assert.equal(cut.ok ? "ok" : cut.code, "truncated");
});

test("replayed records are recognised by their header", () => {
  assert.equal(isReplayed(record(null, "k", { [REPLAYED_HEADER]: "t:0:1" })), true);
  assert.equal(isReplayed(record(null, "k", { traceparent: "x" })), false);
});

test("filters: OR within one filter, AND across filters, per topic", () => {
  const cases: ReadonlyArray<readonly [TopicRole, ReplayFilters, unknown, string | null, boolean]> = [
    ["deliveries", none, D, "bob", true],
    ["deliveries", f({ users: ["bob"] }), D, "bob", true],
    ["deliveries", f({ users: ["ann"] }), D, "bob", true], // the sender counts
    ["deliveries", f({ users: ["zed", "bob"] }), D, "bob", true],
    ["deliveries", f({ users: ["zed"] }), D, "bob", false],
    ["deliveries", f({ users: ["bob"], types: ["other"] }), D, "bob", false],
    ["deliveries", f({ rooms: ["lobby"], types: ["chat.message"] }), D, "bob", true],
    ["deliveries", f({ rooms: ["lobby"] }), { ...D, room: null }, "bob", false],
    ["roomEvents", f({ users: ["cid"] }), R, "lobby", true], // the member counts
    ["roomEvents", f({ rooms: ["kitchen"] }), R, "lobby", false],
    ["roomMembers", f({ users: ["cid"], rooms: ["lobby"] }), M, "lobby/cid", true],
    ["roomMembers", f({ users: ["cid"] }), null, "lobby/cid", true], // a tombstone, by its key
    ["roomMembers", f({ rooms: ["kitchen"] }), null, "lobby/cid", false],
    ["channels", f({ channels: ["news"], users: ["ann"] }), C, "news", true],
    ["channels", f({ channels: ["*"] }), C, "news", false],
  ];
  for (const [role, filters, value, key, want] of cases) {
    assert.equal(
      matchesFilters(role, filters, key, value as Delivery),
      want,
      `${role} ${JSON.stringify(filters)} ${JSON.stringify(value)}`,
    );
  }
});

test("rows carry the Kafka record and the decoded value", () => {
  assert.deepEqual(toRow(record(encodeDelivery(D), "bob", { traceparent: "x" }), D), {
    topic: "t",
    partition: 2,
    offset: 41,
    timestamp: 5,
    key: "bob",
    headers: { traceparent: "x" },
    value: D,
  });
  assert.equal(toRow(record(null, null), null).key, null);
});

test("row schemas are valid Avro, documented, and hold every row (tombstones where they exist)", () => {
  const values: Readonly<Record<TopicRole, unknown>> = {
    deliveries: D,
    roomEvents: R,
    roomMembers: M,
    channels: C,
  };
  for (const role of ["deliveries", "roomEvents", "roomMembers", "channels"] as const) {
    const schema = rowSchema(role) as { name: string; fields: { name: string; doc?: string }[] };
    const type = avro.Type.forSchema(schema as avro.Schema);
    for (const field of schema.fields) assert.ok(field.doc, `${role}.${field.name} has a doc`);
    const row = toRow(record(Buffer.alloc(0)), values[role] as Delivery);
    assert.deepEqual(JSON.parse(JSON.stringify(type.fromBuffer(type.toBuffer(row)))), row, role);
    assert.equal(type.isValid({ ...row, value: null }), role === "roomMembers", `${role} tombstones`);
  }
});
