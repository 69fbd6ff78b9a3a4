/**
 * What a churn run will do, decided up front from its seed, as pure values: each client's peers
 * (the recipients it sends to), the whole send schedule (which sender→peer pair sends the n-th
 * message), and which gateway goes. Deciding the schedule first lets the tracker size its
 * per-pair arrays exactly, and a seed replays the same traffic.
 *
 * Pair p is sender `floor(p / peers)` sending to `recipients[p]`; messages are numbered per pair
 * 0, 1, 2, ..., so loss and order are checked per sender→recipient pair.
 */

/** mulberry32: small, fast, seedable; a number in [0, 1) per call. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function clientUser(runId: string, index: number): string {
  return `lt-${runId}-c${index}`;
}

/** The client index in a user name of this run, or null. */
export function parseClientUser(runId: string, user: string): number | null {
  const prefix = `lt-${runId}-c`;
  if (!user.startsWith(prefix)) return null;
  const rest = user.slice(prefix.length);
  return /^(0|[1-9]\d{0,8})$/.test(rest) ? Number(rest) : null;
}

export interface ChurnPlan {
  readonly clients: number;
  readonly peers: number;
  /** recipients[pair]: the client that pair sends to. */
  readonly recipients: Uint32Array;
  /** schedule[n]: the pair that sends message n. */
  readonly schedule: Uint32Array;
  /** The most messages any one pair sends. */
  readonly maxPerPair: number;
  /** Pairs whose recipient is client c: pairsTo[pairsToStart[c] .. pairsToStart[c + 1]). */
  readonly pairsToStart: Uint32Array;
  readonly pairsTo: Uint32Array;
}

export function senderOf(plan: Pick<ChurnPlan, "peers">, pair: number): number {
  return Math.floor(pair / plan.peers);
}

/**
 * Draws `peers` distinct recipients per client (never itself), then `messages` pairs uniformly
 * at random. Needs peers < clients.
 */
export function makePlan(clients: number, peers: number, messages: number, random: () => number): ChurnPlan {
  if (!Number.isSafeInteger(clients) || clients < 2)
    throw new RangeError(`clients must be >= 2, got ${clients}`);
  if (!Number.isSafeInteger(peers) || peers < 1 || peers >= clients) {
    throw new RangeError(`peers must be in [1, clients - 1], got ${peers}`);
  }
  if (!Number.isSafeInteger(messages) || messages < 0) throw new RangeError(`bad message count ${messages}`);
  const pick = (n: number) => Math.min(n - 1, Math.floor(random() * n));
  const recipients = new Uint32Array(clients * peers);
  for (let s = 0; s < clients; s++) {
    for (let k = 0; k < peers; k++) {
      // Rejection sampling: peers is small next to clients, so this ends after a few draws; the
      // bound keeps it finite whatever the random source does.
      let r = pick(clients);
      for (let tries = 0; tries < 10_000; tries++) {
        let taken = r === s;
        for (let j = 0; j < k && !taken; j++) taken = recipients[s * peers + j] === r;
        if (!taken) break;
        r = (r + 1) % clients;
      }
      recipients[s * peers + k] = r;
    }
  }
  const pairs = clients * peers;
  const schedule = new Uint32Array(messages);
  const perPair = new Uint32Array(pairs);
  let maxPerPair = 0;
  for (let n = 0; n < messages; n++) {
    const p = pick(pairs);
    schedule[n] = p;
    const c = ++perPair[p]!;
    if (c > maxPerPair) maxPerPair = c;
  }
  const pairsToStart = new Uint32Array(clients + 1);
  for (let p = 0; p < pairs; p++) pairsToStart[recipients[p]! + 1]!++;
  for (let c = 0; c < clients; c++) pairsToStart[c + 1]! += pairsToStart[c]!;
  const fill = pairsToStart.slice(0, clients);
  const pairsTo = new Uint32Array(pairs);
  for (let p = 0; p < pairs; p++) pairsTo[fill[recipients[p]!]!++] = p;
  return { clients, peers, recipients, schedule, maxPerPair, pairsToStart, pairsTo };
}

/** The pairs that send to client `c`. */
export function pairsToClient(plan: ChurnPlan, c: number): Uint32Array {
  return plan.pairsTo.subarray(plan.pairsToStart[c]!, plan.pairsToStart[c + 1]!);
}
