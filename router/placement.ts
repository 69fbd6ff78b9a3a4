/**
 * Where a user should connect: the owner of partition(user) of the deliveries topic, as the
 * gateways' consumer group says. Ownership is read from Kafka only (describeGroup through the
 * Admin port) and cached; nothing is shared between routers.
 *
 * How the cache stays fresh:
 * - A read runs every `refreshMs`, and on demand when a request finds no owner or the last read
 *   saw a group that was not Stable. One read is in flight at a time and reads start at most once
 *   per `minRefreshIntervalMs`; every caller in between shares the in-flight or the next read.
 * - Kafka leaves the assignment out of a group description while the group rebalances. Then the
 *   last owners are kept for the members still in the group and dropped for members that left:
 *   the sticky assignor leaves a staying member its partitions, so only the users of a departed
 *   gateway get 503 until the new assignment is Stable.
 * - A request whose partition is about to move (its owner refuses connections, or the group is
 *   rebalancing) is held, up to `holdMs`, re-checked after every read, and answered as soon as
 *   the partition has a reachable owner. Clients then connect the moment the move is done instead
 *   of at their next retry, and the router serves one answer per client instead of a 503 every
 *   retry hint.
 * - When Kafka does not answer, the last good ownership is served for up to `maxStaleMs`, then
 *   lookups answer `unavailable`. Reads back off exponentially while they fail (up to
 *   MAX_FAILURE_BACKOFF_MS). The admin client is dropped after a failed read and reopened by the
 *   next one, so the router recovers by itself when Kafka returns.
 */
import type { Admin, GroupState } from "../common/kafka/kafka.ts";
import { ownershipFromGroup, type PartitionOwner } from "../common/kafka/sticky-assigner.ts";
import type { Logger } from "../common/log.ts";
import { partitionForKey } from "../schemas/partition.ts";
import { Liveness } from "./liveness.ts";

/** Longest pause between reads while Kafka keeps failing (unless refreshMs is longer). */
export const MAX_FAILURE_BACKOFF_MS = 5_000;

export interface PlacementOptions {
  /** The gateways' consumer group. */
  readonly groupId: string;
  /** The deliveries topic: its partitions are the unit of ownership. */
  readonly topic: string;
  readonly refreshMs: number;
  readonly minRefreshIntervalMs: number;
  readonly topicRefreshMs: number;
  readonly maxStaleMs: number;
  readonly lookupWaitMs: number;
  /** How long a request for a partition that is about to move may be held for its new owner. */
  readonly holdMs: number;
  readonly log: Logger;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export type Lookup =
  | { readonly kind: "owner"; readonly partition: number; readonly url: string }
  /** `partition` is null when the deliveries topic does not exist (no gateway has started). */
  | { readonly kind: "no_owner"; readonly partition: number | null; readonly reason: string }
  | { readonly kind: "unavailable"; readonly reason: string };

export interface PlacementStatus {
  /** Kafka's state of the gateways' group at the last good read; null before one. */
  readonly groupState: string | null;
  readonly members: number;
  readonly ownedPartitions: number;
  readonly partitionCount: number | null;
  /** Age of the last good read; null before one. */
  readonly ageMs: number | null;
  /** /v1/connect requests held right now for their partition's new owner. */
  readonly held: number;
}

interface GroupSnapshot {
  readonly state: string;
  readonly members: number;
  readonly owners: ReadonlyMap<number, PartitionOwner>;
  readonly readAtMs: number;
}

export class Placement {
  readonly #openAdmin: () => Promise<Admin>;
  readonly #opts: PlacementOptions;
  readonly #now: () => number;
  readonly #log: Logger;
  #admin: Promise<Admin> | null = null;
  readonly #liveness = new Liveness();
  #group: GroupSnapshot | null = null;
  #partitionCount: number | null = null;
  #topicReadAtMs = -Infinity;
  /** Why the last read failed; null when it succeeded (or none ran yet). */
  #lastError: string | null = null;
  /** Reads failed in a row: while Kafka is down, reads back off (and KafkaJS logs less). */
  #failures = 0;
  #problemsSeen = "[]";
  #inFlight: Promise<void> | null = null;
  #scheduled: { readonly promise: Promise<void>; readonly timer: NodeJS.Timeout; fire(): void } | null = null;
  #lastStartMs = -Infinity;
  #interval: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #firstAttempt: Promise<void>;
  #markFirstAttempt: () => void = () => {};
  /** Resolves on releaseHeld() or close(): held requests are answered with what is known. */
  readonly #released: Promise<void>;
  #markReleased: () => void = () => {};
  #releasing = false;
  /** Requests being held for a partition's new owner. */
  #held = 0;

  constructor(openAdmin: () => Promise<Admin>, opts: PlacementOptions) {
    this.#openAdmin = openAdmin;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log;
    this.#firstAttempt = new Promise((done) => (this.#markFirstAttempt = done));
    this.#released = new Promise((done) => (this.#markReleased = done));
  }

  /** Starts the periodic reads, the first one at once. */
  start(): void {
    if (this.#closed || this.#interval !== null) return;
    void this.refresh();
    this.#interval = setInterval(() => void this.refresh(), this.#opts.refreshMs);
    this.#interval.unref();
  }

  /** Resolves once the first read has finished, whether it succeeded or not. */
  firstAttempt(): Promise<void> {
    return this.#firstAttempt;
  }

  /**
   * Asks for a read of the group. Resolves when the read in flight, or else the next one (at
   * once or when the rate limit allows), has finished. Never rejects.
   */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#inFlight !== null) return this.#inFlight;
    if (this.#scheduled !== null) return this.#scheduled.promise;
    const waitMs = this.#lastStartMs + this.#spacingMs() - this.#now();
    if (waitMs <= 0) return this.#startRead();
    let fire: () => void = () => {};
    const promise = new Promise<void>((done) => {
      fire = () => {
        this.#scheduled = null;
        void this.#startRead().then(done);
      };
    });
    const timer = setTimeout(() => fire(), waitMs);
    this.#scheduled = { promise, timer, fire };
    return promise;
  }

  /**
   * The owner of `user`'s partition. With no owner in the cache (or no usable cache), waits up
   * to `lookupWaitMs` for a fresh read and answers from it; when that read says the partition is
   * about to move, holds on (see the header) up to `holdMs`. Never rejects.
   */
  async lookup(user: string): Promise<Lookup> {
    if (this.#closed) return { kind: "unavailable", reason: "the router is shutting down" };
    const first = this.#answer(user);
    if (first.kind === "owner") {
      if (this.#group?.state !== "Stable") void this.refresh();
      return first;
    }
    if (first.kind === "unavailable" && this.#failures > 0) {
      // Kafka is known to be failing: answer now, the backed-off reads will notice its return.
      void this.refresh();
      return first;
    }
    await this.#waitForRead();
    const answer = this.#answer(user);
    return this.#opts.holdMs > 0 && this.#moving(answer) ? this.#hold(user) : answer;
  }

  /** Answers held requests now with what is known, and holds no more (the router is stopping). */
  releaseHeld(): void {
    this.#releasing = true;
    this.#markReleased();
  }

  /** Null when lookups can be answered from Kafka's word; otherwise why not. */
  notReadyReason(): string | null {
    const unusable = this.#unusableReason();
    if (unusable !== null) return unusable;
    if (this.#partitionCount === null) return `topic ${this.#opts.topic} does not exist yet`;
    return null;
  }

  status(): PlacementStatus {
    const g = this.#group;
    return {
      groupState: g?.state ?? null,
      members: g?.members ?? 0,
      ownedPartitions: g?.owners.size ?? 0,
      partitionCount: this.#partitionCount,
      ageMs: g === null ? null : Math.max(0, this.#now() - g.readAtMs),
      held: this.#held,
    };
  }

  /** Stops reading and closes the admin client. Lookups then answer `unavailable`. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.releaseHeld();
    if (this.#interval !== null) clearInterval(this.#interval);
    const scheduled = this.#scheduled;
    if (scheduled !== null) {
      clearTimeout(scheduled.timer);
      // Its waiters resolve at once: the read it starts returns immediately once closed.
      scheduled.fire();
    }
    this.#markFirstAttempt();
    await this.#dropAdmin();
  }

  #answer(user: string): Lookup {
    const unusable = this.#unusableReason();
    if (unusable !== null) return { kind: "unavailable", reason: unusable };
    const group = this.#group!;
    const count = this.#partitionCount;
    if (count === null) {
      return {
        kind: "no_owner",
        partition: null,
        reason: `topic ${this.#opts.topic} does not exist: no gateway has started yet`,
      };
    }
    const partition = partitionForKey(user, count);
    const owner = group.owners.get(partition);
    if (owner === undefined) {
      return {
        kind: "no_owner",
        partition,
        reason: `no gateway owns partition ${partition} right now (gateway group ${group.state}, ${group.members} members)`,
      };
    }
    if (this.#liveness.isDown(owner.url)) {
      return {
        kind: "no_owner",
        partition,
        reason: `the gateway that owns partition ${partition} refuses connections; its partitions move when its Kafka session expires`,
      };
    }
    return { kind: "owner", partition, url: owner.url };
  }

  /** A partition with an owner that is down, or in a group that is rebalancing: a move is coming. */
  #moving(answer: Lookup): boolean {
    if (answer.kind !== "no_owner" || answer.partition === null || this.#releasing) return false;
    const g = this.#group;
    if (g === null) return false;
    if (g.state !== "Stable") return g.members > 0;
    const owner = g.owners.get(answer.partition);
    return owner !== undefined && this.#liveness.isDown(owner.url);
  }

  /** Waits for reads until `user`'s partition has a reachable owner, or `holdMs` passes. */
  async #hold(user: string): Promise<Lookup> {
    let expired = false;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((done) => {
      timer = setTimeout(() => {
        expired = true;
        done();
      }, this.#opts.holdMs);
    });
    this.#held += 1;
    try {
      let answer = this.#answer(user);
      while (!expired && this.#moving(answer)) {
        await Promise.race([this.#nextRead(), bound, this.#released]);
        answer = this.#answer(user);
      }
      return answer;
    } finally {
      this.#held -= 1;
      clearTimeout(timer);
    }
  }

  /** A read that starts after now (not the one in flight, which may predate the caller's state). */
  async #nextRead(): Promise<void> {
    const inFlight = this.#inFlight;
    if (inFlight !== null) await inFlight;
    // refresh() keeps reads at least minRefreshIntervalMs apart (more while they fail), whatever
    // the number of held requests, so this loop cannot spin.
    await this.refresh();
  }

  #unusableReason(): string | null {
    if (this.#closed) return "the router is shutting down";
    const g = this.#group;
    const kafka = this.#lastError === null ? "" : `: ${this.#lastError}`;
    if (g === null) return this.#lastError === null ? "ownership not read yet" : `Kafka unreachable${kafka}`;
    const ageMs = this.#now() - g.readAtMs;
    if (ageMs > this.#opts.maxStaleMs) return `ownership last read ${ageMs} ms ago${kafka}`;
    return null;
  }

  /** Least time between the starts of two reads: the rate limit, growing while reads fail. */
  #spacingMs(): number {
    const { minRefreshIntervalMs, refreshMs } = this.#opts;
    if (this.#failures === 0) return minRefreshIntervalMs;
    const capMs = Math.max(refreshMs, MAX_FAILURE_BACKOFF_MS);
    return Math.min(minRefreshIntervalMs * 2 ** Math.min(this.#failures, 20), capMs);
  }

  async #waitForRead(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((done) => {
      timer = setTimeout(done, this.#opts.lookupWaitMs);
    });
    try {
      await Promise.race([this.refresh(), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  #startRead(): Promise<void> {
    if (this.#inFlight !== null) return this.#inFlight;
    if (this.#closed) return Promise.resolve();
    this.#lastStartMs = this.#now();
    const read = this.#read().finally(() => {
      this.#inFlight = null;
      this.#markFirstAttempt();
    });
    this.#inFlight = read;
    return read;
  }

  /** One read of the group (and, when due, of the partition count). Never rejects. */
  async #read(): Promise<void> {
    const { groupId, topic, topicRefreshMs } = this.#opts;
    try {
      const admin = await (this.#admin ??= this.#openAdmin());
      const startedMs = this.#now();
      const topicDue = this.#partitionCount === null || startedMs - this.#topicReadAtMs >= topicRefreshMs;
      const [group, count] = await Promise.all([
        admin.describeGroup(groupId),
        topicDue ? admin.partitionCount(topic) : Promise.resolve(undefined),
      ]);
      if (this.#closed) return;
      this.#applyGroup(group, startedMs);
      if (count !== undefined) this.#applyPartitionCount(count, startedMs);
      if (this.#lastError !== null)
        this.#log.info({ group: groupId }, "reading ownership from Kafka works again");
      this.#lastError = null;
      this.#failures = 0;
    } catch (e) {
      if (this.#closed) return;
      if (this.#lastError === null) {
        this.#log.warn(
          { err: e, group: groupId },
          "reading ownership from Kafka failed; serving the last read",
        );
      }
      this.#lastError = e instanceof Error ? e.message : String(e);
      this.#failures += 1;
      // A fresh client next time: the next read reconnects instead of reusing a broken one.
      await this.#dropAdmin();
    }
  }

  #applyGroup(group: GroupState, readAtMs: number): void {
    let owners: Map<number, PartitionOwner>;
    if (group.state === "Stable") {
      const read = ownershipFromGroup(
        {
          protocol: group.protocol,
          members: group.members.map((m) => ({
            memberId: m.memberId,
            memberMetadata: m.metadata,
            memberAssignment: m.assignment,
          })),
        },
        this.#opts.topic,
      );
      owners = read.owners;
      const seen = JSON.stringify(read.problems);
      if (seen !== this.#problemsSeen && read.problems.length > 0) {
        this.#log.warn({ problems: read.problems, group: group.groupId }, "unreadable gateway group members");
      }
      this.#problemsSeen = seen;
    } else {
      const present = new Set(group.members.map((m) => m.memberId));
      owners = new Map([...(this.#group?.owners ?? [])].filter(([, o]) => present.has(o.memberId)));
    }
    const previous = this.#group;
    if (previous?.state !== group.state || previous.members !== group.members.length) {
      this.#log.info(
        { group: group.groupId, state: group.state, members: group.members.length, owned: owners.size },
        "gateway group changed",
      );
    }
    this.#group = { state: group.state, members: group.members.length, owners, readAtMs };
    const urls = [...owners.values()].map((o) => o.url);
    this.#liveness.retain(urls);
    this.#liveness.probe(urls);
  }

  #applyPartitionCount(count: number | null, readAtMs: number): void {
    if (count !== this.#partitionCount) {
      this.#log.info(
        { topic: this.#opts.topic, partitions: count, previous: this.#partitionCount },
        count === null ? "deliveries topic not found" : "deliveries partition count read",
      );
    }
    this.#partitionCount = count;
    this.#topicReadAtMs = readAtMs;
  }

  async #dropAdmin(): Promise<void> {
    const admin = this.#admin;
    this.#admin = null;
    if (admin === null) return;
    try {
      await (await admin).close();
    } catch {
      // Connecting failed or the connection is already broken: nothing left to close.
    }
  }
}
