/**
 * The write rate of one user across all of their connections on this gateway: a token bucket per
 * user, shared by the user's sessions. All of a user's connections land on the gateway that owns
 * the user's partition, so in a steady cluster this is the user's rate cluster-wide; while a
 * partition moves, the old and the new owner each allow it. A bucket exists while the user has a
 * session here (`forget` on the last one's close), so the map is bounded by the live users.
 */
import { createTokenBucket, type TakeResult, type TokenBucket } from "./rate-limit.ts";

export class UserRates {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {}

  /** Takes one write for `user` at `nowMs`. */
  take(user: string, nowMs: number): TakeResult {
    let bucket = this.#buckets.get(user);
    if (bucket === undefined) {
      bucket = createTokenBucket({ ratePerSec: this.ratePerSec, burst: this.burst });
      this.#buckets.set(user, bucket);
    }
    return bucket.take(nowMs);
  }

  /** The user has no session left here. */
  forget(user: string): void {
    this.#buckets.delete(user);
  }

  get users(): number {
    return this.#buckets.size;
  }
}
