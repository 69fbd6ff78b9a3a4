/**
 * Revocations this gateway has read from the deliveries log: per user, the time of the newest
 * one. A session whose token was issued at or before it is closed, and a hello with such a token
 * is refused. Bounded: entries older than `rememberMs` are forgotten (tokens should not live
 * longer), and past `maxUsers` the oldest entries go first.
 */
export class Revocations {
  readonly #at = new Map<string, number>();

  constructor(
    private readonly rememberMs: number,
    private readonly maxUsers: number,
  ) {}

  /** Records a revocation of `user` at `atMs`. */
  note(user: string, atMs: number): void {
    const before = this.#at.get(user);
    if (before !== undefined && before >= atMs) return;
    // Re-insert so the map's order is the order of the newest revocation per user.
    this.#at.delete(user);
    this.#at.set(user, atMs);
    while (this.#at.size > this.maxUsers) {
      const oldest = this.#at.keys().next().value as string;
      this.#at.delete(oldest);
    }
  }

  /** The newest revocation of `user` still remembered, in ms since the epoch. */
  revokedAt(user: string, nowMs = Date.now()): number | undefined {
    const at = this.#at.get(user);
    if (at === undefined) return undefined;
    if (nowMs - at > this.rememberMs) {
      this.#at.delete(user);
      return undefined;
    }
    return at;
  }

  get size(): number {
    return this.#at.size;
  }
}
