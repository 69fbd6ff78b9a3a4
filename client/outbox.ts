/**
 * Sends waiting for their ack, in the order they were made: bounded, each with its deadline.
 * An entry remembers the socket it was last written to, so that after a reconnect exactly the
 * ones not written to the new socket go out again, with their ids unchanged (at-least-once).
 *
 * A failed ack whose code says "try again" (`unavailable`, `queue_full`, `rate_limited`) does not
 * settle the send: it is written again, same id, after a short full-jitter delay (or the delay
 * the server named), on whatever socket is live then, until it is acked or its deadline passes.
 * Past the deadline it fails with the last server error, or `ack_timeout` when none came.
 */
import { fullJitterMs, type BackoffOptions } from "./backoff.ts";
import { RealtimeError } from "./errors.ts";
import type { SendResult } from "./types.ts";

/** Where an entry is written: a live socket. `send` is false when it did not take the text. */
export interface Writer {
  send(text: string): boolean;
}

/** Server error codes after which the same send, same id, is written again. */
export const RETRY_CODES: ReadonlySet<string> = new Set(["unavailable", "queue_full", "rate_limited"]);

/** Spacing of the retries after a retriable failed ack. */
export const RETRY_BACKOFF: BackoffOptions = Object.freeze({ baseMs: 200, capMs: 5000 });

interface Entry {
  readonly text: string;
  readonly bytes: number;
  readonly resolve: (r: SendResult) => void;
  readonly reject: (e: RealtimeError) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  sentOn: Writer | null;
  retries: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  lastError: RealtimeError | undefined;
}

export interface OutboxOptions {
  readonly maxEntries: number;
  readonly ackTimeoutMs: number;
  /** The live socket now, or null. */
  readonly writer: () => Writer | null;
  readonly random: () => number;
}

export class Outbox {
  readonly #entries = new Map<string, Entry>();

  constructor(private readonly options: OutboxOptions) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Why a new send cannot be added (queue full, id in use), or null. */
  refuse(id: string): RealtimeError | null {
    if (this.#entries.has(id))
      return new RealtimeError("duplicate_id", `send ${id} is still waiting for its ack`, { id });
    if (this.#entries.size >= this.options.maxEntries) {
      return new RealtimeError("queue_full", `${this.#entries.size} sends are waiting for their ack`, {
        id,
      });
    }
    return null;
  }

  /**
   * Adds a send (check `refuse` first) and writes it to the live socket when there is one.
   * Settles on its ack, at its deadline (`timeoutMs`, default ackTimeoutMs, from now), or on
   * `failAll`.
   */
  add(id: string, text: string, bytes: number, timeoutMs = this.options.ackTimeoutMs): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const entry: Entry = {
        text,
        bytes,
        resolve,
        reject,
        sentOn: null,
        retries: 0,
        retryTimer: undefined,
        lastError: undefined,
        timer: setTimeout(() => {
          if (this.#entries.get(id) !== entry) return;
          this.#settle(id, entry);
          reject(
            entry.lastError ??
              new RealtimeError("ack_timeout", `no ack for ${id} within ${timeoutMs} ms`, { id }),
          );
        }, timeoutMs),
      };
      this.#entries.set(id, entry);
      this.#write(entry);
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
      else {
        clearTimeout(entry.retryTimer);
        entry.retryTimer = undefined;
        if (writer.send(entry.text)) entry.sentOn = writer;
      }
    }
  }

  /** Settles the send `id` (an ack for an unknown or timed-out id is ignored). */
  ack(
    id: string,
    result: { ok: true; cursor: string | undefined } | { ok: false; error: RealtimeError },
  ): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    if (!result.ok && RETRY_CODES.has(result.error.code)) {
      entry.lastError = result.error;
      entry.sentOn = null;
      clearTimeout(entry.retryTimer);
      const hinted = retryInMs(result.error.message);
      const delay =
        hinted ?? fullJitterMs(entry.retries, RETRY_BACKOFF, this.options.random) + RETRY_BACKOFF.baseMs;
      entry.retries += 1;
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = undefined;
        if (this.#entries.get(id) === entry) this.#write(entry);
      }, delay);
      return;
    }
    this.#settle(id, entry);
    if (result.ok) entry.resolve({ id, cursor: result.cursor });
    else entry.reject(result.error);
  }

  failAll(error: RealtimeError): void {
    for (const [id, entry] of this.#entries) {
      this.#settle(id, entry).reject(
        new RealtimeError(error.code, error.message, { id, cause: error.cause, retriable: error.retriable }),
      );
    }
  }

  #write(entry: Entry): void {
    const writer = this.options.writer();
    if (writer !== null && writer.send(entry.text)) entry.sentOn = writer;
  }

  #settle(id: string, entry: Entry): Entry {
    clearTimeout(entry.timer);
    clearTimeout(entry.retryTimer);
    this.#entries.delete(id);
    return entry;
  }
}

/** The gateway's `rate_limited` message says `retry in N ms`. */
function retryInMs(message: string): number | undefined {
  const m = /retry in (\d{1,7}) ms/.exec(message);
  return m === null ? undefined : Number(m[1]);
}
