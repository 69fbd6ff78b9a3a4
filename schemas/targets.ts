/**
 * Names on the wire: message ids, event types, user ids, room and channel names, and the `to`
 * targets built from them. Each check is a bounded regex test; they never throw.
 *
 * User ids are broad (any printable ASCII but space) because they come from identity providers;
 * room and channel names are the application's own, so their alphabet is narrow. None may contain
 * whitespace or control characters, so they are safe in logs, Kafka keys and uWS topics.
 */

/** Client-chosen request/message ids: 1–64 chars of [A-Za-z0-9_.:-]. */
export const MESSAGE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Application event types, e.g. `chat.message`. */
export const EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** User ids: 1–128 printable ASCII chars, no whitespace. */
export const USER_ID = /^[\x21-\x7e]{1,128}$/;
/** Room and channel names: 1–128 chars of [A-Za-z0-9_.:@-]. */
export const ROOM_NAME = /^[A-Za-z0-9_.:@-]{1,128}$/;
export const CHANNEL_NAME = ROOM_NAME;
/** The longest valid target: `channel:` and a 128-char name. */
export const TARGET_MAX_CHARS = 136;
/** The broadcast channel: every connected client may subscribe to it. */
export const BROADCAST_CHANNEL = "*";

export const TargetKind = { user: "user", room: "room", channel: "channel" } as const;
export type TargetKind = (typeof TargetKind)[keyof typeof TargetKind];

export type Target =
  | { readonly kind: "user"; readonly user: string }
  | { readonly kind: "room"; readonly room: string }
  | { readonly kind: "channel"; readonly channel: string };

export const isMessageId = (s: string): boolean => MESSAGE_ID.test(s);
export const isEventType = (s: string): boolean => EVENT_TYPE.test(s);
export const isUserId = (s: string): boolean => USER_ID.test(s);
export const isRoomName = (s: string): boolean => ROOM_NAME.test(s);
/** A channel name, or `*` (broadcast). */
export const isChannelName = (s: string): boolean => s === BROADCAST_CHANNEL || CHANNEL_NAME.test(s);

/**
 * Parses `user:<U>`, `room:<R>` or `channel:<C>` (split at the first colon, so names may hold
 * colons). Returns undefined for anything else. Whether the sender may use the target (e.g.
 * publish to `channel:*`) is policy, decided by the gateway.
 */
export function parseTarget(to: string): Target | undefined {
  if (to.length > TARGET_MAX_CHARS) return undefined;
  const colon = to.indexOf(":");
  if (colon < 0) return undefined;
  const name = to.slice(colon + 1);
  switch (to.slice(0, colon)) {
    case "user":
      return isUserId(name) ? { kind: "user", user: name } : undefined;
    case "room":
      return isRoomName(name) ? { kind: "room", room: name } : undefined;
    case "channel":
      return isChannelName(name) ? { kind: "channel", channel: name } : undefined;
    default:
      return undefined;
  }
}

/** The wire form of a target: the inverse of parseTarget. */
export function formatTarget(t: Target): string {
  switch (t.kind) {
    case "user":
      return `user:${t.user}`;
    case "room":
      return `room:${t.room}`;
    case "channel":
      return `channel:${t.channel}`;
  }
}
