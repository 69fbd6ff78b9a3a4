/**
 * Sends waiting for their ack, in the order they were made: bounded, each with its deadline.
 * An entry remembers the socket it was last written to, so that after a reconnect exactly the
 * ones not written to the new socket go out again, with their ids unchanged (at-least-once).
 */
import { RealtimeError } from "./errors.ts";
import type { SendResult } from "./types.ts";

/** Where an entry is written: a live socket. `send` is false when it did not take the text. */
export interface Writer {
  send(text: string): boolean;
}

interface Entry {
  readonly text: string;
  readonly bytes: number;
  readonly resolve: (r: SendResult) => void;
  readonly reject: (e: RealtimeError) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  sentOn: Writer | null;
}

export class Outbox {
  readonly #entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries: number,
    private readonly ackTimeoutMs: number,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Why a new send cannot be added (queue full, id in use), or null. */
  refuse(id: string): RealtimeError | null {
    if (this.#entries.has(id))
      return new RealtimeError("duplicate_id", `send ${id} is still waiting for its ack`);
    if (this.#entries.size >= this.maxEntries) {
      return new RealtimeError("queue_full", `${this.#entries.size} sends are waiting for their ack`);
    }
    return null;
  }

  /**
   * Adds a send (check `refuse` first) and writes it to `writer` when there is one. Settles on
   * its ack, on `ack_timeout` ackTimeoutMs from now, or on `failAll`.
   */
  add(id: string, text: string, bytes: number, writer: Writer | null): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const entry: Entry = {
        text,
        bytes,
        resolve,
        reject,
        sentOn: null,
        timer: setTimeout(() => {
          if (this.#entries.get(id) !== entry) return;
          this.#entries.delete(id);
          reject(new RealtimeError("ack_timeout", `no ack for ${id} within ${this.ackTimeoutMs} ms`));
        }, this.ackTimeoutMs),
      };
      this.#entries.set(id, entry);
      if (writer !== null && writer.send(text)) entry.sentOn = writer;
    });
  }

  /**
   * Writes every entry not yet written to `writer`, oldest first; one that `refuse` rejects
   * (e.g. over the new session's frame limit) fails instead of going out.
   */
  flush(writer: Writer, refuse: (bytes: number) => RealtimeError | null): void {
    for (const [id, entry] of this.#entries) {
      if (entry.sentOn === writer) continue;
      const error = refuse(entry.bytes);
      if (error !== null) this.#settle(id, entry).reject(error);
      else if (writer.send(entry.text)) entry.sentOn = writer;
    }
  }

  /** Settles the send `id` (an ack for an unknown or timed-out id is ignored). */
  ack(
    id: string,
    result: { ok: true; cursor: string | undefined } | { ok: false; error: RealtimeError },
  ): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#settle(id, entry);
    if (result.ok) entry.resolve({ id, cursor: result.cursor });
    else entry.reject(result.error);
  }

  failAll(error: RealtimeError): void {
    for (const [id, entry] of this.#entries) this.#settle(id, entry).reject(error);
  }

  #settle(id: string, entry: Entry): Entry {
    clearTimeout(entry.timer);
    this.#entries.delete(id);
    return entry;
  }
}
