/**
 * Wire protocol v1: JSON frames, one object per WebSocket text message, named by `op`.
 *
 * Client frames are untrusted, so `decodeClientFrame` checks them strictly: exact field sets
 * (an unknown field is an error, so typos and version skew surface at once), types, name
 * alphabets, lengths and payload depth, and it never throws. Server frames are built by our own
 * code from these types, so encoding them is plain JSON.stringify.
 */
import { parseCursor } from "./cursor.ts";
import type { ErrorCode, WireError } from "./errors.ts";
import { isChannelName, isEventType, isMessageId, isRoomName, parseTarget } from "./targets.ts";
import { isTraceparent } from "./traceparent.ts";

export const ClientOp = {
  hello: "hello",
  auth: "auth",
  send: "send",
  join: "join",
  leave: "leave",
  subscribe: "subscribe",
  unsubscribe: "unsubscribe",
  ping: "ping",
  pong: "pong",
} as const;
export type ClientOp = (typeof ClientOp)[keyof typeof ClientOp];

export const ServerOp = {
  welcome: "welcome",
  redirect: "redirect",
  ack: "ack",
  event: "event",
  ping: "ping",
  pong: "pong",
  error: "error",
} as const;
export type ServerOp = (typeof ServerOp)[keyof typeof ServerOp];

export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

// ---- client → server ----

/** First frame of a session: authenticate, and resume after `cursor` if given. */
export interface HelloFrame {
  readonly op: "hello";
  readonly token: string;
  readonly cursor?: string;
}
/** Token refresh during a session. */
export interface AuthFrame {
  readonly op: "auth";
  readonly id: string;
  readonly token: string;
}
/** Publish. `to` is `user:<U>`, `room:<R>` or `channel:<C>` (see targets.ts). */
export interface SendFrame {
  readonly op: "send";
  readonly id: string;
  readonly to: string;
  readonly type: string;
  readonly data: JsonValue;
  readonly traceparent?: string;
}
export interface JoinFrame {
  readonly op: "join";
  readonly id: string;
  readonly room: string;
}
export interface LeaveFrame {
  readonly op: "leave";
  readonly id: string;
  readonly room: string;
}
export interface SubscribeFrame {
  readonly op: "subscribe";
  readonly id: string;
  readonly channel: string;
}
export interface UnsubscribeFrame {
  readonly op: "unsubscribe";
  readonly id: string;
  readonly channel: string;
}
/** App-level heartbeat, for clients that cannot see WebSocket pings; both directions. */
export interface PingFrame {
  readonly op: "ping";
  readonly id?: string;
}
export interface PongFrame {
  readonly op: "pong";
  readonly id?: string;
}

export type ClientFrame =
  | HelloFrame
  | AuthFrame
  | SendFrame
  | JoinFrame
  | LeaveFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PingFrame
  | PongFrame;

// ---- server → client ----

/** The session's limits, so an SDK can refuse an oversized send before the server closes on it. */
export interface SessionLimits {
  readonly max_frame_bytes: number;
  readonly max_data_depth: number;
  readonly max_rooms: number;
  readonly max_channels: number;
  readonly sends_per_s: number;
}
export interface WelcomeFrame {
  readonly op: "welcome";
  readonly user: string;
  /** Where the client now is; it keeps the newest cursor it has seen from here on. */
  readonly cursor: string;
  /** False when the resume could not be complete (limits, retention, new epoch): resync. */
  readonly recovered: boolean;
  /** Why not, when `recovered` is false (a key of RESUME_REASONS in gateway/resume.ts). */
  readonly reason?: string;
  readonly heartbeat_s: number;
  readonly session: string;
  readonly node: string;
  readonly limits: SessionLimits;
}
export interface RedirectFrame {
  readonly op: "redirect";
  readonly url: string;
}
/** Sent only after Kafka acknowledged the write (ok), or when it will not happen (error). */
export type AckFrame =
  | { readonly op: "ack"; readonly id: string; readonly ok: true; readonly cursor?: string }
  | { readonly op: "ack"; readonly id: string; readonly ok: false; readonly error: WireError };
export interface EventFrame {
  readonly op: "event";
  /** Its place in the recipient's inbox log; absent for live channel events (not resumable). */
  readonly cursor?: string;
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly type: string;
  readonly data: JsonValue;
  /** Accept time, milliseconds since the Unix epoch. */
  readonly ts: number;
}
export interface ServerPingFrame {
  readonly op: "ping";
  readonly id?: string;
}
export interface ServerPongFrame {
  readonly op: "pong";
  readonly id?: string;
}
export interface ErrorFrame {
  readonly op: "error";
  readonly code: ErrorCode;
  readonly message: string;
}

export type ServerFrame =
  | WelcomeFrame
  | RedirectFrame
  | AckFrame
  | EventFrame
  | ServerPingFrame
  | ServerPongFrame
  | ErrorFrame;

/** A server frame as one WebSocket text message. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

// ---- decoding client frames ----

export interface FrameLimits {
  /** Longest frame text, in UTF-16 code units (uWS's maxPayloadLength bounds bytes before this). */
  readonly maxFrameChars: number;
  /** Deepest nesting of arrays and objects in `data`: `{}` is depth 1. */
  readonly maxDepth: number;
  readonly maxTokenChars: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = Object.freeze({
  maxFrameChars: 64 * 1024,
  maxDepth: 32,
  maxTokenChars: 8192,
});

export type DecodeFrameResult = { ok: true; frame: ClientFrame } | { ok: false; error: WireError };

type Check = (value: unknown, limits: FrameLimits) => WireError | undefined;
interface FieldSpec {
  readonly check: Check;
  readonly optional?: true;
}

const err = (code: ErrorCode, message: string): WireError => ({ code, message });
const str =
  (test: (s: string) => boolean, code: ErrorCode, what: string): Check =>
  (v) =>
    typeof v === "string" && test(v) ? undefined : err(code, what);

const id = str(isMessageId, "bad_frame", "must be 1-64 chars of [A-Za-z0-9_.:-]");
const room = str(isRoomName, "bad_target", "must be 1-128 chars of [A-Za-z0-9_.:@-]");
const channel = str(isChannelName, "bad_target", "must be * or 1-128 chars of [A-Za-z0-9_.:@-]");
const token: Check = (v, limits) => {
  if (typeof v !== "string" || v.length === 0) return err("bad_frame", "must be a non-empty string");
  // unauthorized, not too_big: the same token will never pass, so the client must not retry it.
  return v.length > limits.maxTokenChars
    ? err("unauthorized", `is longer than ${limits.maxTokenChars} characters`)
    : undefined;
};
const cursor: Check = (v) => {
  if (typeof v !== "string") return err("bad_frame", "must be a string");
  const r = parseCursor(v);
  return r.ok ? undefined : err("bad_cursor", r.reason);
};
const to = str(
  (s) => parseTarget(s) !== undefined,
  "bad_target",
  "must be user:<id>, room:<name> or channel:<name>",
);
const type = str(isEventType, "bad_frame", "must be 1-64 chars of [A-Za-z0-9_.:-]");
const traceparent = str(isTraceparent, "bad_frame", "must be a W3C traceparent");
const data: Check = (v, limits) =>
  depthWithin(v, limits.maxDepth) ? undefined : err("too_big", `nests deeper than ${limits.maxDepth}`);

/** The exact fields of each client op, besides `op`. */
const CLIENT_FIELDS: Readonly<Record<ClientOp, Readonly<Record<string, FieldSpec>>>> = {
  hello: { token: { check: token }, cursor: { check: cursor, optional: true } },
  auth: { id: { check: id }, token: { check: token } },
  send: {
    id: { check: id },
    to: { check: to },
    type: { check: type },
    data: { check: data },
    traceparent: { check: traceparent, optional: true },
  },
  join: { id: { check: id }, room: { check: room } },
  leave: { id: { check: id }, room: { check: room } },
  subscribe: { id: { check: id }, channel: { check: channel } },
  unsubscribe: { id: { check: id }, channel: { check: channel } },
  ping: { id: { check: id, optional: true } },
  pong: { id: { check: id, optional: true } },
};

/**
 * Decodes and validates one client frame. Never throws: every malformed input is an
 * `{ok: false, error}` whose code is from errors.ts (`too_big`, `bad_json`, `bad_frame`,
 * `unknown_op`, `bad_target`, `bad_cursor`) and whose message names the offending field but
 * never echoes its value (it may be a token).
 */
export function decodeClientFrame(
  text: string,
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
): DecodeFrameResult {
  if (text.length > limits.maxFrameChars) {
    return { ok: false, error: err("too_big", `frame is longer than ${limits.maxFrameChars} chars`) };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: err("bad_json", "frame is not valid JSON") };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { ok: false, error: err("bad_frame", "frame must be a JSON object") };
  }
  const obj = parsed as Record<string, unknown>;
  const op = obj["op"];
  if (!Object.hasOwn(obj, "op")) return { ok: false, error: err("bad_frame", "missing field op") };
  if (typeof op !== "string") return { ok: false, error: err("bad_frame", "op must be a string") };
  if (!Object.hasOwn(CLIENT_FIELDS, op)) {
    return { ok: false, error: err("unknown_op", `unknown op ${quote(op)}`) };
  }
  const fields = CLIENT_FIELDS[op as ClientOp];
  for (const key of Object.keys(obj)) {
    if (key !== "op" && !Object.hasOwn(fields, key)) {
      return { ok: false, error: err("bad_frame", `${op}: unexpected field ${quote(key)}`) };
    }
  }
  for (const [name, spec] of Object.entries(fields)) {
    if (!Object.hasOwn(obj, name)) {
      if (spec.optional) continue;
      return { ok: false, error: err("bad_frame", `${op}: missing field ${name}`) };
    }
    const problem = spec.check(obj[name], limits);
    if (problem !== undefined) {
      return { ok: false, error: err(problem.code, `${op}.${name} ${problem.message}`) };
    }
  }
  // Every field was checked against its frame type above.
  return { ok: true, frame: obj as unknown as ClientFrame };
}

/** True when `value` nests arrays/objects at most `max` deep; stops descending past `max`. */
export function depthWithin(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return true;
  if (max <= 0) return false;
  const children = Array.isArray(value) ? value : Object.values(value);
  for (const child of children) if (!depthWithin(child, max - 1)) return false;
  return true;
}

/** A client-supplied name, quoted and cut short, safe to put in a message or a log line. */
function quote(s: string): string {
  return JSON.stringify(s.length > 32 ? `${s.slice(0, 32)}…` : s);
}
