/**
 * Open-loop pacing: how many sends are due at a given time, whatever the system under test does.
 *
 * The schedule is fixed when the run starts: by time t, floor(rate * (t - start)) messages should
 * have been sent. A timer tick asks `due(now)` and sends that many, so a slow backbone cannot
 * slow the offered load down (no coordinated omission from waiting on acks). If the generator
 * itself stalls (event loop blocked, machine overloaded), the backlog is sent on the next tick,
 * but never more than `maxBacklogMs` worth: beyond that the missed sends are counted as skipped,
 * not burst out, which would trip the gateway's per-connection rate limit and measure the burst.
 */

export interface PacerOptions {
  readonly ratePerS: number;
  readonly startMs: number;
  /** No sends are due for times at or after this. */
  readonly endMs: number;
  readonly maxBacklogMs: number;
}

export interface Due {
  /** Messages to send now. */
  readonly send: number;
  /** Messages dropped from the schedule because the generator fell too far behind. */
  readonly skipped: number;
}

export class Pacer {
  readonly #options: PacerOptions;
  /** Messages taken off the schedule so far: sent or skipped. */
  #issued = 0;
  #skipped = 0;

  constructor(options: PacerOptions) {
    if (!(options.ratePerS > 0) || !Number.isFinite(options.ratePerS)) {
      throw new RangeError(`ratePerS must be finite and > 0, got ${options.ratePerS}`);
    }
    if (!(options.endMs >= options.startMs)) throw new RangeError("endMs must be >= startMs");
    if (!(options.maxBacklogMs >= 0)) throw new RangeError("maxBacklogMs must be >= 0");
    this.#options = options;
  }

  /** Messages the schedule holds from start to end. */
  get total(): number {
    return this.#scheduledBy(this.#options.endMs);
  }

  get issued(): number {
    return this.#issued;
  }

  get skipped(): number {
    return this.#skipped;
  }

  #scheduledBy(nowMs: number): number {
    const { ratePerS, startMs, endMs } = this.#options;
    const t = Math.min(Math.max(nowMs, startMs), endMs);
    return Math.floor((ratePerS * (t - startMs)) / 1000 + 1e-9);
  }

  /** What is due at `nowMs`; the caller must send exactly `send` messages. */
  due(nowMs: number): Due {
    const behind = this.#scheduledBy(nowMs) - this.#issued;
    if (behind <= 0) return { send: 0, skipped: 0 };
    const cap = Math.max(1, Math.floor((this.#options.ratePerS * this.#options.maxBacklogMs) / 1000));
    const send = Math.min(behind, cap);
    const skipped = behind - send;
    this.#issued += behind;
    this.#skipped += skipped;
    return { send, skipped };
  }

  /** True once every scheduled message has been issued (sent or skipped). */
  done(nowMs: number): boolean {
    return nowMs >= this.#options.endMs && this.#issued >= this.total;
  }
}

/** Hands out indices 0..n-1 in turn, so the load spreads evenly over the senders. */
export class RoundRobin {
  #next = 0;

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`size must be >= 1, got ${size}`);
  }

  next(): number {
    const i = this.#next;
    this.#next = (i + 1) % this.size;
    return i;
  }
}
