/**
 * The load test's side of wire protocol v1: the frames it builds and the few fields it reads from
 * server frames. Message ids name the run, the pair and a per-pair sequence number
 * (`<run>.<pair>.<seq>`), so a receiver maps an event back to its pair without a lookup table.
 * The send frame is built as text: ids and user names come from a safe alphabet, so no escaping
 * is needed and the hot path skips JSON.stringify.
 */

export const EVENT_TYPE = "lt.direct";

/** A run id: 8 lowercase hex characters, so ids and user names stay short and in the wire alphabet. */
export function isRunId(s: string): boolean {
  return /^[0-9a-f]{8}$/.test(s);
}

export function senderUser(runId: string, pair: number): string {
  return `lt-${runId}-s${pair}`;
}

export function receiverUser(runId: string, pair: number): string {
  return `lt-${runId}-r${pair}`;
}

export function messageId(runId: string, pair: number, seq: number): string {
  return `${runId}.${pair}.${seq}`;
}

/** The pair and sequence number of one of this run's message ids; null for anything else. */
export function parseMessageId(runId: string, id: string): { pair: number; seq: number } | null {
  const m = /^([0-9a-f]{8})\.(\d{1,9})\.(\d{1,9})$/.exec(id);
  if (m === null || m[1] !== runId) return null;
  return { pair: Number(m[2]), seq: Number(m[3]) };
}

export function helloFrame(token: string, cursor?: string): string {
  return JSON.stringify(cursor === undefined ? { op: "hello", token } : { op: "hello", token, cursor });
}

export function pongFrame(id: string | undefined): string {
  return JSON.stringify(id === undefined ? { op: "pong" } : { op: "pong", id });
}

/**
 * A send frame whose `data` is `{"seq":N,"t":T,"pad":"xx.."}`, padded so the data's JSON is
 * `payloadBytes` long (or as short as it can be). `sendTimeMs` is written with microsecond
 * precision.
 */
export function sendFrame(
  id: string,
  recipient: string,
  seq: number,
  sendTimeMs: number,
  payloadBytes: number,
): string {
  const head = `{"seq":${seq},"t":${sendTimeMs.toFixed(3)},"pad":"`;
  const padLength = Math.max(0, payloadBytes - head.length - 2);
  const data = `${head}${"x".repeat(padLength)}"}`;
  return `{"op":"send","id":"${id}","to":"user:${recipient}","type":"${EVENT_TYPE}","data":${data}}`;
}

/** The fields the generator reads from server frames. */
export type ServerMessage =
  | { readonly op: "welcome"; readonly node: string; readonly recovered: boolean | null }
  | { readonly op: "redirect"; readonly url: string }
  | { readonly op: "ack"; readonly id: string; readonly ok: true }
  | { readonly op: "ack"; readonly id: string; readonly ok: false; readonly code: string }
  | { readonly op: "event"; readonly id: string; readonly sendTimeMs: number | null }
  | { readonly op: "error"; readonly code: string; readonly message: string }
  | { readonly op: "ping"; readonly id: string | undefined }
  | { readonly op: "other"; readonly name: string }
  | { readonly op: "invalid" };

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Never throws: anything unreadable is `invalid`. */
export function parseServerMessage(text: string): ServerMessage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { op: "invalid" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { op: "invalid" };
  const f = v as Record<string, unknown>;
  switch (f["op"]) {
    case "welcome":
      return {
        op: "welcome",
        node: str(f["node"]) ?? "",
        recovered: typeof f["recovered"] === "boolean" ? f["recovered"] : null,
      };
    case "redirect": {
      const url = str(f["url"]);
      return url === undefined ? { op: "invalid" } : { op: "redirect", url };
    }
    case "ack": {
      const id = str(f["id"]);
      if (id === undefined || typeof f["ok"] !== "boolean") return { op: "invalid" };
      if (f["ok"]) return { op: "ack", id, ok: true };
      const error = f["error"] as Record<string, unknown> | undefined;
      return { op: "ack", id, ok: false, code: str(error?.["code"]) ?? "unknown" };
    }
    case "event": {
      const id = str(f["id"]);
      if (id === undefined) return { op: "invalid" };
      const data = f["data"] as Record<string, unknown> | null | undefined;
      const t = typeof data === "object" && data !== null ? data["t"] : undefined;
      return { op: "event", id, sendTimeMs: typeof t === "number" && Number.isFinite(t) ? t : null };
    }
    case "error":
      return { op: "error", code: str(f["code"]) ?? "unknown", message: str(f["message"]) ?? "" };
    case "ping":
      return { op: "ping", id: str(f["id"]) };
    default:
      return typeof f["op"] === "string" ? { op: "other", name: f["op"] } : { op: "invalid" };
  }
}
