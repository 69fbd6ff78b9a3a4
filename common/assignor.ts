/**
 * Sticky, balanced assignment of partition NUMBERS to group members. Pure: no Kafka here.
 *
 * The algorithm, in three steps:
 * 1. Claims. Each member claims the partitions it held before (`previous`). A partition claimed
 *    by several members (a stale claim left by a split-brain or a late rejoin) goes to the
 *    claimant with the smallest memberId; claims outside 0..partitionCount-1 are dropped.
 * 2. Quotas. With n members and P partitions every member gets floor(P/n), and P mod n of them
 *    get one more. The extra slots go to the members with the most claims (ties: smallest
 *    memberId): only a member claiming more than floor(P/n) can use an extra slot to keep one
 *    more partition, so this choice maximises the number of partitions that stay put.
 * 3. Fill. Each member keeps its lowest-numbered claims up to its quota; the rest of the
 *    partitions (unclaimed, or released as excess) go in ascending order to the members still
 *    under quota, in memberId order.
 * Hence a joining member takes only the excess of the others, and when a member leaves only its
 * partitions move. The result depends only on the input as a set: members are sorted by memberId
 * (code-unit order) and each claim list is sorted first.
 *
 * Co-partitioning: the result is per partition number. The Kafka glue applies it to every
 * subscribed topic, so a member owning partition 3 owns partition 3 of each of them.
 */

export interface AssignInput {
  /** Number of partitions, numbered 0..partitionCount-1. A non-negative integer. */
  readonly partitionCount: number;
  /** The group members, each with the partitions it held before the rebalance. Ids are unique. */
  readonly members: ReadonlyArray<{ readonly memberId: string; readonly previous: readonly number[] }>;
}

/**
 * Assigns every partition 0..partitionCount-1 to exactly one member.
 *
 * Contract: balanced (sizes differ by at most 1); sticky (the number of partitions that stay
 * with a previous claimant is the largest any balanced assignment allows); deterministic (same
 * output for the same members and claims in any order). The map has one entry per member, in
 * memberId order, each with its partitions ascending (possibly none, when members outnumber
 * partitions). Zero members give an empty map. Duplicate memberIds or a partitionCount that is
 * not a non-negative integer are caller bugs and throw.
 */
export function assignSticky(input: AssignInput): Map<string, number[]> {
  const { partitionCount } = input;
  if (!Number.isSafeInteger(partitionCount) || partitionCount < 0) {
    throw new RangeError(
      `assignSticky: partitionCount must be a non-negative integer, got ${partitionCount}`,
    );
  }
  const ids = input.members.map((m) => m.memberId).sort(compareIds);
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === ids[i - 1]) throw new RangeError(`assignSticky: duplicate memberId ${ids[i]}`);
  }
  const result = new Map<string, number[]>();
  if (ids.length === 0) return result;

  const claims = resolveClaims(input, ids);
  const quota = quotas(ids, claims, partitionCount);

  const taken = new Uint8Array(partitionCount);
  for (const id of ids) {
    const kept = (claims.get(id) ?? []).slice(0, quota.get(id) ?? 0);
    for (const p of kept) taken[p] = 1;
    result.set(id, kept);
  }

  let next = 0;
  for (const id of ids) {
    const owned = result.get(id) ?? [];
    const want = quota.get(id) ?? 0;
    while (owned.length < want) {
      while (taken[next] === 1) next++;
      taken[next] = 1;
      owned.push(next);
    }
    owned.sort((a, b) => a - b);
    result.set(id, owned);
  }
  return result;
}

/** Member id -> its valid claims, ascending, each partition claimed by one member only. */
function resolveClaims(input: AssignInput, sortedIds: readonly string[]): Map<string, number[]> {
  const previousById = new Map(input.members.map((m) => [m.memberId, m.previous]));
  const claimedBy = new Map<number, string>();
  const claims = new Map<string, number[]>();
  // Smallest memberId first, so it wins every contested partition.
  for (const id of sortedIds) {
    const mine: number[] = [];
    for (const p of previousById.get(id) ?? []) {
      if (!Number.isInteger(p) || p < 0 || p >= input.partitionCount) continue;
      if (claimedBy.has(p)) continue;
      claimedBy.set(p, id);
      mine.push(p);
    }
    claims.set(
      id,
      mine.sort((a, b) => a - b),
    );
  }
  return claims;
}

/** Member id -> how many partitions it gets: floor(P/n), plus one for the P mod n best claimants. */
function quotas(
  sortedIds: readonly string[],
  claims: ReadonlyMap<string, readonly number[]>,
  partitionCount: number,
): Map<string, number> {
  const base = Math.floor(partitionCount / sortedIds.length);
  const extra = partitionCount % sortedIds.length;
  const byClaims = [...sortedIds].sort(
    (a, b) => (claims.get(b)?.length ?? 0) - (claims.get(a)?.length ?? 0) || compareIds(a, b),
  );
  return new Map(byClaims.map((id, rank) => [id, rank < extra ? base + 1 : base]));
}

/** Code-unit order, independent of locale, so every leader computes the same assignment. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
