/**
 * Reading server frames. The server is our own code, but a client must not crash on a frame it
 * cannot read (a newer server, a proxy's junk): each frame is checked for the fields the client
 * uses and comes back as a value or a reason. Unknown ops are not errors: newer servers may add
 * frames, and this client ignores them. Pure; never throws.
 */
import type { JsonValue, ServerFrame, SessionLimits } from "../schemas/frames.ts";
import { isErrorCode } from "../schemas/errors.ts";

export type DecodedServerFrame =
  | { readonly ok: true; readonly frame: KnownServerFrame }
  | { readonly ok: true; readonly frame: null; readonly op: string }
  | { readonly ok: false; readonly reason: string };

/** Every frame of protocol v1 the client understands: all server frames. */
export type KnownServerFrame = ServerFrame;

type Obj = Record<string, unknown>;

const isStr = (v: unknown): v is string => typeof v === "string";
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const optStr = (v: unknown): boolean => v === undefined || isStr(v);

export function decodeServerFrame(text: unknown): DecodedServerFrame {
  if (typeof text !== "string") return { ok: false, reason: "binary message on the JSON protocol" };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, reason: "frame is not valid JSON" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { ok: false, reason: "frame is not a JSON object" };
  }
  const f = v as Obj;
  const op = f["op"];
  if (!isStr(op)) return { ok: false, reason: "frame has no op" };
  const bad = (what: string): DecodedServerFrame => ({ ok: false, reason: `${op}: ${what}` });
  switch (op) {
    case "welcome": {
      if (!isStr(f["user"]) || !isStr(f["cursor"]) || typeof f["recovered"] !== "boolean") {
        return bad("needs user, cursor and recovered");
      }
      return {
        ok: true,
        frame: {
          op,
          user: f["user"],
          cursor: f["cursor"],
          recovered: f["recovered"],
          ...(isStr(f["reason"]) ? { reason: f["reason"] } : {}),
          heartbeat_s: isNum(f["heartbeat_s"]) ? f["heartbeat_s"] : 0,
          session: isStr(f["session"]) ? f["session"] : "",
          node: isStr(f["node"]) ? f["node"] : "",
          limits: readLimits(f["limits"]),
        },
      };
    }
    case "redirect":
      return isStr(f["url"]) ? { ok: true, frame: { op, url: f["url"] } } : bad("needs url");
    case "ack": {
      const id = f["id"];
      if (!isStr(id) || typeof f["ok"] !== "boolean") return bad("needs id and ok");
      if (f["ok"]) {
        if (!optStr(f["cursor"])) return bad("cursor must be a string");
        const cursor = f["cursor"] as string | undefined;
        return {
          ok: true,
          frame: cursor === undefined ? { op, id, ok: true } : { op, id, ok: true, cursor },
        };
      }
      const e = f["error"] as Obj | undefined;
      const code = typeof e === "object" && e !== null && isErrorCode(e["code"]) ? e["code"] : "internal";
      const message =
        typeof e === "object" && e !== null && isStr(e["message"]) ? e["message"] : "send failed";
      return { ok: true, frame: { op, id, ok: false, error: { code, message } } };
    }
    case "event": {
      const { cursor, id, from, to, type, ts } = f;
      if (!optStr(cursor) || !isStr(id) || !isStr(from) || !isStr(to) || !isStr(type) || !isNum(ts)) {
        return bad("needs id, from, to, type and ts (and cursor, unless a live channel event)");
      }
      const data = (f["data"] ?? null) as JsonValue;
      const frame = { op, id, from, to, type, data, ts } as const;
      return { ok: true, frame: cursor === undefined ? frame : { ...frame, cursor: cursor as string } };
    }
    case "ping":
    case "pong":
      return { ok: true, frame: isStr(f["id"]) ? { op, id: f["id"] } : { op } };
    case "error": {
      const code = isErrorCode(f["code"]) ? f["code"] : "internal";
      return { ok: true, frame: { op, code, message: isStr(f["message"]) ? f["message"] : "" } };
    }
    default:
      return { ok: true, frame: null, op };
  }
}

function readLimits(v: unknown): SessionLimits {
  const o = (typeof v === "object" && v !== null ? v : {}) as Obj;
  const n = (k: string): number => (isNum(o[k]) ? (o[k] as number) : 0);
  return {
    max_frame_bytes: n("max_frame_bytes"),
    max_data_depth: n("max_data_depth"),
    max_rooms: n("max_rooms"),
    max_channels: n("max_channels"),
    sends_per_s: n("sends_per_s"),
  };
}
