/**
 * A token bucket per connection: up to `burst` tokens, refilled at `ratePerSec`. No clock is
 * read here; every call gets the time, so the limiter is deterministic and testable.
 *
 * Tokens are kept in thousandths (one token = 1000 units, refill = ratePerSec units per ms),
 * so with integer times, rates and costs the arithmetic is exact integers and the bound
 * "granted over [t0, t1] <= burst + ratePerSec * (t1 - t0) / 1000" holds with no rounding.
 * The bucket remembers the latest time it has seen: a clock that goes backwards refills
 * nothing, and coming forward again only refills from that latest time, so it never mints
 * tokens twice for the same interval.
 */

export interface TokenBucketConfig {
  /** Sustained rate, tokens per second: finite and > 0. */
  readonly ratePerSec: number;
  /** Bucket size, the largest burst: an integer >= 1. The bucket starts full. */
  readonly burst: number;
}

export type TakeResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /**
       * Wait before the same take can succeed (if nothing else takes meanwhile).
       * `Infinity` when `n > burst`: that take can never succeed.
       */
      readonly retryAfterMs: number;
      /** Rejections in a row, this one included (see `TokenBucket.consecutiveRejections`). */
      readonly consecutiveRejections: number;
    };

export interface TokenBucket {
  /**
   * Takes `n` tokens (an integer >= 1) at `nowMs` if that many are available, else takes
   * nothing. A rejection does not consume tokens.
   */
  take(nowMs: number, n?: number): TakeResult;
  /** Tokens available at `nowMs`, without taking any (does not change the bucket). */
  available(nowMs: number): number;
  /**
   * Rejections since the last successful take. The gateway closes a connection that keeps
   * exceeding its rate (this passing its limit), instead of rejecting frames forever.
   */
  readonly consecutiveRejections: number;
}

const UNITS_PER_TOKEN = 1000;

/** Throws RangeError on a bad config: it is a programming or configuration error. */
export function createTokenBucket(config: TokenBucketConfig): TokenBucket {
  const { ratePerSec, burst } = config;
  if (!Number.isFinite(ratePerSec) || ratePerSec <= 0) {
    throw new RangeError(`ratePerSec must be finite and > 0, got ${ratePerSec}`);
  }
  if (!Number.isSafeInteger(burst) || burst < 1) {
    throw new RangeError(`burst must be an integer >= 1, got ${burst}`);
  }
  return new Bucket(ratePerSec, burst);
}

/**
 * One bucket is a handful of numbers and no closures: a gateway holds several per connection
 * (and per user), so its size is part of the memory every idle connection costs.
 */
class Bucket implements TokenBucket {
  #units: number;
  // null until the first call: the bucket is full at whatever time it is first used.
  #lastMs: number | null = null;
  #rejections = 0;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {
    this.#units = burst * UNITS_PER_TOKEN;
  }

  #unitsAt(nowMs: number): number {
    if (this.#lastMs === null || nowMs <= this.#lastMs) return this.#units;
    return Math.min(this.burst * UNITS_PER_TOKEN, this.#units + (nowMs - this.#lastMs) * this.ratePerSec);
  }

  take(nowMs: number, n = 1): TakeResult {
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be finite, got ${nowMs}`);
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`n must be an integer >= 1, got ${n}`);
    this.#units = this.#unitsAt(nowMs);
    const lastMs = this.#lastMs === null ? nowMs : Math.max(this.#lastMs, nowMs);
    this.#lastMs = lastMs;
    const costUnits = n * UNITS_PER_TOKEN;
    if (costUnits <= this.#units) {
      this.#units -= costUnits;
      this.#rejections = 0;
      return OK;
    }
    this.#rejections += 1;
    // After a backwards step, refill resumes only once the clock is back at lastMs.
    const behindMs = lastMs - nowMs;
    const retryAfterMs =
      n > this.burst ? Infinity : behindMs + Math.ceil((costUnits - this.#units) / this.ratePerSec);
    return { ok: false, retryAfterMs, consecutiveRejections: this.#rejections };
  }

  available(nowMs: number): number {
    return this.#unitsAt(nowMs) / UNITS_PER_TOKEN;
  }

  get consecutiveRejections(): number {
    return this.#rejections;
  }
}

const OK: TakeResult = Object.freeze({ ok: true });
