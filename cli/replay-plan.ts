/**
 * The offsets `rt replay` reads, per partition: the range asked for (times already resolved to
 * offsets by Kafka's time index, or offsets) cut to what the log holds, and what retention has
 * already deleted from it. Pure.
 *
 * A time start resolves to the first offset whose timestamp is at or after it. When that is the
 * log start of a log that has lost records (log start > 0), the range may begin among deleted
 * records, and up to `log start` of them are missing; Kafka keeps no timestamps of deleted
 * records, so only the bound is known. An offset start below the log start misses exactly the
 * difference.
 */
import type { PartitionOffsets } from "../common/kafka/kafka.ts";
import type { PartitionRange } from "../common/kafka/range.ts";

export interface PlanInput {
  readonly offsets: readonly PartitionOffsets[];
  /** Only these partitions; undefined: all. */
  readonly partitions?: readonly number[];
  readonly fromOffset?: bigint;
  readonly toOffset?: bigint;
  /** Per partition, the first offset at or after --from (Admin.offsetsForTime). */
  readonly fromTime?: readonly { partition: number; offset: string }[];
  /** Per partition, the first offset at or after --to. */
  readonly toTime?: readonly { partition: number; offset: string }[];
}

export interface RetentionGap {
  readonly partition: number;
  /** The log's first retained offset. */
  readonly logStart: bigint;
  /** Records of the range that retention deleted: exact for offsets, an upper bound for times. */
  readonly missing: bigint;
  readonly exact: boolean;
}

export type Plan =
  | { ok: true; ranges: PartitionRange[]; gaps: RetentionGap[] }
  | { ok: false; message: string };

export function planRanges(input: PlanInput): Plan {
  const byPartition = new Map(input.offsets.map((o) => [o.partition, o]));
  const count = input.offsets.length;
  for (const p of input.partitions ?? []) {
    if (!byPartition.has(p)) {
      return { ok: false, message: `bad --partition ${p}: the topic has partitions 0 to ${count - 1}` };
    }
  }
  const chosen = input.partitions ?? input.offsets.map((o) => o.partition).sort((a, b) => a - b);
  const timeOf = (list: PlanInput["fromTime"], p: number): bigint | undefined => {
    const hit = list?.find((t) => t.partition === p);
    return hit === undefined ? undefined : BigInt(hit.offset);
  };
  const ranges: PartitionRange[] = [];
  const gaps: RetentionGap[] = [];
  for (const p of chosen) {
    const o = byPartition.get(p)!;
    const low = BigInt(o.low);
    const high = BigInt(o.high);
    let from = low;
    let missing = 0n;
    let exact = true;
    if (input.fromOffset !== undefined) {
      from = input.fromOffset;
      if (from < low) missing = low - from;
    } else if (input.fromTime !== undefined) {
      // Kafka answers -1 (or nothing) for a time past the last record: nothing to read there.
      const t = timeOf(input.fromTime, p);
      from = t === undefined || t < 0n ? high : t;
      if (from === low && low > 0n) {
        missing = low;
        exact = false;
      }
    }
    let to = high;
    if (input.toOffset !== undefined) to = input.toOffset;
    else if (input.toTime !== undefined) {
      const t = timeOf(input.toTime, p);
      to = t === undefined || t < 0n ? high : t;
    }
    if (to > high) to = high;
    if (from < low) from = low;
    if (from > high) from = high;
    if (missing > 0n && input.toOffset !== undefined && input.fromOffset !== undefined) {
      // Only what falls inside the range is missing.
      const end = input.toOffset < low ? input.toOffset : low;
      missing = end > input.fromOffset ? end - input.fromOffset : 0n;
    }
    if (missing > 0n) gaps.push({ partition: p, logStart: low, missing, exact });
    ranges.push({ partition: p, from: String(from), to: String(to > from ? to : from) });
  }
  return { ok: true, ranges, gaps };
}
