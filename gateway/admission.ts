/**
 * Who may open a WebSocket, decided at the upgrade before the gateway spends anything on it:
 * the browser Origin allowlist (cross-site WebSocket hijacking), connections per client address,
 * and the bound on sockets that are open but not live yet (no welcome: slowloris on the hello
 * deadline). Pure bookkeeping: no uWS, no clock of its own.
 */

/** Browser origins allowed to open a WebSocket: any, or an exact list of canonical origins. */
export type OriginPolicy = "*" | readonly string[];

/**
 * The canonical form of an allowlist entry, `scheme://host[:port]` as browsers send it in
 * `Origin` (lowercase, default port dropped, no path), or undefined when `s` is not one.
 */
export function canonicalOrigin(s: string): string | undefined {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  return url.origin === s ? s : undefined;
}

/**
 * Whether an upgrade with this `Origin` header ("" when absent) may proceed. Browsers always send
 * Origin on a WebSocket upgrade, so a missing one is a native client (mobile app, server), which a
 * cross-site page cannot be. `null` (sandboxed frames, file://) matches only `*`.
 */
export function originAllowed(policy: OriginPolicy, origin: string): boolean {
  if (policy === "*" || origin === "") return true;
  return policy.includes(origin);
}

/**
 * The key connections are counted under: an IPv4 address as dotted text, an IPv6 address by its
 * /64 (one subscriber usually holds a whole /64, so counting single addresses would not bound it).
 * Accepts the forms uWS reports (`127.0.0.1`, full hex `0000:...:ffff:7f00:0001`) and `::` ones.
 */
export function clientKey(address: string): string {
  const a = address.toLowerCase();
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(a)) return a;
  const groups = expandIpv6(a);
  if (groups === undefined) return a;
  // IPv4-mapped (::ffff:a.b.c.d): the IPv4 address.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi, lo] = [groups[6]!, groups[7]!];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, or undefined when it is not one. */
function expandIpv6(a: string): number[] | undefined {
  let text = a;
  // A trailing dotted IPv4 part (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const b = v4.slice(2).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = `${v4[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === "" ? [] : s.split(":"));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return all.map((g) => parseInt(g, 16));
}

/** Open connections per client key, each key capped; keys at zero are forgotten. */
export class ConnectionCounter {
  readonly #counts = new Map<string, number>();

  constructor(private readonly maxPerKey: number) {}

  /** Counts one more connection for `key`, unless it already has `maxPerKey`. */
  tryAdd(key: string): boolean {
    const n = this.#counts.get(key) ?? 0;
    if (n >= this.maxPerKey) return false;
    this.#counts.set(key, n + 1);
    return true;
  }

  /** One connection of `key` is gone. Removing more than were added is a broken invariant. */
  remove(key: string): void {
    const n = this.#counts.get(key);
    if (n === undefined) throw new Error(`ConnectionCounter: ${key} has no connections to remove`);
    if (n === 1) this.#counts.delete(key);
    else this.#counts.set(key, n - 1);
  }

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Keys with at least one connection. */
  get keys(): number {
    return this.#counts.size;
  }
}

/**
 * Sockets that may still be waiting for their welcome. Items leave when they close; items that
 * went live are only noticed by a sweep, which runs when the set has reached the bound (and at
 * most once per `sweepEveryMs`, so a flood of upgrades at the bound cannot make each one pay for
 * a full scan). Below the bound the count may include live sockets: that only errs on the side of
 * admitting.
 */
export class PendingSockets<T> {
  readonly #items = new Set<T>();
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly stillPending: (item: T) => boolean,
    private readonly sweepEveryMs = 100,
  ) {}

  add(item: T): void {
    this.#items.add(item);
  }

  delete(item: T): void {
    this.#items.delete(item);
  }

  /** Whether `extra` more pending sockets (e.g. upgrades being verified) reach `max`. */
  full(max: number, extra: number, nowMs: number): boolean {
    if (this.#items.size + extra < max) return false;
    if (nowMs - this.#lastSweepMs >= this.sweepEveryMs) {
      this.#lastSweepMs = nowMs;
      for (const item of this.#items) if (!this.stillPending(item)) this.#items.delete(item);
    }
    return this.#items.size + extra >= max;
  }

  get size(): number {
    return this.#items.size;
  }
}
