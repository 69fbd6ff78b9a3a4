/**
 * Which sockets hold which users on this gateway. A user may have several devices (sockets),
 * up to a per-user limit. Pure bookkeeping: no I/O.
 *
 * Nearly every user has one socket, so a user's entry is that socket itself, and becomes a Set
 * only at the second: an idle gateway holds one entry per connection, and its size counts.
 * (`C` must therefore not itself be a Set.)
 */
export class Registry<C> {
  readonly #byUser = new Map<string, C | Set<C>>();
  #connections = 0;

  constructor(private readonly maxPerUser: number) {}

  /** Adds `conn` for `user`; false (and nothing changes) when the user is at the limit. */
  add(user: string, conn: C): boolean {
    const entry = this.#byUser.get(user);
    if (entry === undefined) {
      this.#byUser.set(user, conn);
    } else if (entry instanceof Set) {
      if (entry.has(conn)) return true;
      if (entry.size >= this.maxPerUser) return false;
      entry.add(conn);
    } else {
      if (entry === conn) return true;
      if (this.maxPerUser < 2) return false;
      this.#byUser.set(user, new Set([entry, conn]));
    }
    this.#connections += 1;
    return true;
  }

  remove(user: string, conn: C): void {
    const entry = this.#byUser.get(user);
    if (entry === undefined) return;
    if (entry instanceof Set) {
      if (!entry.delete(conn)) return;
      if (entry.size === 1) this.#byUser.set(user, entry.values().next().value!);
    } else {
      if (entry !== conn) return;
      this.#byUser.delete(user);
    }
    this.#connections -= 1;
  }

  /** The user's sockets, in the order they were added; undefined when there is none. */
  sockets(user: string): Iterable<C> | undefined {
    const entry = this.#byUser.get(user);
    if (entry === undefined) return undefined;
    return entry instanceof Set ? entry : [entry];
  }

  users(): IterableIterator<string> {
    return this.#byUser.keys();
  }

  get connections(): number {
    return this.#connections;
  }

  get userCount(): number {
    return this.#byUser.size;
  }
}
