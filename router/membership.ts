/**
 * The router's membership of the rooms in its partitions: per partition, room → user →
 * Membership. Changes are staged per batch (`Staged`) and applied only once the transaction
 * that wrote them committed, so a failed batch leaves the state as Kafka has it.
 */
import type { Membership } from "../schemas/records.ts";
import type { MembershipChange } from "./fanout-plan.ts";

type Rooms = Map<string, Map<string, Membership>>;

export class MembershipStore {
  readonly #partitions = new Map<number, Rooms>();

  /** Starts partition `p` empty (before a rebuild reads it from rt.room-members). */
  reset(p: number): void {
    this.#partitions.set(p, new Map());
  }

  drop(p: number): void {
    this.#partitions.delete(p);
  }

  has(p: number): boolean {
    return this.#partitions.has(p);
  }

  members(p: number, room: string): ReadonlyMap<string, Membership> | undefined {
    return this.#partitions.get(p)?.get(room);
  }

  apply(p: number, c: MembershipChange): void {
    const rooms = this.#partitions.get(p);
    if (rooms === undefined) return;
    let members = rooms.get(c.room);
    if (c.membership === null) {
      members?.delete(c.user);
      if (members?.size === 0) rooms.delete(c.room);
      return;
    }
    if (members === undefined) rooms.set(c.room, (members = new Map()));
    members.set(c.user, c.membership);
  }

  /** Rooms and memberships held, for stats. */
  counts(): { partitions: number; rooms: number; members: number } {
    let rooms = 0;
    let members = 0;
    for (const r of this.#partitions.values()) {
      rooms += r.size;
      for (const m of r.values()) members += m.size;
    }
    return { partitions: this.#partitions.size, rooms, members };
  }
}

/** Membership changes of one batch not yet committed, read through over the store. */
export class Staged {
  readonly #changes = new Map<string, Map<string, Membership | null>>();
  readonly #list: MembershipChange[] = [];
  /** Merged views, rebuilt only after a change to their room (a big room is copied once). */
  readonly #merged = new Map<string, Map<string, Membership>>();

  constructor(
    private readonly store: MembershipStore,
    private readonly partition: number,
  ) {}

  /** The room's members with the staged changes on top. */
  members(room: string): ReadonlyMap<string, Membership> | undefined {
    const base = this.store.members(this.partition, room);
    const staged = this.#changes.get(room);
    if (staged === undefined) return base;
    let merged = this.#merged.get(room);
    if (merged !== undefined) return merged;
    merged = new Map(base ?? []);
    for (const [user, m] of staged) {
      if (m === null) merged.delete(user);
      else merged.set(user, m);
    }
    this.#merged.set(room, merged);
    return merged;
  }

  stage(c: MembershipChange): void {
    let room = this.#changes.get(c.room);
    if (room === undefined) this.#changes.set(c.room, (room = new Map()));
    room.set(c.user, c.membership);
    this.#merged.delete(c.room);
    this.#list.push(c);
  }

  get changes(): readonly MembershipChange[] {
    return this.#list;
  }

  /** After the commit: the changes become the store's. */
  commit(): void {
    for (const c of this.#list) this.store.apply(this.partition, c);
    this.discard();
  }

  discard(): void {
    this.#changes.clear();
    this.#merged.clear();
    this.#list.length = 0;
  }
}
