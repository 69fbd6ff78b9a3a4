/**
 * Cursors: where a client is in its own inbox log, as the string `epoch:partition:offset`.
 *
 * - `epoch` names one incarnation and layout of rt.deliveries (1–16 chars of [0-9a-z]); cursors
 *   of different epochs never compare. Gateways and routers derive it from the partition count
 *   and the topic's Kafka topic ID (`epochOf`), so it changes when partitions are added and when
 *   the topic is deleted and created again, even with the same count.
 * - `partition` is the user's partition: a decimal int in [0, 2^31), no leading zeros.
 * - `offset` is the Kafka offset of the last event the client has: a decimal int64 in
 *   [0, 2^63 - 1], no leading zeros, held as bigint because JavaScript numbers lose precision
 *   above 2^53; or -1, "before the first event" (the welcome of a user whose log is empty).
 *
 * One canonical string per cursor (no leading zeros, no sign, lowercase epoch), so clients may
 * compare cursor strings for equality; ordering goes through `isAfter`.
 */

export interface Cursor {
  readonly epoch: string;
  readonly partition: number;
  readonly offset: bigint;
}

export type ParseCursorResult = { ok: true; cursor: Cursor } | { ok: false; reason: string };

/** Longest accepted cursor string; the longest valid one is 16+1+10+1+19 = 47 chars. */
export const CURSOR_MAX_CHARS = 64;
export const EPOCH_MAX_CHARS = 16;
export const PARTITION_MAX = 2 ** 31 - 1;
export const OFFSET_MAX = 2n ** 63n - 1n;

const EPOCH = /^[0-9a-z]{1,16}$/;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const OFFSET = /^(?:-1|0|[1-9][0-9]*)$/;
/** The offset of a cursor that precedes every event of its log. */
export const OFFSET_BEFORE_FIRST = -1n;

/** Parses a cursor string. Never throws: a malformed cursor is an expected outcome. */
export function parseCursor(s: string): ParseCursorResult {
  if (typeof s !== "string") return { ok: false, reason: "cursor must be a string" };
  if (s.length > CURSOR_MAX_CHARS) return { ok: false, reason: `cursor longer than ${CURSOR_MAX_CHARS}` };
  const parts = s.split(":");
  if (parts.length !== 3) return { ok: false, reason: "cursor must be epoch:partition:offset" };
  const [epoch, partitionText, offsetText] = parts as [string, string, string];
  if (!EPOCH.test(epoch)) return { ok: false, reason: "epoch must be 1-16 chars of [0-9a-z]" };
  // The length caps keep Number() exact and BigInt() cheap before the range checks.
  if (!DECIMAL.test(partitionText) || partitionText.length > 10) {
    return { ok: false, reason: "partition must be a decimal integer without leading zeros" };
  }
  const partition = Number(partitionText);
  if (partition > PARTITION_MAX) return { ok: false, reason: "partition out of range" };
  if (!OFFSET.test(offsetText) || offsetText.length > 19) {
    return { ok: false, reason: "offset must be -1 or a decimal integer without leading zeros" };
  }
  const offset = BigInt(offsetText);
  if (offset > OFFSET_MAX) return { ok: false, reason: "offset out of int64 range" };
  return { ok: true, cursor: { epoch, partition, offset } };
}

/**
 * The canonical string of a cursor. Throws RangeError for a cursor no parse could produce
 * (a broken invariant: cursors are built from Kafka metadata, never from user input).
 */
export function formatCursor(c: Cursor): string {
  if (!EPOCH.test(c.epoch)) throw new RangeError(`bad cursor epoch ${JSON.stringify(c.epoch)}`);
  if (!Number.isInteger(c.partition) || c.partition < 0 || c.partition > PARTITION_MAX) {
    throw new RangeError(`bad cursor partition ${c.partition}`);
  }
  if (c.offset < OFFSET_BEFORE_FIRST || c.offset > OFFSET_MAX)
    throw new RangeError(`bad cursor offset ${c.offset}`);
  return `${c.epoch}:${c.partition}:${c.offset}`;
}

/** True when both cursors point into the same log (same epoch and partition). */
export function sameLog(a: Cursor, b: Cursor): boolean {
  return a.epoch === b.epoch && a.partition === b.partition;
}

/**
 * True when `a` is strictly later than `b` in the same log (same epoch and partition, greater
 * offset). Cursors of different logs are incomparable and `isAfter` is false both ways: a client
 * deduping with it must treat a change of log as a resync (the server says `recovered: false`),
 * never as "old, drop it".
 */
export function isAfter(a: Cursor, b: Cursor): boolean {
  return sameLog(a, b) && a.offset > b.offset;
}

/**
 * The first Kafka offset to read to resume after `c`: `c.offset + 1`. For the largest legal
 * offset this is 2^63, which is past the end of any real log; callers compare it with the log end
 * offset before seeking, as they must for any client-supplied cursor.
 */
export function nextOffset(c: Cursor): bigint {
  return c.offset + 1n;
}

/**
 * The epoch of the deliveries log: cursors from another epoch cannot be resumed. `topicId` is the
 * topic's Kafka topic ID (32 hex digits, common/kafka/topic-identity.ts): a topic deleted and
 * created again gets a new one. The epoch is the partition count in base 36, `t`, and the ID's
 * first 56 bits in base 36, so it fits the 16 characters for counts below 36^4; two incarnations
 * collide only if their IDs share 56 bits (a chance of 2^-56 per recreation).
 */
export function epochOf(partitionCount: number, topicId: string): string {
  if (!Number.isSafeInteger(partitionCount) || partitionCount < 1 || partitionCount >= 36 ** 4)
    throw new RangeError(`partition count ${partitionCount} is outside [1, 36^4)`);
  if (!/^[0-9a-f]{32}$/.test(topicId))
    throw new RangeError(`topic ID ${JSON.stringify(topicId)} is not 32 hex digits`);
  return `${partitionCount.toString(36)}t${BigInt(`0x${topicId.slice(0, 14)}`).toString(36)}`;
}
