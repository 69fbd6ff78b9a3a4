/**
 * Shared catch-up by rewinding the gateway's own consumer.
 *
 * KafkaJS cannot read a partition outside the group, so a resume does not open a reader of
 * its own: it moves the owned partition's consumer back to the cursor (a seek) and lets the
 * ordinary delivery path read forward again. Every session of the partition is fed from that
 * one ordered stream and keeps its own last offset, so records it already has are skipped and
 * nothing is delivered twice. Many resumes on one partition (after a gateway dies) coalesce
 * into one seek to the lowest cursor: one scan, however many users.
 *
 * A resuming session waits for "its" seek to take effect before it accepts records: records
 * read before the seek lie after its gap and would otherwise advance it past the gap. Seeks
 * are numbered per partition; a session accepts records once the partition's applied seek
 * number reaches the one it waits for.
 */

interface Pending {
  readonly gen: number;
  target: bigint;
  /** Last offset handled when the seek was issued: a batch starting at or below it went back. */
  readPosAtSeek: bigint;
  issued: boolean;
}

export interface CatchUpStats {
  /** Seeks issued: each is one scan of a partition from its lowest waiting cursor. */
  readonly scans: number;
  /** Resumes that needed older records. */
  readonly rewindResumes: number;
}

export class CatchUp {
  readonly #pending = new Map<number, Pending>();
  readonly #applied = new Map<number, number>();
  readonly #readPos = new Map<number, bigint>();
  #gen = 0;
  #scans = 0;
  #rewindResumes = 0;

  constructor(
    private readonly seek: (partition: number, offset: bigint) => void,
    private readonly defer: (fn: () => void) => void = (fn) => setImmediate(fn),
  ) {}

  /**
   * A session of `partition` wants every record after `startAfter`. `streamAt` is the offset
   * after which the consumer reads next when this partition has handled nothing yet (where a
   * newly owned partition starts). Returns the seek number the session must wait for (0: none,
   * it can take records at once).
   */
  request(partition: number, startAfter: bigint, streamAt: bigint): number {
    const from = startAfter + 1n;
    const pending = this.#pending.get(partition);
    if (pending !== undefined && (!pending.issued || pending.target <= from)) {
      if (from < pending.target) pending.target = from;
      this.#rewindResumes += 1;
      return pending.gen;
    }
    const readPos = this.#readPos.get(partition) ?? streamAt;
    // The stream has not passed the cursor: the records will come.
    if (pending === undefined && readPos < from) return 0;
    this.#rewindResumes += 1;
    const next: Pending = { gen: ++this.#gen, target: from, readPosAtSeek: readPos, issued: false };
    this.#pending.set(partition, next);
    this.defer(() => {
      if (this.#pending.get(partition) !== next) return;
      next.issued = true;
      next.readPosAtSeek = this.#readPos.get(partition) ?? next.readPosAtSeek;
      this.#scans += 1;
      this.seek(partition, next.target);
    });
    return next.gen;
  }

  /** Before handling a batch of `partition` that starts at `firstOffset`. */
  batchStarts(partition: number, firstOffset: bigint): void {
    const pending = this.#pending.get(partition);
    if (pending === undefined || !pending.issued) return;
    if (firstOffset <= pending.target || firstOffset <= pending.readPosAtSeek) {
      this.#applied.set(partition, pending.gen);
      this.#pending.delete(partition);
    }
  }

  /** After handling the record at `offset` of `partition`. */
  handled(partition: number, offset: bigint): void {
    this.#readPos.set(partition, offset);
  }

  /** The last seek of `partition` that took effect (0: none). */
  applied(partition: number): number {
    return this.#applied.get(partition) ?? 0;
  }

  /** The partition was lost: forget its state (its sessions are closed with "moved"). */
  forget(partition: number): void {
    this.#pending.delete(partition);
    this.#readPos.delete(partition);
  }

  stats(): CatchUpStats {
    return { scans: this.#scans, rewindResumes: this.#rewindResumes };
  }
}
