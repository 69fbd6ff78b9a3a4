/**
 * `rt replay` arguments: parsed and checked without I/O, every failure a message that names the
 * argument. What the options mean is in REPLAY_USAGE (and docs/DATA.md).
 */
import { TOPIC_BASENAMES, type TopicNames, type TopicRole } from "../schemas/topics.ts";

export const REPLAY_USAGE = `usage: rt replay --topic <topic> [range] [filters] [output]
  --topic T            rt.deliveries, rt.room-events, rt.room-members or rt.channels
                       (RT_TOPIC_PREFIX is added; the full prefixed name works too)
range (default: the whole retained log, up to its end when the replay starts)
  --from TIME          first record time, inclusive (ISO 8601: 2025-01-31, 2025-01-31T12:00:00Z,
  --to TIME            ... or with an offset, +01:00); end time, exclusive (Kafka record timestamps)
  --from-offset N      first offset, inclusive, in every chosen partition
  --to-offset N        end offset, exclusive
  --partition P[,P...] only these partitions (repeatable)
filters (repeatable; a record passes when it matches one value of each filter given)
  --user U             deliveries: recipient or sender; room events: sender or member;
                       memberships: the member; channel events: sender
  --room R             deliveries, room events, memberships
  --channel C          channel events
  --type T             deliveries, room events, channel events
  --include-replayed   also read records that a replay re-published (skipped by default)
output (default: JSON Lines on stdout)
  --out FILE           write to FILE: .avro is an Avro object container file, anything else
                       JSON Lines; - is stdout
  --format jsonl|avro  the format, whatever the file name says
  --republish TOPIC    re-publish the records into TOPIC (same key and value, header rt-replayed)`;

export type ReplayFormat = "jsonl" | "avro";

export interface ReplayFilters {
  readonly users: readonly string[];
  readonly rooms: readonly string[];
  readonly channels: readonly string[];
  readonly types: readonly string[];
}

export interface ReplayArgs {
  readonly role: TopicRole;
  /** The topic's name on the cluster (prefixed). */
  readonly topic: string;
  readonly fromMs?: number;
  readonly toMs?: number;
  readonly fromOffset?: bigint;
  readonly toOffset?: bigint;
  /** Sorted, distinct; undefined: every partition. */
  readonly partitions?: readonly number[];
  readonly filters: ReplayFilters;
  readonly includeReplayed: boolean;
  /** File path; undefined: stdout. */
  readonly out?: string;
  readonly format: ReplayFormat;
  /** Target topic of a re-publish; with it, nothing is written to a file or stdout. */
  readonly republish?: { readonly topic: string; readonly role?: TopicRole };
}

export type ParseResult = { ok: true; args: ReplayArgs } | { ok: false; message: string };

const FLAGS_WITH_VALUE = new Set([
  "--topic",
  "--from",
  "--to",
  "--from-offset",
  "--to-offset",
  "--partition",
  "--user",
  "--room",
  "--channel",
  "--type",
  "--out",
  "--format",
  "--republish",
]);
const FLAGS_WITHOUT_VALUE = new Set(["--include-replayed"]);
const REPEATABLE = new Set(["--partition", "--user", "--room", "--channel", "--type"]);

const OFFSET_MAX = 2n ** 63n - 1n;

/** Which filters make sense for which topic. */
const FILTERS_OF: Readonly<Record<TopicRole, ReadonlySet<string>>> = {
  deliveries: new Set(["--user", "--room", "--type"]),
  roomEvents: new Set(["--user", "--room", "--type"]),
  roomMembers: new Set(["--user", "--room"]),
  channels: new Set(["--user", "--channel", "--type"]),
};

/** Resolves `rt.deliveries`, `deliveries` or the prefixed name to a topic role. */
export function topicRole(given: string, names: TopicNames): TopicRole | undefined {
  for (const [role, basename] of Object.entries(TOPIC_BASENAMES) as [TopicRole, string][]) {
    if (given === basename || given === basename.slice("rt.".length) || given === names[role]) return role;
  }
  return undefined;
}

export function parseReplayArgs(argv: readonly string[], names: TopicNames): ParseResult {
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (FLAGS_WITHOUT_VALUE.has(arg)) {
      values.set(arg, [""]);
      continue;
    }
    if (!FLAGS_WITH_VALUE.has(arg)) return fail(`unknown argument ${quote(arg)}`);
    const value = argv[i + 1];
    if (value === undefined || (value.startsWith("--") && value.length > 2)) {
      return fail(`${arg} needs a value`);
    }
    i++;
    const list = values.get(arg) ?? [];
    if (list.length > 0 && !REPEATABLE.has(arg)) return fail(`${arg} given twice`);
    values.set(arg, [...list, value]);
  }
  const one = (flag: string): string | undefined => values.get(flag)?.[0];
  const all = (flag: string): string[] => values.get(flag) ?? [];

  const topicArg = one("--topic");
  if (topicArg === undefined) return fail("--topic is required");
  const role = topicRole(topicArg, names);
  if (role === undefined) {
    return fail(
      `bad --topic ${quote(topicArg)}: expected one of ${Object.values(TOPIC_BASENAMES).join(", ")}`,
    );
  }

  const from = parseTime("--from", one("--from"));
  if (typeof from === "string") return fail(from);
  const to = parseTime("--to", one("--to"));
  if (typeof to === "string") return fail(to);
  if (from !== undefined && to !== undefined && from > to) {
    return fail(`--from ${one("--from")} is after --to ${one("--to")}`);
  }
  const fromOffset = parseOffset("--from-offset", one("--from-offset"));
  if (typeof fromOffset === "string") return fail(fromOffset);
  const toOffset = parseOffset("--to-offset", one("--to-offset"));
  if (typeof toOffset === "string") return fail(toOffset);
  if (from !== undefined && fromOffset !== undefined)
    return fail("--from and --from-offset exclude each other");
  if (to !== undefined && toOffset !== undefined) return fail("--to and --to-offset exclude each other");
  if (fromOffset !== undefined && toOffset !== undefined && fromOffset > toOffset) {
    return fail(`--from-offset ${fromOffset} is after --to-offset ${toOffset}`);
  }

  let partitions: number[] | undefined;
  for (const list of all("--partition")) {
    for (const item of list.split(",")) {
      if (!/^(0|[1-9]\d{0,8})$/.test(item)) {
        return fail(`bad --partition ${quote(list)}: expected partition numbers, e.g. 3 or 0,4,7`);
      }
      (partitions ??= []).push(Number(item));
    }
  }
  if (partitions !== undefined) partitions = [...new Set(partitions)].sort((a, b) => a - b);

  for (const flag of ["--user", "--room", "--channel", "--type"]) {
    if (all(flag).length > 0 && !FILTERS_OF[role].has(flag)) {
      return fail(`${flag} does not apply to ${TOPIC_BASENAMES[role]}`);
    }
    if (all(flag).some((v) => v === "")) return fail(`${flag} needs a non-empty value`);
  }
  const filters: ReplayFilters = {
    users: all("--user"),
    rooms: all("--room"),
    channels: all("--channel"),
    types: all("--type"),
  };

  const includeReplayed = values.has("--include-replayed");
  const outArg = one("--out");
  const formatArg = one("--format");
  if (formatArg !== undefined && formatArg !== "jsonl" && formatArg !== "avro") {
    return fail(`bad --format ${quote(formatArg)}: expected jsonl or avro`);
  }
  const republishArg = one("--republish");
  let republish: ReplayArgs["republish"];
  if (republishArg !== undefined) {
    if (outArg !== undefined || formatArg !== undefined) {
      return fail("--republish writes to a topic: --out and --format do not apply");
    }
    if (includeReplayed) return fail("--include-replayed cannot be used with --republish (it would loop)");
    if (role === "roomMembers") {
      return fail("--republish does not apply to rt.room-members: only the router writes memberships");
    }
    const targetRole = topicRole(republishArg, names);
    if (targetRole !== undefined && targetRole !== role) {
      return fail(
        `bad --republish ${quote(republishArg)}: records of ${TOPIC_BASENAMES[role]} cannot go to ` +
          TOPIC_BASENAMES[targetRole],
      );
    }
    republish =
      targetRole === undefined ? { topic: republishArg } : { topic: names[targetRole], role: targetRole };
  }
  const out = outArg === undefined || outArg === "-" ? undefined : outArg;
  const format: ReplayFormat =
    (formatArg as ReplayFormat | undefined) ?? (out?.endsWith(".avro") ? "avro" : "jsonl");

  return {
    ok: true,
    args: {
      role,
      topic: names[role],
      ...(from === undefined ? {} : { fromMs: from }),
      ...(to === undefined ? {} : { toMs: to }),
      ...(fromOffset === undefined ? {} : { fromOffset }),
      ...(toOffset === undefined ? {} : { toOffset }),
      ...(partitions === undefined ? {} : { partitions }),
      filters,
      includeReplayed,
      ...(out === undefined ? {} : { out }),
      format,
      ...(republish === undefined ? {} : { republish }),
    },
  };
}

const TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|z|[+-]\d{2}:?\d{2}))?$/;

/**
 * An ISO 8601 date (midnight UTC) or date-time with a zone (Z or ±hh:mm), as milliseconds since
 * the epoch; a message naming `flag` when it is not one. A date-time without a zone is refused:
 * whose midnight would it be?
 */
export function parseTime(flag: string, value: string | undefined): number | undefined | string {
  if (value === undefined) return undefined;
  const bad = `bad ${flag} ${quote(value)}: expected an ISO 8601 time such as 2025-01-31 or 2025-01-31T12:00:00Z`;
  const m = TIME.exec(value);
  if (m === null) {
    if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) {
      return `${bad} (with a zone: add Z for UTC)`;
    }
    return bad;
  }
  const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", zone = "Z"] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const probe = new Date(Date.UTC(year, month - 1, day));
  if (
    month < 1 ||
    month > 12 ||
    probe.getUTCDate() !== day ||
    probe.getUTCMonth() !== month - 1 ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return `${bad} (no such date or time)`;
  }
  let offsetMin = 0;
  if (zone !== "Z" && zone !== "z") {
    const zm = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
    const zh = Number(zm[2]);
    const zmin = Number(zm[3]);
    if (zh > 23 || zmin > 59) return `${bad} (bad zone offset)`;
    offsetMin = (zm[1] === "-" ? -1 : 1) * (zh * 60 + zmin);
  }
  const ms = Number((frac + "000").slice(0, 3));
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
}

function parseOffset(flag: string, value: string | undefined): bigint | undefined | string {
  if (value === undefined) return undefined;
  if (!/^(0|[1-9]\d{0,18})$/.test(value) || BigInt(value) > OFFSET_MAX) {
    return `bad ${flag} ${quote(value)}: expected an offset, a whole number from 0`;
  }
  return BigInt(value);
}

function fail(message: string): ParseResult {
  return { ok: false, message };
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}
