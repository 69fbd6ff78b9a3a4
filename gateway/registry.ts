/**
 * Which sockets hold which users on this gateway. A user may have several devices (sockets),
 * up to a per-user limit. Pure bookkeeping: no I/O.
 */
export class Registry<C> {
  readonly #byUser = new Map<string, Set<C>>();
  #connections = 0;

  constructor(private readonly maxPerUser: number) {}

  /** Adds `conn` for `user`; false (and nothing changes) when the user is at the limit. */
  add(user: string, conn: C): boolean {
    let set = this.#byUser.get(user);
    if (set === undefined) {
      set = new Set();
      this.#byUser.set(user, set);
    }
    if (set.has(conn)) return true;
    if (set.size >= this.maxPerUser) return false;
    set.add(conn);
    this.#connections += 1;
    return true;
  }

  remove(user: string, conn: C): void {
    const set = this.#byUser.get(user);
    if (set === undefined || !set.delete(conn)) return;
    this.#connections -= 1;
    if (set.size === 0) this.#byUser.delete(user);
  }

  sockets(user: string): ReadonlySet<C> | undefined {
    return this.#byUser.get(user);
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
