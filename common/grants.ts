/**
 * What a token allows, read from its claims once per session (pure; no I/O).
 *
 * User tokens:
 * - `rt_rooms`: rooms the user may join and, once a member, send to;
 * - `rt_channels`: live channels the user may subscribe to (everyone gets broadcast `*`);
 * - `rt_publish`: channels the user may send to (`*` among them allows broadcasting).
 * Each is an array of patterns: an exact name, a prefix ending in `*` (`team-42.*`), or `*`
 * alone for every name. A missing claim grants nothing.
 *
 * Service tokens (backends calling the router's publish API): the OAuth-style `scope` claim, a
 * space-separated string, holding `rt:publish` and/or `rt:revoke`.
 */

/** Longest pattern list read from one claim; more is a malformed token. */
export const MAX_PATTERNS = 256;
const PATTERN = /^(?:\*|[A-Za-z0-9_.:@-]{1,128}\*?)$/;

export const ROOMS_CLAIM = "rt_rooms";
export const CHANNELS_CLAIM = "rt_channels";
export const PUBLISH_CLAIM = "rt_publish";
export const SCOPE_CLAIM = "scope";

export const ServiceScope = { publish: "rt:publish", revoke: "rt:revoke" } as const;
export type ServiceScope = (typeof ServiceScope)[keyof typeof ServiceScope];

export interface Grants {
  readonly rooms: readonly string[];
  readonly channels: readonly string[];
  readonly publish: readonly string[];
  readonly scopes: ReadonlySet<string>;
}

export const NO_GRANTS: Grants = Object.freeze({
  rooms: [],
  channels: [],
  publish: [],
  scopes: new Set<string>(),
});

export type GrantsResult = { ok: true; grants: Grants } | { ok: false; message: string };

function patterns(claims: Readonly<Record<string, unknown>>, name: string): string[] | string {
  const v = claims[name];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_PATTERNS) {
    return `claim ${name} must be an array of at most ${MAX_PATTERNS} patterns`;
  }
  for (const p of v) {
    if (typeof p !== "string" || !PATTERN.test(p)) {
      return `claim ${name} holds a bad pattern: use a name, a prefix ending in *, or *`;
    }
  }
  return v as string[];
}

/** Reads the grants of a verified token's claims; a malformed claim is an error, not "no grants". */
export function readGrants(claims: Readonly<Record<string, unknown>>): GrantsResult {
  const rooms = patterns(claims, ROOMS_CLAIM);
  const channels = patterns(claims, CHANNELS_CLAIM);
  const publish = patterns(claims, PUBLISH_CLAIM);
  for (const r of [rooms, channels, publish]) if (typeof r === "string") return { ok: false, message: r };
  const scope = claims[SCOPE_CLAIM];
  if (scope !== undefined && (typeof scope !== "string" || scope.length > 1024)) {
    return { ok: false, message: "claim scope must be a space-separated string" };
  }
  const scopes = new Set((scope ?? "").split(" ").filter((s) => s.length > 0));
  // Most tokens grant nothing: they share one frozen value (a gateway keeps one per connection).
  if (rooms.length === 0 && channels.length === 0 && publish.length === 0 && scopes.size === 0) {
    return { ok: true, grants: NO_GRANTS };
  }
  return {
    ok: true,
    grants: Object.freeze({
      rooms: rooms as string[],
      channels: channels as string[],
      publish: publish as string[],
      scopes,
    }),
  };
}

/** Whether `name` matches one of `patterns`. */
export function allows(patterns: readonly string[], name: string): boolean {
  for (const p of patterns) {
    if (p === "*" || p === name) return true;
    if (p.endsWith("*") && name.startsWith(p.slice(0, -1))) return true;
  }
  return false;
}
