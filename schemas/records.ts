/**
 * The records of rt.room-events, rt.room-members and rt.channels (schemas in the .avsc files next
 * to this module), their codecs, and the keys and partitions each topic uses. rt.deliveries'
 * Delivery is in codec.ts.
 */
import { partitionForKey } from "./partition.ts";
import { RecordCodec, readSchemaFile } from "./record-codec.ts";
import { earlierSchemas } from "./versions.ts";

export const RoomEventKind = { message: "message", join: "join", leave: "leave" } as const;
export type RoomEventKind = (typeof RoomEventKind)[keyof typeof RoomEventKind];

/** One entry of a room's log (room-event.avsc). */
export interface RoomEvent {
  readonly id: string;
  readonly kind: RoomEventKind;
  readonly room: string;
  readonly sender: string;
  readonly member: string | null;
  readonly type: string;
  readonly ts: number;
  readonly data: string;
  readonly attributes: Readonly<Record<string, string>>;
}

/** One member of one room (membership.avsc); a leave is a tombstone under the same key. */
export interface Membership {
  readonly room: string;
  readonly user: string;
  readonly joined_ts: number;
  readonly by: string;
  readonly source: string;
}

/** One live event (channel-event.avsc). */
export interface ChannelEvent {
  readonly id: string;
  readonly channel: string;
  readonly sender: string;
  readonly type: string;
  readonly ts: number;
  readonly data: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export const roomEventCodec = new RecordCodec<RoomEvent>(
  readSchemaFile("room-event.avsc"),
  (v) => ({
    id: v.id,
    kind: v.kind,
    room: v.room,
    sender: v.sender,
    member: v.member,
    type: v.type,
    ts: v.ts,
    data: v.data,
    attributes: v.attributes,
  }),
  earlierSchemas("roomEvent"),
);

export const membershipCodec = new RecordCodec<Membership>(
  readSchemaFile("membership.avsc"),
  (v) => ({
    room: v.room,
    user: v.user,
    joined_ts: v.joined_ts,
    by: v.by,
    source: v.source,
  }),
  earlierSchemas("membership"),
);

export const channelEventCodec = new RecordCodec<ChannelEvent>(
  readSchemaFile("channel-event.avsc"),
  (v) => ({
    id: v.id,
    channel: v.channel,
    sender: v.sender,
    type: v.type,
    ts: v.ts,
    data: v.data,
    attributes: v.attributes,
  }),
  earlierSchemas("channelEvent"),
);

/**
 * rt.room-members' key: `<room>/<user>`. Room names have no `/`, so the first one splits it
 * (user ids may contain `/`).
 */
export function membershipKey(room: string, user: string): string {
  return `${room}/${user}`;
}

export function parseMembershipKey(key: string): { room: string; user: string } | null {
  const slash = key.indexOf("/");
  if (slash <= 0 || slash === key.length - 1) return null;
  return { room: key.slice(0, slash), user: key.slice(slash + 1) };
}

/**
 * The partition of a room in rt.room-events and rt.room-members (same count): murmur2 of the
 * room name, as Kafka's default partitioner does for rt.room-events' key. rt.room-members'
 * key is `<room>/<user>`, so its writers must set this partition explicitly.
 */
export function roomPartition(room: string, partitions: number): number {
  return partitionForKey(room, partitions);
}

/** Types starting with `rt.` are the system's own; clients may not send them. */
export const SYSTEM_TYPE_PREFIX = "rt.";

/**
 * System event types on rt.deliveries (as Delivery.type). `rt.revoke` never reaches a client:
 * the gateway closes the user's sessions. The others are delivered like any event.
 */
export const SystemType = {
  /** Close every session of the recipient with the `revoked` close code. */
  revoke: "rt.revoke",
  /** The recipient joined a room (data: {room, by}). */
  joined: "rt.joined",
  /** The recipient left a room (data: {room, by}). */
  left: "rt.left",
  /** A room request of the recipient was refused by the router (data: {id, room, code, message}). */
  rejected: "rt.rejected",
} as const;
export type SystemType = (typeof SystemType)[keyof typeof SystemType];

/** Kafka header naming a control record on rt.deliveries, so a gateway spots one without decoding. */
export const CONTROL_HEADER = "rt-control";
/** Kafka header on records that `rt replay` re-published, so a replay never replays itself. */
export const REPLAYED_HEADER = "rt-replayed";
/** Delivery attribute holding the rt.room-events position a fanned-out delivery came from. */
export const SOURCE_ATTRIBUTE = "rt.source";
