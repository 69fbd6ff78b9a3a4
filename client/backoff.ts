/**
 * Full-jitter exponential backoff (the "Full Jitter" of the AWS architecture blog): the n-th
 * retry waits a uniform delay in [0, min(cap, base * 2^n)]. Spreading each retry over the whole
 * window, rather than around its end, is what keeps a fleet of clients that lost one gateway at
 * the same moment from coming back at the same moment. Pure: the random source is a parameter.
 */

export interface BackoffOptions {
  /** The window of the first retry. */
  readonly baseMs: number;
  /** The largest window, however many retries failed. */
  readonly capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ baseMs: 500, capMs: 30_000 });

/** A session live this long is "stable": the next failure starts the backoff from scratch. */
export const DEFAULT_STABLE_AFTER_MS = 10_000;

/** Past this many doublings every realistic window is at its cap; stops 2^n overflowing. */
const MAX_DOUBLINGS = 52;

/** The window of retry number `attempt` (0-based): min(cap, base * 2^attempt). */
export function backoffWindowMs(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.min(Math.max(0, Math.floor(attempt)), MAX_DOUBLINGS);
  return Math.min(options.capMs, options.baseMs * 2 ** n);
}

/**
 * A whole number of milliseconds in [0, window(attempt)]. `random` returns a number in [0, 1),
 * like Math.random; a value out of range is clamped (NaN counts as 0), so a bad source cannot break the bound.
 */
export function fullJitterMs(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const window = backoffWindowMs(attempt, options);
  const raw = random();
  const r = Number.isFinite(raw) ? Math.min(Math.max(raw, 0), 1) : 0;
  return Math.min(window, Math.floor(r * (window + 1)));
}

/** Checks options once, where they enter, so a typo fails at construction and not mid-outage. */
export function validateBackoff(options: BackoffOptions): BackoffOptions {
  const { baseMs, capMs } = options;
  if (!Number.isFinite(baseMs) || baseMs < 1)
    throw new RangeError(`backoff.baseMs must be >= 1, got ${baseMs}`);
  if (!Number.isFinite(capMs) || capMs < baseMs) {
    throw new RangeError(`backoff.capMs must be >= baseMs (${baseMs}), got ${capMs}`);
  }
  return Object.freeze({ baseMs, capMs });
}

/** The retry counter of one client: `next()` for each failure, `reset()` once a session is stable. */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** Failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next retry; widens the window for the one after. */
  next(): number {
    const delay = fullJitterMs(this.#attempt, this.options, this.random);
    if (this.#attempt < MAX_DOUBLINGS) this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
