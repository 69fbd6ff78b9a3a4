/**
 * Which partitions of the deliveries topic this gateway owns, how far it has delivered in
 * each, and who owns the others. Ownership comes from the consumer group's assignment (our
 * own via the join event, the others' from Kafka's group description): no other store.
 */
import type { Admin } from "../common/kafka/kafka.ts";
import { ownershipFromGroup } from "../common/kafka/sticky-assigner.ts";
import type { Logger } from "../common/log.ts";

const OWNERS_TTL_MS = 10_000;
const OWNERS_MIN_REFRESH_MS = 250;

export interface AssignmentChange {
  readonly gained: readonly number[];
  readonly lost: readonly number[];
}

export class Ownership {
  #owned = new Set<number>();
  /** Per owned partition: offset of the last record handled (-1: none yet). */
  readonly #position = new Map<number, bigint>();
  readonly #ready = new Map<number, Promise<void>>();
  #owners = new Map<number, string>();
  #ownersAt = 0;
  #ownersRefresh: Promise<void> | null = null;

  constructor(
    private readonly admin: Admin,
    private readonly groupId: string,
    private readonly topic: string,
    private readonly log: Logger,
    /** The deliveries log's epoch: offsets committed under another one belong to an older log. */
    private readonly epoch: string,
  ) {}

  get owned(): ReadonlySet<number> {
    return this.#owned;
  }

  owns(partition: number): boolean {
    return this.#owned.has(partition);
  }

  /** Applies this member's new assignment; returns what changed. */
  assign(partitions: readonly number[]): AssignmentChange {
    const next = new Set(partitions);
    const gained = [...next].filter((p) => !this.#owned.has(p));
    const lost = [...this.#owned].filter((p) => !next.has(p));
    this.#owned = next;
    for (const p of lost) {
      this.#position.delete(p);
      this.#ready.delete(p);
    }
    if (gained.length > 0) {
      const init = this.#initPositions(gained);
      for (const p of gained) this.#ready.set(p, init);
    }
    // Every rebalance reassigns every member, so the others' ownership changed too.
    this.#ownersAt = 0;
    void this.refreshOwners();
    return { gained, lost };
  }

  /**
   * Where live delivery of a partition starts: the group's committed offset (where the
   * consumer resumes) or, with none, the end of the log (where a new group starts). A commit
   * made under another epoch (the gateway commits with its epoch as metadata) is from a topic
   * that was deleted and created again: it counts as none.
   */
  async #initPositions(partitions: readonly number[]): Promise<void> {
    try {
      const [committed, ends] = await Promise.all([
        this.admin.committedOffsets(this.groupId, this.topic),
        this.admin.partitionOffsets(this.topic),
      ]);
      for (const p of partitions) {
        if (this.#position.has(p) || !this.#owned.has(p)) continue;
        const mine = committed.find((x) => x.partition === p);
        // No metadata ("" or null): a commit from before epochs were recorded, taken as is.
        const foreign = mine?.metadata !== undefined && mine.metadata !== null && mine.metadata !== "";
        const c = mine === undefined || (foreign && mine.metadata !== this.epoch) ? "-1" : mine.offset;
        const next = BigInt(c) >= 0n ? BigInt(c) : BigInt(ends.find((x) => x.partition === p)?.high ?? "0");
        this.#position.set(p, next - 1n);
      }
    } catch (e) {
      this.log.warn(
        { err: e, partitions },
        "reading start offsets failed; positions come from the first batch",
      );
    }
  }

  /** Resolves once the partition's start position is known (immediately when not owned). */
  async ready(partition: number): Promise<void> {
    await this.#ready.get(partition);
  }

  /** Offset of the last record handled in `partition`, or -1n; undefined when not owned. */
  position(partition: number): bigint | undefined {
    return this.#owned.has(partition) ? (this.#position.get(partition) ?? -1n) : undefined;
  }

  advance(partition: number, offset: bigint): void {
    if (!this.#owned.has(partition)) return;
    const cur = this.#position.get(partition);
    if (cur === undefined || offset > cur) this.#position.set(partition, offset);
  }

  /** The WebSocket URL of the gateway that owns `partition`, or null when nobody does. */
  async ownerUrl(partition: number): Promise<string | null> {
    const now = Date.now();
    const stale = now - this.#ownersAt > OWNERS_TTL_MS;
    const missing = !this.#owners.has(partition) && now - this.#ownersAt > OWNERS_MIN_REFRESH_MS;
    if (stale || missing) await this.refreshOwners();
    return this.#owners.get(partition) ?? null;
  }

  refreshOwners(): Promise<void> {
    this.#ownersRefresh ??= (async () => {
      try {
        const group = await this.admin.describeGroup(this.groupId);
        const { owners, problems } = ownershipFromGroup(
          {
            protocol: group.protocol,
            members: group.members.map((m) => ({
              memberId: m.memberId,
              memberMetadata: m.metadata,
              memberAssignment: m.assignment,
            })),
          },
          this.topic,
        );
        if (problems.length > 0) this.log.warn({ problems }, "unreadable group members");
        this.#owners = new Map([...owners].map(([p, o]) => [p, o.url]));
        this.#ownersAt = Date.now();
      } catch (e) {
        this.log.warn({ err: e }, "reading the group's ownership failed");
      } finally {
        this.#ownersRefresh = null;
      }
    })();
    return this.#ownersRefresh;
  }
}
