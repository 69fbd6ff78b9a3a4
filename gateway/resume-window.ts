/**
 * The resume window: the most recent records of each owned partition, kept in memory so that a
 * resume whose cursor is recent is served without moving the consumer back.
 *
 * A catch-up seek re-reads the partition from the oldest waiting cursor and decodes every record
 * of every user on the way. After a reconnect storm, resumes arrive spread over seconds, so one
 * partition is scanned again and again. The window sees every record the stream handles, in
 * offset order, and remembers them (up to a byte budget) from `from` on: every record at or after
 * `from` up to the last one it saw is in it. A cursor at or after `from - 1` is served from memory
 * by picking that user's records; an older one falls back to the seek.
 *
 * Pure: records come in, entries go out. The caller decides what a record's user is and decodes.
 */
import type { InRecord } from "../common/kafka/kafka.ts";

/** A record of the window. `event` is filled in by whoever decodes it first (null: undeliverable). */
export interface WindowEntry<E> {
  readonly offset: bigint;
  readonly user: string;
  readonly record: InRecord;
  event: E | null | undefined;
}

interface PartitionWindow<E> {
  /** Entries in offset order; `head` is the first live one (older ones are evicted). */
  entries: WindowEntry<E>[];
  head: number;
  /** The same entries by user, each list in offset order: a resume looks at its user's only. */
  byUser: Map<string, WindowEntry<E>[]>;
  /** Every record from here to `last` is in `entries` (records that are not events excepted). */
  from: bigint;
  /** The last offset observed (-1: none yet). */
  last: bigint;
  bytes: number;
}

export interface WindowStats {
  readonly partitions: number;
  readonly records: number;
  readonly bytes: number;
}

/** What an entry is taken to cost beyond its key and value bytes: the objects around them. */
const ENTRY_OVERHEAD_BYTES = 256;

export class ResumeWindow<E> {
  readonly #partitions = new Map<number, PartitionWindow<E>>();
  #bytes = 0;

  /** `maxBytes` is shared evenly by the partitions the window holds; 0 turns the window off. */
  constructor(private readonly maxBytes: number) {}

  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  /**
   * The stream handled `record` at `offset` of `partition`. `user` is the recipient of an event
   * record, or null for one that is not an event (a control record, no key or value): it is
   * covered but not kept. A record at or before the last one observed (read again after a seek)
   * changes nothing. Returns the entry when the record was kept.
   */
  observe(partition: number, offset: bigint, record: InRecord, user: string | null): WindowEntry<E> | null {
    if (!this.enabled) return null;
    let w = this.#partitions.get(partition);
    if (w === undefined) {
      w = { entries: [], head: 0, byUser: new Map(), from: offset, last: offset - 1n, bytes: 0 };
      this.#partitions.set(partition, w);
      // Each partition's share just got smaller.
      for (const other of this.#partitions.values()) this.#evict(other);
    }
    if (offset <= w.last) return null;
    w.last = offset;
    if (user === null || record.value === null) return null;
    // A copy: the record's value is a view into the whole fetch response, which must not be pinned.
    const kept: InRecord = { ...record, value: Buffer.from(record.value) };
    const entry: WindowEntry<E> = { offset, user, record: kept, event: undefined };
    w.entries.push(entry);
    const mine = w.byUser.get(user);
    if (mine === undefined) w.byUser.set(user, [entry]);
    else mine.push(entry);
    const cost = costOf(kept);
    w.bytes += cost;
    this.#bytes += cost;
    this.#evict(w);
    return entry;
  }

  /**
   * The records of `user` after `after` in `partition`, in offset order, when the window holds
   * every record from `after + 1` to its last one; null when it does not (the caller must seek).
   * `last` tells how far that goes: the session has everything up to it.
   */
  since(partition: number, after: bigint, user: string): { entries: WindowEntry<E>[]; last: bigint } | null {
    const w = this.#partitions.get(partition);
    if (w === undefined || after + 1n < w.from) return null;
    const mine = w.byUser.get(user);
    if (mine === undefined || after >= w.last) return { entries: [], last: w.last };
    // Offsets rise, so the first entry after the cursor is found by bisection.
    let lo = 0;
    let hi = mine.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (mine[mid]!.offset <= after) lo = mid + 1;
      else hi = mid;
    }
    const entries = mine.slice(lo);
    return { entries, last: w.last };
  }

  /** The partition is no longer owned: drop its records. */
  forget(partition: number): void {
    const w = this.#partitions.get(partition);
    if (w === undefined) return;
    this.#bytes -= w.bytes;
    this.#partitions.delete(partition);
  }

  stats(): WindowStats {
    let records = 0;
    for (const w of this.#partitions.values()) records += w.entries.length - w.head;
    return { partitions: this.#partitions.size, records, bytes: this.#bytes };
  }

  #evict(w: PartitionWindow<E>): void {
    const cap = Math.floor(this.maxBytes / this.#partitions.size);
    while (w.bytes > cap && w.head < w.entries.length) {
      const gone = w.entries[w.head]!;
      w.entries[w.head] = undefined as unknown as WindowEntry<E>;
      w.head += 1;
      // The oldest entry of the partition is the oldest of its user too.
      const mine = w.byUser.get(gone.user)!;
      mine.shift();
      if (mine.length === 0) w.byUser.delete(gone.user);
      const cost = costOf(gone.record);
      w.bytes -= cost;
      this.#bytes -= cost;
      w.from = gone.offset + 1n;
    }
    // Compact once the evicted prefix is the larger part, so the array does not grow forever.
    if (w.head > 1024 && w.head * 2 > w.entries.length) {
      w.entries = w.entries.slice(w.head);
      w.head = 0;
    }
  }
}

function costOf(record: InRecord): number {
  // Twice the value: the decoded event frame is about as large again once someone decodes it.
  return 2 * (record.value?.length ?? 0) + (record.key?.length ?? 0) + ENTRY_OVERHEAD_BYTES;
}
