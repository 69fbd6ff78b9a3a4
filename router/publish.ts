/**
 * POST /v1/publish and POST /v1/revoke for backends, pure: the body is checked strictly (exact
 * field sets, the same name and type rules as client frames) and turned into one record
 * (schemas/publish.ts). The server shell does the I/O.
 *
 * publish: `{"to": "user:U" | "room:R" | "channel:C", "type": T, "data": <JSON>, "id"?: I}`
 * revoke:  `{"user": U, "reason"?: "<text up to 200 chars>"}`
 * Both need a service token: a JWT whose `scope` holds rt:publish (or rt:revoke); the sender of
 * what it publishes is `service:<sub>`.
 */
import { randomBytes } from "node:crypto";
import { readGrants, type ServiceScope } from "../common/grants.ts";
import { depthWithin, type JsonValue } from "../schemas/frames.ts";
import {
  channelRecord,
  directRecord,
  revokeRecord,
  roomRecord,
  type PartitionCounts,
  type PublishRecord,
} from "../schemas/publish.ts";
import { SYSTEM_TYPE_PREFIX } from "../schemas/records.ts";
import { isEventType, isMessageId, isUserId, parseTarget, type Target } from "../schemas/targets.ts";
import type { RouterErrorCode } from "./errors.ts";

export const PUBLISH_PATH = "/v1/publish";
export const REVOKE_PATH = "/v1/revoke";

export type Checked<T> = { ok: true; value: T } | { ok: false; code: RouterErrorCode; message: string };

const bad = (message: string): { ok: false; code: RouterErrorCode; message: string } => ({
  ok: false,
  code: "bad_request",
  message,
});

/** The service a token names, if it holds `scope`. */
export function serviceOf(
  user: string,
  claims: Readonly<Record<string, unknown>>,
  scope: ServiceScope,
): Checked<string> {
  const grants = readGrants(claims);
  if (!grants.ok) return { ok: false, code: "unauthorized", message: grants.message };
  if (!grants.grants.scopes.has(scope)) {
    return { ok: false, code: "forbidden", message: `a service token with scope ${scope} is required` };
  }
  return { ok: true, value: `service:${user}` };
}

function parseObject(
  body: Buffer,
  fields: Readonly<Record<string, boolean>>,
): Checked<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return bad("the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return bad("the body must be a JSON object");
  }
  const obj = parsed as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!Object.hasOwn(fields, key)) return bad(`unexpected field ${JSON.stringify(key.slice(0, 32))}`);
  }
  for (const [name, required] of Object.entries(fields)) {
    if (required && !Object.hasOwn(obj, name)) return bad(`missing field ${name}`);
  }
  return { ok: true, value: obj };
}

export interface PublishRequest {
  readonly target: Target;
  readonly record: PublishRecord;
  readonly id: string;
}

export function parsePublish(
  body: Buffer,
  sender: string,
  counts: PartitionCounts,
  maxDepth: number,
  now: number = Date.now(),
): Checked<PublishRequest> {
  const r = parseObject(body, { to: true, type: true, data: true, id: false });
  if (!r.ok) return r;
  const { to, type, data, id } = r.value;
  const target = typeof to === "string" ? parseTarget(to) : undefined;
  if (target === undefined) return bad("to must be user:<id>, room:<name> or channel:<name>");
  if (typeof type !== "string" || !isEventType(type))
    return bad("type must be 1-64 chars of [A-Za-z0-9_.:-]");
  if (type.startsWith(SYSTEM_TYPE_PREFIX))
    return bad(`types starting with ${SYSTEM_TYPE_PREFIX} are reserved`);
  if (id !== undefined && (typeof id !== "string" || !isMessageId(id))) {
    return bad("id must be 1-64 chars of [A-Za-z0-9_.:-]");
  }
  if (!depthWithin(data, maxDepth)) return bad(`data nests deeper than ${maxDepth}`);
  const eventId = (id as string | undefined) ?? `pub-${randomBytes(9).toString("base64url")}`;
  const event = { id: eventId, sender, type, data: JSON.stringify(data as JsonValue), ts: now };
  const record =
    target.kind === "user"
      ? directRecord(target.user, event, counts)
      : target.kind === "room"
        ? roomRecord(target.room, "message", event, counts)
        : channelRecord(target.channel, event, counts);
  return { ok: true, value: { target, record, id: eventId } };
}

export interface RevokeRequest {
  readonly user: string;
  readonly record: PublishRecord;
}

export function parseRevoke(
  body: Buffer,
  sender: string,
  counts: PartitionCounts,
  now: number = Date.now(),
): Checked<RevokeRequest> {
  const r = parseObject(body, { user: true, reason: false });
  if (!r.ok) return r;
  const { user, reason } = r.value;
  if (typeof user !== "string" || !isUserId(user)) return bad("user must be 1-128 printable ASCII chars");
  if (reason !== undefined && (typeof reason !== "string" || reason.length > 200)) {
    return bad("reason must be a string of at most 200 chars");
  }
  const id = `revoke-${randomBytes(9).toString("base64url")}`;
  return {
    ok: true,
    value: {
      user,
      record: revokeRecord(user, sender, (reason as string | undefined) ?? "", now, id, counts),
    },
  };
}
