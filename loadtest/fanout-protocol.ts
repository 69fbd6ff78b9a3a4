/**
 * The fanout scenarios' side of wire protocol v1 and of the publish API: names of users, rooms
 * and messages, the frames and publish bodies the generators build, and the fields they read
 * from server frames. Pure.
 *
 * Every measured message carries `data: {"seq": n, "t": <send time, ms>, "pad": "xx.."}`; its id
 * is `<run>.<group>.<seq>`, where the group is the room index (room) or 0 (broadcast), so a
 * receiver maps an event to its slot without a lookup table. Probe broadcasts (sent until every
 * gateway is known to deliver channel events) have their own type and are never measured.
 */
import { messageId } from "./protocol.ts";

export const ROOM_EVENT_TYPE = "bench.msg";
export const BROADCAST_EVENT_TYPE = "bench.bcast";
export const PROBE_EVENT_TYPE = "bench.probe";
export const JOINED_TYPE = "rt.joined";
export const REJECTED_TYPE = "rt.rejected";
export const BROADCAST_TARGET = "channel:*";
/** The service name in the run's publish token (`sub`); events arrive `from: "service:<it>"`. */
export const PUBLISH_SERVICE = "rt-loadtest";

export function memberUser(runId: string, i: number): string {
  return `lt-${runId}-m${i}`;
}

/** The sender of room `room` (`via: member`): a member of the room, in the main process. */
export function roomSenderUser(runId: string, room: number): string {
  return `lt-${runId}-s${room}`;
}

export function roomName(runId: string, room: number): string {
  return `bench-${runId}-${room}`;
}

/** The `rt_rooms` pattern that lets the run's users join the run's rooms, and no other. */
export function roomsClaim(runId: string): string[] {
  return [`bench-${runId}-*`];
}

/** Member i's room: members are dealt to rooms in turn. */
export function roomOf(member: number, rooms: number): number {
  return member % rooms;
}

/** How many of `members` are in room `room`. */
export function membersInRoom(room: number, members: number, rooms: number): number {
  return Math.floor(members / rooms) + (room < members % rooms ? 1 : 0);
}

function data(seq: number, sendTimeMs: number, payloadBytes: number): string {
  const head = `{"seq":${seq},"t":${sendTimeMs.toFixed(3)},"pad":"`;
  return `${head}${"x".repeat(Math.max(0, payloadBytes - head.length - 2))}"}`;
}

/** A member's send into a room; `data` padded to `payloadBytes` of JSON (or as short as it can be). */
export function roomSendFrame(
  runId: string,
  room: number,
  seq: number,
  sendTimeMs: number,
  payloadBytes: number,
): string {
  return (
    `{"op":"send","id":"${messageId(runId, room, seq)}","to":"room:${roomName(runId, room)}",` +
    `"type":"${ROOM_EVENT_TYPE}","data":${data(seq, sendTimeMs, payloadBytes)}}`
  );
}

export function joinFrame(id: string, room: string): string {
  return JSON.stringify({ op: "join", id, room });
}

/** A POST /v1/publish body. */
export function publishBody(
  id: string,
  to: string,
  type: string,
  seq: number,
  sendTimeMs: number,
  payloadBytes: number,
): string {
  return `{"id":"${id}","to":"${to}","type":"${type}","data":${data(seq, sendTimeMs, payloadBytes)}}`;
}

/** The fields the fanout generators read from server frames. */
export type FanoutServerMessage =
  | { readonly op: "welcome"; readonly node: string }
  | { readonly op: "ack"; readonly id: string; readonly ok: boolean; readonly code: string | null }
  | {
      readonly op: "event";
      readonly id: string;
      readonly type: string;
      readonly to: string;
      /** `data.seq` and `data.t` when they are numbers. */
      readonly seq: number | null;
      readonly sendTimeMs: number | null;
      /** For `rt.rejected`: the refusal's code. */
      readonly code: string | null;
    }
  | { readonly op: "ping"; readonly id: string | undefined }
  | { readonly op: "error"; readonly code: string }
  | { readonly op: "other" };

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const finite = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** Never throws: anything unreadable is `other`. */
export function parseFanoutMessage(text: string): FanoutServerMessage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { op: "other" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { op: "other" };
  const f = v as Record<string, unknown>;
  switch (f["op"]) {
    case "event": {
      const id = str(f["id"]);
      const type = str(f["type"]);
      const to = str(f["to"]);
      if (id === undefined || type === undefined || to === undefined) return { op: "other" };
      const d = f["data"];
      const obj =
        typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Record<string, unknown>) : {};
      const seq = finite(obj["seq"]);
      return {
        op: "event",
        id,
        type,
        to,
        seq: seq !== null && Number.isSafeInteger(seq) && seq >= 0 ? seq : null,
        sendTimeMs: finite(obj["t"]),
        code: str(obj["code"]) ?? null,
      };
    }
    case "ack": {
      const id = str(f["id"]);
      if (id === undefined || typeof f["ok"] !== "boolean") return { op: "other" };
      const error = f["error"] as Record<string, unknown> | undefined;
      return { op: "ack", id, ok: f["ok"], code: f["ok"] ? null : (str(error?.["code"]) ?? "unknown") };
    }
    case "welcome":
      return { op: "welcome", node: str(f["node"]) ?? "" };
    case "ping":
      return { op: "ping", id: str(f["id"]) };
    case "error":
      return { op: "error", code: str(f["code"]) ?? "unknown" };
    default:
      return { op: "other" };
  }
}
