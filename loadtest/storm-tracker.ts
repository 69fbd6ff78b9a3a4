/**
 * A storm generator's bookkeeping, as pure state: per local client, the cursor of the last event
 * it got (what it resumes from), which of its numbered events it has (one flag byte per event),
 * and whether it is back after the drop. Events are the run's own: id `<run>.<client>.<seq>`,
 * `seq` in [0, slots).
 */

/** The type of the events a storm run writes to its clients. */
export const STORM_EVENT_TYPE = "bench.storm";

export type StormEventOutcome = "new" | "duplicate" | "foreign";

export class StormTracker {
  readonly #first: number;
  readonly #count: number;
  readonly #slots: number;
  readonly #flags: Uint8Array;
  readonly #received: Uint16Array;
  readonly #cursors: (string | undefined)[];
  #duplicates = 0;
  #foreign = 0;
  #delivered = 0;

  /** Clients [first, first + count) of the run, each with `slots` numbered events. */
  constructor(first: number, count: number, slots: number) {
    if (!Number.isSafeInteger(slots) || slots < 1 || slots > 65_535)
      throw new RangeError(`bad slots ${slots}`);
    this.#first = first;
    this.#count = count;
    this.#slots = slots;
    this.#flags = new Uint8Array(count * slots);
    this.#received = new Uint16Array(count);
    this.#cursors = new Array<string | undefined>(count);
  }

  /**
   * Local client `k` got event `seq` of run client `client` with `cursor`. Its cursor moves to
   * `cursor` whatever the outcome (the gateway's order is the cursor's order).
   */
  onEvent(k: number, client: number, seq: number, cursor: string | undefined): StormEventOutcome {
    if (cursor !== undefined) this.#cursors[k] = cursor;
    if (client !== this.#first + k || seq < 0 || seq >= this.#slots || !Number.isInteger(seq)) {
      this.#foreign++;
      return "foreign";
    }
    const i = k * this.#slots + seq;
    if (this.#flags[i] === 1) {
      this.#duplicates++;
      return "duplicate";
    }
    this.#flags[i] = 1;
    this.#received[k]!++;
    this.#delivered++;
    return "new";
  }

  cursor(k: number): string | undefined {
    return this.#cursors[k];
  }

  received(k: number): number {
    return this.#received[k]!;
  }

  /** Events delivered (new ones) so far, over every client. */
  get delivered(): number {
    return this.#delivered;
  }

  get duplicates(): number {
    return this.#duplicates;
  }

  get foreign(): number {
    return this.#foreign;
  }

  /** Over the clients `include` selects: events expected (`expected` each), received, and missing. */
  totals(
    expected: number,
    include: (k: number) => boolean,
  ): { expected: number; received: number; missing: number } {
    let exp = 0;
    let rec = 0;
    for (let k = 0; k < this.#count; k++) {
      if (!include(k)) continue;
      exp += expected;
      let got = 0;
      for (let s = 0; s < expected && s < this.#slots; s++) got += this.#flags[k * this.#slots + s]!;
      rec += got;
    }
    return { expected: exp, received: rec, missing: exp - rec };
  }
}

/** The reason of a failed connect, from connection.ts's message, as a short key for counting. */
export function failureReason(message: string): string {
  const http = /HTTP (\d{3})/.exec(message);
  if (http !== null) return `http_${http[1]}`;
  const closed = /closed the socket \((\d{3,4})/.exec(message);
  if (closed !== null) return `close_${closed[1]}`;
  const errno = /\b(E[A-Z]{3,})\b/.exec(message);
  if (errno !== null) return errno[1]!.toLowerCase();
  if (/no welcome within/.test(message)) return "timeout";
  return "other";
}

/** Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)]. `random` in [0, 1). */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(30, attempt));
  return Math.floor(random * (ceiling + 1));
}
