/**
 * Room fanout, pure: what one entry of a room's log (rt.room-events) turns into, given the room's
 * membership just before it. No I/O; the router's fanout loop (fanout.ts) writes the result.
 *
 * - message: one Delivery per member, in the member's own inbox (keyed and partitioned by the
 *   member), carrying the entry's position as `rt.source`. Only members (and services) may send;
 *   anyone else gets an `rt.rejected` event naming the request.
 * - join: a Membership record and an `rt.joined` event for the member; a full room refuses it
 *   (`rt.rejected`, limit_reached); joining twice changes nothing.
 * - leave: a tombstone and an `rt.left` event; leaving a room one is not in changes nothing.
 */
import type { Delivery } from "../schemas/codec.ts";
import { SOURCE_ATTRIBUTE, SystemType, type Membership, type RoomEvent } from "../schemas/records.ts";

/** The sender name of events the router itself makes (rejections). */
export const ROUTER_SENDER = "service:rt-router";

export interface FanoutLimits {
  readonly maxRoomMembers: number;
}

export interface MembershipChange {
  readonly room: string;
  readonly user: string;
  /** null: the user left (a tombstone). */
  readonly membership: Membership | null;
}

export interface FanoutPlan {
  readonly deliveries: readonly Delivery[];
  readonly change: MembershipChange | null;
  /** Why nothing was fanned out, for logs and metrics; null when the entry took effect. */
  readonly refused: "not_member" | "room_full" | null;
}

const isService = (sender: string) => sender.startsWith("service:");

/**
 * `members`: the room's members before this entry (undefined: none). `source`: the entry's
 * position, `<partition>:<offset>`.
 */
export function planRoomEvent(
  e: RoomEvent,
  source: string,
  members: ReadonlyMap<string, Membership> | undefined,
  limits: FanoutLimits,
): FanoutPlan {
  const attributes = { ...e.attributes, [SOURCE_ATTRIBUTE]: source };
  const notice = (recipient: string, type: string, data: unknown): Delivery => ({
    id: e.id,
    type,
    sender: type === SystemType.rejected ? ROUTER_SENDER : e.sender,
    recipient,
    room: e.room,
    ts: e.ts,
    data: JSON.stringify(data),
    attributes,
  });
  const reject = (code: "not_member" | "limit_reached", message: string): FanoutPlan => ({
    deliveries: isService(e.sender)
      ? []
      : [notice(e.sender, SystemType.rejected, { id: e.id, room: e.room, code, message })],
    change: null,
    refused: code === "not_member" ? "not_member" : "room_full",
  });
  switch (e.kind) {
    case "message": {
      if (!isService(e.sender) && members?.has(e.sender) !== true) {
        return reject("not_member", `not a member of room ${e.room}: join it first`);
      }
      const deliveries: Delivery[] = [];
      for (const user of members?.keys() ?? []) {
        deliveries.push({
          id: e.id,
          type: e.type,
          sender: e.sender,
          recipient: user,
          room: e.room,
          ts: e.ts,
          data: e.data,
          attributes,
        });
      }
      return { deliveries, change: null, refused: null };
    }
    case "join": {
      const user = e.member ?? e.sender;
      if (members?.has(user) === true) return { deliveries: [], change: null, refused: null };
      if ((members?.size ?? 0) >= limits.maxRoomMembers) {
        return reject("limit_reached", `room ${e.room} is full (${limits.maxRoomMembers} members)`);
      }
      const membership: Membership = { room: e.room, user, joined_ts: e.ts, by: e.sender, source };
      return {
        deliveries: [notice(user, SystemType.joined, { room: e.room, by: e.sender })],
        change: { room: e.room, user, membership },
        refused: null,
      };
    }
    case "leave": {
      const user = e.member ?? e.sender;
      if (members?.has(user) !== true) return { deliveries: [], change: null, refused: null };
      return {
        deliveries: [notice(user, SystemType.left, { room: e.room, by: e.sender })],
        change: { room: e.room, user, membership: null },
        refused: null,
      };
    }
  }
}
