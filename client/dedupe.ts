/**
 * The client's place in its inbox log, and duplicate suppression by cursor. Pure.
 *
 * Per user, cursors only grow within one log (one epoch and partition), so one cursor is all a
 * client keeps: an event at or below it was delivered already (a replay after a reconnect, a
 * redelivery after a partition moved) and is dropped. An event from another log cannot be
 * compared with the cursor (the topic was recreated, or the user's partition changed): it is
 * accepted, becomes the cursor, and is reported as a log change, because events may have been
 * missed across it.
 */
import { parseCursor, sameLog, type Cursor } from "../schemas/cursor.ts";

export type OfferResult =
  /** New: deliver it. `logChanged` when it starts another log than the cursor's. */
  | { readonly kind: "deliver"; readonly logChanged: boolean }
  /** At or below the cursor in the same log: already delivered. */
  | { readonly kind: "duplicate" }
  /** Not a cursor at all: the caller decides (the SDK delivers it and reports the error). */
  | { readonly kind: "invalid"; readonly reason: string };

export interface WelcomeResult {
  /** The application must resync from its own source: events may be missing. */
  readonly resync: boolean;
  /** The server is on another log than the client's cursor. */
  readonly logChanged: boolean;
}

export class CursorTracker {
  #last: Cursor | undefined;
  #text: string | undefined;

  /** `initial` is a cursor the application stored; throws TypeError when it is malformed. */
  constructor(initial?: string) {
    if (initial === undefined || initial === "") return;
    const r = parseCursor(initial);
    if (!r.ok) throw new TypeError(`cursor: ${r.reason}`);
    this.#last = r.cursor;
    this.#text = initial;
  }

  /** The last cursor: what to store, and what to send in the next hello. */
  get cursor(): string | undefined {
    return this.#text;
  }

  /** Classifies an event's cursor, and advances to it when the event is new. */
  offer(cursor: string): OfferResult {
    const r = parseCursor(cursor);
    if (!r.ok) return { kind: "invalid", reason: r.reason };
    const last = this.#last;
    if (last !== undefined && sameLog(last, r.cursor) && r.cursor.offset <= last.offset) {
      return { kind: "duplicate" };
    }
    this.#last = r.cursor;
    this.#text = cursor;
    return { kind: "deliver", logChanged: last !== undefined && !sameLog(last, r.cursor) };
  }

  /**
   * A welcome: `cursor` is where the session starts (offset -1 when the user's log has no event
   * yet; older servers sent ""), `recovered` whether every event after the hello's cursor will follow.
   *
   * Recovered, in the same log: the client keeps its own cursor. Events after it follow
   * (replayed, then live), and only its own cursor tells which of those it has, e.g. when a
   * gateway that took a partition over redelivers from an older committed offset.
   *
   * Otherwise the client adopts the server's: without a cursor, on another log, or when the
   * server says it cannot resume (it starts live from its cursor; the events in between are
   * lost and `resync` says so). Adopting also covers a cursor past the end of a recreated log of
   * the same epoch, which would otherwise make every new event look like a duplicate.
   */
  welcome(cursor: string, recovered: boolean): WelcomeResult {
    let logChanged = false;
    const r = cursor === "" ? undefined : parseCursor(cursor);
    if (r !== undefined && r.ok) {
      const last = this.#last;
      logChanged = last !== undefined && !sameLog(last, r.cursor);
      if (last === undefined || logChanged || !recovered) {
        this.#last = r.cursor;
        this.#text = cursor;
      }
    }
    return { resync: !recovered || logChanged, logChanged };
  }
}

/**
 * Duplicate suppression by sender and id. A send whose ack never came is written again with the
 * same id; when the first write had reached Kafka after all, the recipient's log holds two
 * records with the same `from`, `to` and `id` at different cursors, which the cursor rule cannot
 * tell apart. This remembers the last `capacity` (from, to, id) triples seen and drops repeats.
 * Bounded: the oldest triple is forgotten first. Pure.
 */
export class RecentIds {
  readonly #seen = new Set<string>();

  constructor(readonly capacity: number) {}

  /** True when (from, to, id) was seen among the last `capacity`; records it otherwise. */
  seen(from: string, to: string, id: string): boolean {
    if (this.capacity <= 0) return false;
    const key = `${from}\u0000${to}\u0000${id}`;
    if (this.#seen.has(key)) return true;
    this.#seen.add(key);
    if (this.#seen.size > this.capacity) {
      const oldest = this.#seen.values().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    return false;
  }

  get size(): number {
    return this.#seen.size;
  }
}
