/**
 * Reading a bounded range of a topic, outside any consumer group that matters: what `rt replay`
 * needs (the group consumer of kafka.ts is for long-running members that own partitions). Part
 * of the project's Kafka port; kafkajs-range.ts implements it.
 */
import type { Batch } from "./kafka.ts";

/** Offsets `from` (inclusive) to `to` (exclusive) of one partition, as decimal strings. */
export interface PartitionRange {
  readonly partition: number;
  readonly from: string;
  readonly to: string;
}

export interface RangeReadHandlers {
  /**
   * Called with records of one partition, in offset order, only offsets within the partition's
   * range, each offset at most once. Batches are handled one at a time. A rejection stops the
   * read, which then rejects with the same error.
   */
  eachBatch(batch: Batch): Promise<void>;
  /** A partition's range is read to its end. */
  onPartitionDone?(partition: number): void;
}

export interface RangeReadOptions {
  /** Stops the read early; it then resolves with `aborted: true`. */
  readonly signal?: AbortSignal;
  /**
   * A partition that has had no record for this long while fetches succeed is taken as read to
   * its end: the rest of its range no longer exists (compacted away, or aborted transactions).
   */
  readonly idleMs?: number;
}

export interface RangeReader {
  /**
   * Reads every record of `ranges` of `topic` that Kafka still holds (read-committed: aborted
   * transactions and control records are skipped, which leaves gaps in offsets), and resolves
   * once every range is read to its end. Records deleted by retention before the reader gets to
   * them are skipped silently: callers compare the ranges with the log start first. Rejects with
   * a KafkaError when Kafka cannot be read, or with the handler's error. Commits nothing.
   */
  read(
    topic: string,
    ranges: readonly PartitionRange[],
    handlers: RangeReadHandlers,
    opts?: RangeReadOptions,
  ): Promise<{ aborted: boolean }>;
  /** Safe to call twice; stops a read in progress. */
  close(): Promise<void>;
}
