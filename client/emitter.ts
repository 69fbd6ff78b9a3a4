/**
 * A tiny typed listener registry: `on` returns the function that removes the listener. A
 * listener that throws does not stop the others or the client: its exception is reported the
 * way an EventTarget reports one (rethrown on a fresh task), not swallowed.
 */

// Listener maps are closed types; `any[]` is only the constraint's widest form.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ListenerMap = { [K in string]: (...args: any[]) => void };

export class Emitter<L extends ListenerMap> {
  readonly #listeners = new Map<keyof L, Set<L[keyof L]>>();

  on<K extends keyof L>(name: K, fn: L[K]): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    // A wrapper, so the same function added twice is two listeners, each removable once.
    const entry = ((...args: Parameters<L[K]>) => fn(...args)) as L[K];
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  emit<K extends keyof L>(name: K, ...args: Parameters<L[K]>): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }

  listenerCount(name: keyof L): number {
    return this.#listeners.get(name)?.size ?? 0;
  }

  clear(): void {
    this.#listeners.clear();
  }
}
