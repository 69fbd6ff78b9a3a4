/**
 * Wire protocol v1 in Avro: the frames of the `rt.v1.avro` WebSocket subprotocol (JSON stays the
 * default). The frames are the JSON protocol's, one per binary message, in Avro single-object
 * encoding (C3 01, the writer schema's 8-byte fingerprint, the body) with the schemas
 * client-frame.avsc and server-frame.avsc. Each schema is one record whose only field `frame` is
 * a union with one record per op: the union branch is the op, so a frame carries exactly its
 * op's fields, as in JSON, and costs one byte to name. `data` (any JSON value) travels as JSON
 * text in a string field; absent optional fields are null.
 *
 * The single-object header costs 10 bytes per message and buys what JSON gets from field names:
 * a frame written with another version of the schema is recognised (and resolved, once there
 * are earlier versions), never misread.
 *
 * Client frames are untrusted: `decodeClientFrameAvro` never throws, and checks the decoded
 * frame with exactly the rules of `decodeClientFrame` (by handing it the frame as JSON), so both
 * encodings accept the same frames and report the same error codes and messages. Bytes that are
 * not a frame of ours (garbage, a truncated message, JSON sent as binary) are `bad_frame`.
 */
import type { ErrorCode, WireError } from "./errors.ts";
import { isErrorCode } from "./errors.ts";
import {
  DEFAULT_FRAME_LIMITS,
  decodeClientFrame,
  type ClientFrame,
  type DecodeFrameResult,
  type EventFrame,
  type FrameLimits,
  type JsonValue,
  type ServerFrame,
} from "./frames.ts";
import { CODEC_ERROR_CODES, CodecError, RecordCodec, readSchemaFile } from "./record-codec.ts";
import { isMessageId } from "./targets.ts";
import { earlierSchemas } from "./versions.ts";

/** The Sec-WebSocket-Protocol token of the binary subprotocol. */
export const AVRO_SUBPROTOCOL = "rt.v1.avro";

/** A frame as avsc reads and writes it: the union branch keyed by the record's full name. */
interface AvroFrame {
  readonly frame: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** Union branch (record full name) of each op. */
const CLIENT_BRANCH = {
  hello: "rt.v1.client.Hello",
  auth: "rt.v1.client.Auth",
  send: "rt.v1.client.Send",
  join: "rt.v1.client.Join",
  leave: "rt.v1.client.Leave",
  subscribe: "rt.v1.client.Subscribe",
  unsubscribe: "rt.v1.client.Unsubscribe",
  ping: "rt.v1.client.Ping",
  pong: "rt.v1.client.Pong",
} as const satisfies Readonly<Record<ClientFrame["op"], string>>;

const SERVER_BRANCH = {
  welcome: "rt.v1.server.Welcome",
  redirect: "rt.v1.server.Redirect",
  ack: "rt.v1.server.Ack",
  event: "rt.v1.server.Event",
  ping: "rt.v1.server.Ping",
  pong: "rt.v1.server.Pong",
  error: "rt.v1.server.Error",
} as const satisfies Readonly<Record<ServerFrame["op"], string>>;

const invert = (m: Readonly<Record<string, string>>): ReadonlyMap<string, string> =>
  new Map(Object.entries(m).map(([op, branch]) => [branch, op]));
const CLIENT_OP = invert(CLIENT_BRANCH);
const SERVER_OP = invert(SERVER_BRANCH);

const copy = (v: AvroFrame): AvroFrame => v;

/** rt.v1.ClientFrame (client-frame.avsc). */
export const clientFrameCodec = new RecordCodec<AvroFrame>(
  readSchemaFile("client-frame.avsc"),
  copy,
  earlierSchemas("clientFrame"),
);
/** rt.v1.ServerFrame (server-frame.avsc). */
export const serverFrameCodec = new RecordCodec<AvroFrame>(
  readSchemaFile("server-frame.avsc"),
  copy,
  earlierSchemas("serverFrame"),
);

const SINGLE_OBJECT_MARKER = 0xc3;

// ---- client frames ----

/**
 * Encodes a client frame (for clients and tests). Throws CodecError `bad_value` when the frame
 * does not fit the schema (e.g. a non-string field, or `data` that JSON cannot represent).
 */
export function encodeClientFrameAvro(frame: ClientFrame): Buffer {
  const f = frame as unknown as Record<string, unknown>;
  const opt = (name: string): unknown => f[name] ?? null;
  let fields: Record<string, unknown>;
  switch (frame.op) {
    case "hello":
      fields = { token: frame.token, cursor: opt("cursor") };
      break;
    case "auth":
      fields = { id: frame.id, token: frame.token };
      break;
    case "send":
      fields = {
        id: frame.id,
        to: frame.to,
        type: frame.type,
        data: jsonText(frame.data),
        traceparent: opt("traceparent"),
      };
      break;
    case "join":
    case "leave":
      fields = { id: frame.id, room: frame.room };
      break;
    case "subscribe":
    case "unsubscribe":
      fields = { id: frame.id, channel: frame.channel };
      break;
    case "ping":
    case "pong":
      fields = { id: opt("id") };
      break;
    default:
      throw new CodecError("bad_value", `not a client frame: unknown op`);
  }
  return clientFrameCodec.encode({ frame: { [CLIENT_BRANCH[frame.op]]: fields } });
}

/**
 * Decodes and validates one binary client message. Never throws. The result, the error codes
 * and the messages are those of `decodeClientFrame` for the same frame in JSON, with two
 * additions: a message over `limits.maxFrameChars` bytes is `too_big`, and bytes that are not a
 * single-object rt.v1.ClientFrame (of a known version) are `bad_frame`.
 */
export function decodeClientFrameAvro(
  bytes: Uint8Array,
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
): DecodeFrameResult {
  if (bytes.length > limits.maxFrameChars) {
    return { ok: false, error: err("too_big", `frame is longer than ${limits.maxFrameChars} bytes`) };
  }
  const decoded = decodeAvro(clientFrameCodec, bytes);
  if (!decoded.ok) return decoded;
  const [branch, fields] = decoded.branch;
  const op = CLIENT_OP.get(branch);
  if (op === undefined) return { ok: false, error: err("bad_frame", "frame has an unknown union branch") };
  const obj: Record<string, unknown> = { op };
  for (const [name, value] of Object.entries(fields)) if (value !== null) obj[name] = value;
  if (op === "send") {
    const data = parseJson(obj["data"] as string);
    if (!data.ok) return { ok: false, error: err("bad_frame", "send.data is not JSON text") };
    // Past the depth limit the JSON check fails on data anyway; a stand-in as deep as the limit
    // plus one keeps its message and its place in the check order, and keeps stringify bounded.
    obj["data"] = depthWithin(data.value, limits.maxDepth) ? data.value : nested(limits.maxDepth + 1);
  }
  // The JSON protocol's checks, in its order, with its messages. Size was checked above on the
  // bytes; the JSON text of a frame can be longer than its Avro form.
  return decodeClientFrame(JSON.stringify(obj), { ...limits, maxFrameChars: Number.MAX_SAFE_INTEGER });
}

/**
 * The `id` of a binary client message that decodes as a frame of the schema but fails the
 * protocol's checks (e.g. a bad target), so the refusal can be an ack; null when it has none.
 */
export function readAvroFrameId(bytes: Uint8Array): string | null {
  const decoded = decodeAvro(clientFrameCodec, bytes);
  if (!decoded.ok) return null;
  const id = decoded.branch[1]["id"];
  return typeof id === "string" && isMessageId(id) ? id : null;
}

// ---- server frames ----

/** Encodes a server frame. Throws CodecError `bad_value` when the frame does not fit the schema. */
export function encodeServerFrameAvro(frame: ServerFrame): Buffer {
  let fields: Record<string, unknown>;
  switch (frame.op) {
    case "welcome":
      fields = {
        user: frame.user,
        cursor: frame.cursor,
        recovered: frame.recovered,
        reason: frame.reason ?? null,
        heartbeat_s: frame.heartbeat_s,
        session: frame.session,
        node: frame.node,
        limits: {
          max_frame_bytes: frame.limits.max_frame_bytes,
          max_data_depth: frame.limits.max_data_depth,
          max_rooms: frame.limits.max_rooms,
          max_channels: frame.limits.max_channels,
          sends_per_s: frame.limits.sends_per_s,
        },
      };
      break;
    case "redirect":
      fields = { url: frame.url };
      break;
    case "ack":
      fields = frame.ok
        ? { id: frame.id, ok: true, cursor: frame.cursor ?? null, error: null }
        : {
            id: frame.id,
            ok: false,
            cursor: null,
            error: { code: frame.error.code, message: frame.error.message },
          };
      break;
    case "event":
      return encodeEventFrameAvro(frame, jsonText(frame.data));
    case "ping":
    case "pong":
      fields = { id: frame.id ?? null };
      break;
    case "error":
      fields = { code: frame.code, message: frame.message };
      break;
    default:
      throw new CodecError("bad_value", "not a server frame: unknown op");
  }
  return serverFrameCodec.encode({ frame: { [SERVER_BRANCH[frame.op]]: fields } });
}

/**
 * Encodes an event frame whose `data` is already JSON text (a Delivery's or ChannelEvent's
 * `data`), without parsing it: the Avro twin of the gateway's spliced JSON event text. The
 * caller checks that `dataJson` is JSON, as it does for the JSON protocol.
 */
export function encodeEventFrameAvro(
  event: Omit<EventFrame, "op" | "data" | "cursor"> & { readonly cursor?: string | undefined },
  dataJson: string,
): Buffer {
  const fields = {
    cursor: event.cursor ?? null,
    id: event.id,
    from: event.from,
    to: event.to,
    type: event.type,
    data: dataJson,
    ts: event.ts,
  };
  return serverFrameCodec.encode({ frame: { [SERVER_BRANCH.event]: fields } });
}

export type DecodeServerFrameResult =
  | { readonly ok: true; readonly frame: ServerFrame }
  | { readonly ok: false; readonly error: WireError };

/**
 * Decodes one binary server message (for clients). Never throws. Fields are typed by the schema;
 * beyond it, an ack must carry `error` exactly when it is not ok, and an event's data must be
 * JSON text. An error code this version does not know reads as `internal`, as in client/decode.ts.
 */
export function decodeServerFrameAvro(bytes: Uint8Array): DecodeServerFrameResult {
  const decoded = decodeAvro(serverFrameCodec, bytes);
  if (!decoded.ok) return decoded;
  const [branch, f] = decoded.branch;
  const op = SERVER_OP.get(branch);
  const str = (name: string): string => f[name] as string;
  const optional = (name: string): Record<string, string> =>
    f[name] === null ? {} : { [name]: f[name] as string };
  const bad = (what: string): DecodeServerFrameResult => ({ ok: false, error: err("bad_frame", what) });
  switch (op) {
    case "welcome": {
      const l = f["limits"] as Record<string, number>;
      return {
        ok: true,
        frame: {
          op,
          user: str("user"),
          cursor: str("cursor"),
          recovered: f["recovered"] as boolean,
          ...optional("reason"),
          heartbeat_s: f["heartbeat_s"] as number,
          session: str("session"),
          node: str("node"),
          limits: {
            max_frame_bytes: l["max_frame_bytes"]!,
            max_data_depth: l["max_data_depth"]!,
            max_rooms: l["max_rooms"]!,
            max_channels: l["max_channels"]!,
            sends_per_s: l["sends_per_s"]!,
          },
        },
      };
    }
    case "redirect":
      return { ok: true, frame: { op, url: str("url") } };
    case "ack": {
      const error = f["error"] as Readonly<Record<string, string>> | null;
      if (f["ok"] === true) {
        if (error !== null) return bad("ack: ok with an error");
        return { ok: true, frame: { op, id: str("id"), ok: true, ...optional("cursor") } };
      }
      if (error === null) return bad("ack: not ok without an error");
      if (f["cursor"] !== null) return bad("ack: not ok with a cursor");
      const e = wireError(error["code"]!, error["message"]!);
      return { ok: true, frame: { op, id: str("id"), ok: false, error: e } };
    }
    case "event": {
      const data = parseJson(str("data"));
      if (!data.ok) return bad("event.data is not JSON text");
      const frame = {
        op,
        ...optional("cursor"),
        id: str("id"),
        from: str("from"),
        to: str("to"),
        type: str("type"),
        data: data.value,
        ts: f["ts"] as number,
      };
      return { ok: true, frame: frame as EventFrame };
    }
    case "ping":
    case "pong":
      return { ok: true, frame: { op, ...optional("id") } };
    case "error": {
      const e = wireError(str("code"), str("message"));
      return { ok: true, frame: { op, code: e.code, message: e.message } };
    }
    default:
      return bad("frame has an unknown union branch");
  }
}

// ---- shared ----

type AvroDecode =
  | { ok: true; branch: [string, Readonly<Record<string, unknown>>] }
  | { ok: false; error: WireError };

/** Single-object framing only (no Confluent framing on the wire); failures are `bad_frame`. */
function decodeAvro(codec: RecordCodec<AvroFrame>, bytes: Uint8Array): AvroDecode {
  if (bytes.length === 0) return { ok: false, error: err("bad_frame", "empty binary message") };
  if (bytes[0] !== SINGLE_OBJECT_MARKER) {
    const hint =
      bytes[0] === 0x7b ? ": JSON frames go in text messages" : ": expected Avro single-object (C3 01)";
    return {
      ok: false,
      error: err("bad_frame", `binary message is not an ${AVRO_SUBPROTOCOL} frame${hint}`),
    };
  }
  const r = codec.tryDecode(bytes);
  if (!r.ok) {
    // The codec's own message may quote decoder internals; the code's description is enough.
    const what = CODEC_ERROR_CODES[r.error.code];
    return { ok: false, error: err("bad_frame", `not an ${codec.name} (${r.error.code}: ${what})`) };
  }
  const entries = Object.entries(r.value.frame);
  if (entries.length !== 1) return { ok: false, error: err("bad_frame", "frame has no union branch") };
  return { ok: true, branch: entries[0]! };
}

function err(code: ErrorCode, message: string): WireError {
  return { code, message };
}

function wireError(code: string, message: string): WireError {
  return { code: isErrorCode(code) ? code : "internal", message };
}

/** JSON text of `data`; throws CodecError when JSON cannot represent it (e.g. undefined). */
function jsonText(data: JsonValue): string {
  const text: unknown = JSON.stringify(data);
  if (typeof text !== "string") throw new CodecError("bad_value", "data is not a JSON value");
  return text;
}

function parseJson(text: string): { ok: true; value: JsonValue } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as JsonValue };
  } catch {
    return { ok: false };
  }
}

/** The rule of frames.ts: `{}` or `[]` is depth 1; stops descending past `max`. */
function depthWithin(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return true;
  if (max <= 0) return false;
  const children = Array.isArray(value) ? value : Object.values(value);
  for (const child of children) if (!depthWithin(child, max - 1)) return false;
  return true;
}

/** `[[...[]...]]`, `depth` deep. */
function nested(depth: number): JsonValue {
  let v: JsonValue = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}
