/**
 * Records for backends that publish straight to Kafka (and for the router's publish API, which
 * uses the same functions): each returns the topic role, key, partition, value and headers of one
 * record, exactly as the gateways would write it. docs/BACKENDS.md describes the same records
 * without TypeScript.
 */
import { encodeDelivery } from "./codec.ts";
import { partitionForKey } from "./partition.ts";
import {
  CONTROL_HEADER,
  SystemType,
  channelEventCodec,
  roomEventCodec,
  roomPartition,
  type RoomEventKind,
} from "./records.ts";
import type { TopicRole } from "./topics.ts";

export interface PublishRecord {
  readonly role: TopicRole;
  readonly key: string;
  readonly partition: number;
  readonly value: Buffer;
  readonly headers: Readonly<Record<string, string>>;
  readonly timestampMs: number;
}

/** Partition counts of the topics, as read from Kafka. */
export interface PartitionCounts {
  readonly deliveries: number;
  readonly rooms: number;
  readonly channels: number;
}

export interface EventInput {
  readonly id: string;
  /** A user id, or `service:<name>`. */
  readonly sender: string;
  readonly type: string;
  /** The payload as JSON text. */
  readonly data: string;
  readonly ts: number;
  readonly attributes?: Readonly<Record<string, string>>;
}

/** A direct event for one user: a Delivery on rt.deliveries keyed by the user. */
export function directRecord(user: string, e: EventInput, counts: PartitionCounts): PublishRecord {
  return {
    role: "deliveries",
    key: user,
    partition: partitionForKey(user, counts.deliveries),
    value: encodeDelivery({ ...e, attributes: e.attributes ?? {}, recipient: user, room: null }),
    headers: {},
    timestampMs: e.ts,
  };
}

/** A room message, or a join / leave of `member`: a RoomEvent on rt.room-events keyed by the room. */
export function roomRecord(
  room: string,
  kind: RoomEventKind,
  e: EventInput & { readonly member?: string },
  counts: PartitionCounts,
): PublishRecord {
  const membership = kind !== "message";
  return {
    role: "roomEvents",
    key: room,
    partition: roomPartition(room, counts.rooms),
    value: roomEventCodec.encode({
      id: e.id,
      kind,
      room,
      sender: e.sender,
      member: membership ? (e.member ?? e.sender) : null,
      type: membership ? (kind === "join" ? SystemType.joined : SystemType.left) : e.type,
      ts: e.ts,
      data: membership ? "null" : e.data,
      attributes: e.attributes ?? {},
    }),
    headers: {},
    timestampMs: e.ts,
  };
}

/** A live channel event (`*`: broadcast): a ChannelEvent on rt.channels keyed by the channel. */
export function channelRecord(channel: string, e: EventInput, counts: PartitionCounts): PublishRecord {
  return {
    role: "channels",
    key: channel,
    partition: partitionForKey(channel, counts.channels),
    value: channelEventCodec.encode({ ...e, channel, attributes: e.attributes ?? {} }),
    headers: {},
    timestampMs: e.ts,
  };
}

/**
 * Revokes every session of `user`: a control Delivery (type rt.revoke) on rt.deliveries keyed by
 * the user, with the rt-control header. The gateway that owns the user closes its sessions whose
 * token was issued at or before `ts`, with the `revoked` close code.
 */
export function revokeRecord(
  user: string,
  by: string,
  reason: string,
  ts: number,
  id: string,
  counts: PartitionCounts,
): PublishRecord {
  return {
    role: "deliveries",
    key: user,
    partition: partitionForKey(user, counts.deliveries),
    value: encodeDelivery({
      id,
      type: SystemType.revoke,
      sender: by,
      recipient: user,
      room: null,
      ts,
      data: JSON.stringify({ reason }),
      attributes: {},
    }),
    headers: { [CONTROL_HEADER]: "revoke" },
    timestampMs: ts,
  };
}
