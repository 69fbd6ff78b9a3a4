/**
 * The per-room send rate of one gateway: a token bucket per room, created on first use. Bounded:
 * past `maxRooms` buckets the least recently used is dropped (a dropped bucket starts full again,
 * which only ever lets a little more through).
 */
import { createTokenBucket, type TokenBucket } from "./rate-limit.ts";

export class RoomRates {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly ratePerSec: number,
    private readonly maxRooms = 10_000,
  ) {}

  /** 0 when the room may take one more message now; otherwise ms until it may. */
  take(room: string, nowMs: number): number {
    let bucket = this.#buckets.get(room);
    if (bucket === undefined) {
      bucket = createTokenBucket({ ratePerSec: this.ratePerSec, burst: this.ratePerSec });
      if (this.#buckets.size >= this.maxRooms) {
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      }
    } else this.#buckets.delete(room);
    this.#buckets.set(room, bucket);
    const r = bucket.take(nowMs);
    return r.ok ? 0 : Math.max(1, r.retryAfterMs);
  }
}
