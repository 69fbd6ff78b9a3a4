/**
 * The records in the golden files (schemas/golden/*.bin): one per schema version and record
 * type, and one per op for the frame schemas. make-golden.ts writes them; the evolution test
 * (test/unit/schema-evolution.test.ts) decodes them with the current schemas.
 *
 * A version's values never change once its files are committed. A new schema version adds its
 * own entries (and files) next to the old ones.
 */
import type { Delivery } from "../codec.ts";
import type { ClientFrame, ServerFrame } from "../frames.ts";
import type { ChannelEvent, Membership, RoomEvent } from "../records.ts";
import type { SchemaKind } from "../versions.ts";

export interface Golden {
  readonly kind: SchemaKind;
  readonly version: number;
  /** File name under schemas/golden/. */
  readonly file: string;
  readonly value: Delivery | RoomEvent | Membership | ChannelEvent | ClientFrame | ServerFrame;
}

const TS = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const DELIVERY_V1: Delivery = {
  id: "golden-1",
  type: "chat.message",
  sender: "service:golden",
  recipient: "user-ü-1",
  room: "room:lobby",
  ts: TS,
  data: '{"text":"héllo 🌍","n":[1,2,3]}',
  attributes: { origin: "make-golden", schema: "v1" },
};

const ROOM_EVENT_V1: RoomEvent = {
  id: "golden-2",
  kind: "join",
  room: "lobby",
  sender: "service:golden",
  member: "user-ü-1",
  type: "rt.joined",
  ts: TS,
  data: "null",
  attributes: { origin: "make-golden" },
};

const MEMBERSHIP_V1: Membership = {
  room: "lobby",
  user: "user-ü-1",
  joined_ts: TS,
  by: "service:golden",
  source: "3:1041",
};

const CHANNEL_EVENT_V1: ChannelEvent = {
  id: "golden-4",
  channel: "*",
  sender: "service:golden",
  type: "score.update",
  ts: TS,
  data: '{"score":[1,2],"text":"héllo 🌍"}',
  attributes: {},
};

const CLIENT_FRAMES_V1: Readonly<Record<string, ClientFrame>> = {
  hello: { op: "hello", token: "eyJhbGciOiJIUzI1NiJ9.e30.golden", cursor: "pc:9:1041" },
  auth: { op: "auth", id: "refresh-1", token: "eyJhbGciOiJIUzI1NiJ9.e30.golden2" },
  send: {
    op: "send",
    id: "01HZX3K8Q2",
    to: "user:bob",
    type: "chat.message",
    data: { text: "héllo 🌍", n: [1, 2.5, null, true] },
    traceparent: TRACEPARENT,
  },
  join: { op: "join", id: "j1", room: "lobby" },
  leave: { op: "leave", id: "l1", room: "lobby" },
  subscribe: { op: "subscribe", id: "s1", channel: "*" },
  unsubscribe: { op: "unsubscribe", id: "u1", channel: "news" },
  ping: { op: "ping", id: "hb1" },
  pong: { op: "pong" },
};

const SERVER_FRAMES_V1: Readonly<Record<string, ServerFrame>> = {
  welcome: {
    op: "welcome",
    user: "alice",
    cursor: "pc:9:88412",
    recovered: false,
    reason: "retention",
    heartbeat_s: 30,
    session: "T0pWc3rA",
    node: "gw-b",
    limits: { max_frame_bytes: 65536, max_data_depth: 32, max_rooms: 0, max_channels: 0, sends_per_s: 50 },
  },
  redirect: { op: "redirect", url: "wss://gw-b.example.com/v1/ws" },
  "ack-ok": { op: "ack", id: "01HZX3K8Q2", ok: true, cursor: "pc:6:5521" },
  "ack-error": {
    op: "ack",
    id: "01HZX3K8Q3",
    ok: false,
    error: { code: "rate_limited", message: "over 50 sends/s; retry in 20 ms" },
  },
  event: {
    op: "event",
    cursor: "pc:9:1190",
    id: "m-77",
    from: "bob",
    to: "user:alice",
    type: "chat.message",
    data: { text: "hello alice" },
    ts: TS,
  },
  ping: { op: "ping", id: "s-hb" },
  pong: { op: "pong", id: "hb1" },
  error: { op: "error", code: "not_authenticated", message: "send hello first" },
};

export const GOLDENS: readonly Golden[] = [
  { kind: "delivery", version: 1, file: "delivery-v1.bin", value: DELIVERY_V1 },
  { kind: "roomEvent", version: 1, file: "room-event-v1.bin", value: ROOM_EVENT_V1 },
  { kind: "membership", version: 1, file: "membership-v1.bin", value: MEMBERSHIP_V1 },
  { kind: "channelEvent", version: 1, file: "channel-event-v1.bin", value: CHANNEL_EVENT_V1 },
  ...Object.entries(CLIENT_FRAMES_V1).map(
    ([name, value]): Golden => ({
      kind: "clientFrame",
      version: 1,
      file: `client-frame-v1-${name}.bin`,
      value,
    }),
  ),
  ...Object.entries(SERVER_FRAMES_V1).map(
    ([name, value]): Golden => ({
      kind: "serverFrame",
      version: 1,
      file: `server-frame-v1-${name}.bin`,
      value,
    }),
  ),
];
