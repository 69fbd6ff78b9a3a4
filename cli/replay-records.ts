/**
 * What `rt replay` does with one Kafka record: decode its value with the codec of the topic's
 * role, apply the filters, and shape it as a row of the output (JSON Lines or an Avro container
 * file, the same fields). Pure.
 *
 * A row is the Kafka record with its decoded value: `{topic, partition, offset, timestamp, key,
 * headers, value}`, `timestamp` in milliseconds since the epoch, `value` the Avro record exactly
 * as decoded (its `data` stays JSON text), or null for a tombstone of rt.room-members. In an
 * Avro file the row is the record `rt.v1.replay.<Record>Row` of `rowSchema(role)`.
 */
import { deliveryCodec, type Delivery } from "../schemas/codec.ts";
import type { InRecord } from "../common/kafka/kafka.ts";
import { readSchemaFile, type RecordCodec } from "../schemas/record-codec.ts";
import {
  REPLAYED_HEADER,
  channelEventCodec,
  membershipCodec,
  parseMembershipKey,
  roomEventCodec,
  type ChannelEvent,
  type Membership,
  type RoomEvent,
} from "../schemas/records.ts";
import { TOPIC_BASENAMES, type TopicRole } from "../schemas/topics.ts";
import type { ReplayFilters } from "./replay-args.ts";

export type ReplayValue = Delivery | RoomEvent | Membership | ChannelEvent;

interface RoleSpec {
  readonly codec: RecordCodec<ReplayValue>;
  readonly file: string;
  readonly tombstones: boolean;
}

const ROLES: Readonly<Record<TopicRole, RoleSpec>> = {
  deliveries: { codec: deliveryCodec as RecordCodec<ReplayValue>, file: "delivery.avsc", tombstones: false },
  roomEvents: {
    codec: roomEventCodec as RecordCodec<ReplayValue>,
    file: "room-event.avsc",
    tombstones: false,
  },
  roomMembers: {
    codec: membershipCodec as RecordCodec<ReplayValue>,
    file: "membership.avsc",
    tombstones: true,
  },
  channels: {
    codec: channelEventCodec as RecordCodec<ReplayValue>,
    file: "channel-event.avsc",
    tombstones: false,
  },
};

export type DecodedValue =
  | { readonly ok: true; readonly value: ReplayValue | null }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** Decodes a record's value with the topic's codec; a null value is a tombstone or an error. */
export function decodeValue(role: TopicRole, value: Buffer | null): DecodedValue {
  const spec = ROLES[role];
  if (value === null) {
    return spec.tombstones
      ? { ok: true, value: null }
      : { ok: false, code: "null_value", message: `a null value (tombstone) on ${TOPIC_BASENAMES[role]}` };
  }
  const r = spec.codec.tryDecode(value);
  return r.ok ? { ok: true, value: r.value } : { ok: false, code: r.error.code, message: r.error.message };
}

/** True when a replay re-published this record (it carries REPLAYED_HEADER). */
export function isReplayed(record: InRecord): boolean {
  return Object.hasOwn(record.headers, REPLAYED_HEADER);
}

const anyOf = (wanted: readonly string[], ...have: (string | null | undefined)[]): boolean =>
  wanted.length === 0 || have.some((h) => h !== null && h !== undefined && wanted.includes(h));

/** Whether a decoded record passes the filters (see REPLAY_USAGE for what each one means). */
export function matchesFilters(
  role: TopicRole,
  f: ReplayFilters,
  key: string | null,
  value: ReplayValue | null,
): boolean {
  switch (role) {
    case "deliveries": {
      const d = value as Delivery;
      return anyOf(f.users, d.recipient, d.sender) && anyOf(f.rooms, d.room) && anyOf(f.types, d.type);
    }
    case "roomEvents": {
      const e = value as RoomEvent;
      return anyOf(f.users, e.sender, e.member) && anyOf(f.rooms, e.room) && anyOf(f.types, e.type);
    }
    case "roomMembers": {
      // A tombstone has only its key, <room>/<user>.
      const m = value as Membership | null;
      const k = key === null ? null : parseMembershipKey(key);
      return anyOf(f.users, m?.user ?? k?.user) && anyOf(f.rooms, m?.room ?? k?.room);
    }
    case "channels": {
      const c = value as ChannelEvent;
      return anyOf(f.users, c.sender) && anyOf(f.channels, c.channel) && anyOf(f.types, c.type);
    }
  }
}

export interface ReplayRow {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly key: string | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: ReplayValue | null;
}

export function toRow(record: InRecord, value: ReplayValue | null): ReplayRow {
  return {
    topic: record.topic,
    partition: record.partition,
    offset: Number(record.offset),
    timestamp: record.timestampMs,
    key: record.key === null ? null : record.key.toString("utf8"),
    headers: record.headers,
    value,
  };
}

const ROW_NAMES: Readonly<Record<TopicRole, string>> = {
  deliveries: "DeliveryRow",
  roomEvents: "RoomEventRow",
  roomMembers: "MembershipRow",
  channels: "ChannelEventRow",
};

/** The schema of the rows of an Avro container file written by `rt replay` from `role`'s topic. */
export function rowSchema(role: TopicRole): unknown {
  const spec = ROLES[role];
  const record = readSchemaFile(spec.file);
  return {
    type: "record",
    name: ROW_NAMES[role],
    namespace: "rt.v1.replay",
    doc: `One record of ${TOPIC_BASENAMES[role]} as written by rt replay: the Kafka record and its decoded value.`,
    fields: [
      { name: "topic", type: "string", doc: "The topic it was read from." },
      { name: "partition", type: "int", doc: "Its partition." },
      { name: "offset", type: "long", doc: "Its offset in the partition." },
      {
        name: "timestamp",
        type: { type: "long", logicalType: "timestamp-millis" },
        doc: "The Kafka record timestamp, in milliseconds since the Unix epoch.",
      },
      { name: "key", type: ["null", "string"], doc: "The record key as UTF-8 text; null when it has none." },
      {
        name: "headers",
        type: { type: "map", values: "string" },
        doc: "The Kafka headers as UTF-8 text, e.g. traceparent.",
      },
      {
        name: "value",
        type: spec.tombstones ? ["null", record] : record,
        doc: spec.tombstones ? "The decoded value; null for a tombstone (a leave)." : "The decoded value.",
      },
    ],
  };
}
