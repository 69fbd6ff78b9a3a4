/**
 * Many deadlines on one timer: items are grouped by the second they are due in, and one timer
 * (unref'd) fires for the earliest group. A gateway holds one deadline per live session (its
 * token's expiry); a Node timer each would cost every idle connection a Timeout, its arguments
 * and its numbers, where a group entry costs a Set slot. Items fire in [dueMs, dueMs + 1 s).
 *
 * `add` returns a key (the group) that `remove` needs; keys are small positive integers, 0 is
 * never one, so a holder can keep 0 for "no deadline".
 */
export class Deadlines<T> {
  readonly #groups = new Map<number, Set<T>>();
  readonly #originMs: number;
  #timer: NodeJS.Timeout | null = null;
  #timerKey = Infinity;

  constructor(
    private readonly onDue: (item: T) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.#originMs = now() - 1000;
  }

  /** `item` is due at `dueMs`; the key to remove it with. */
  add(item: T, dueMs: number): number {
    const key = Math.max(1, Math.ceil((dueMs - this.#originMs) / 1000));
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = new Set();
      this.#groups.set(key, group);
    }
    group.add(item);
    if (key < this.#timerKey) this.#arm(key);
    return key;
  }

  /** Forgets `item`'s deadline (added with `key`); nothing happens when it is not there. */
  remove(item: T, key: number): void {
    const group = this.#groups.get(key);
    if (group === undefined || !group.delete(item)) return;
    if (group.size === 0) this.#groups.delete(key);
  }

  get size(): number {
    let n = 0;
    for (const g of this.#groups.values()) n += g.size;
    return n;
  }

  #arm(key: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerKey = key;
    const delay = Math.max(0, this.#originMs + key * 1000 - this.now());
    this.#timer = setTimeout(() => this.#fire(), Math.min(delay, 2 ** 31 - 1));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = null;
    this.#timerKey = Infinity;
    const nowKey = Math.floor((this.now() - this.#originMs) / 1000);
    const due: number[] = [];
    let next = Infinity;
    for (const key of this.#groups.keys()) {
      if (key <= nowKey) due.push(key);
      else if (key < next) next = key;
    }
    for (const key of due.sort((a, b) => a - b)) {
      const group = this.#groups.get(key)!;
      this.#groups.delete(key);
      for (const item of group) this.onDue(item);
    }
    // onDue may have added deadlines (and armed the timer); arm for the earliest left otherwise.
    for (const key of this.#groups.keys()) if (key < next) next = key;
    if (next !== Infinity && next < this.#timerKey) this.#arm(next);
  }
}
