/**
 * The router's room fanout: consume-transform-produce with Kafka transactions.
 *
 * Routers form the consumer group `<prefix>rt-router` on rt.room-events. For each partition a
 * router is assigned it first rebuilds that partition's membership from rt.room-members (the
 * compacted topic has the same partition numbers: a room's log and its members share partition
 * p), then applies the room's log in order (fanout-plan.ts). The deliveries of a batch, its
 * membership changes and the batch's consumed offset go into Kafka in one transaction, so a
 * router that dies mid-batch leaves nothing half-done: the next owner starts from the committed
 * offset with the membership as of that offset, and nothing is fanned out twice or missed.
 *
 * Rebuild: a reader of its own (a private group on rt.room-members, never committed) seeks
 * partition p to the start, and the router writes a fence record (a tombstone under a unique
 * key) to p; once the reader reaches the fence, every membership committed before the gain has
 * been read. Transactions a dead router left open hold the reader back until Kafka aborts them
 * (fenced by a restart with the same RT_ROUTER_ID, or at the transaction timeout).
 */
import { randomBytes } from "node:crypto";
import type { Span } from "@opentelemetry/api";
import type {
  Batch,
  GroupConsumer,
  InRecord,
  Kafka,
  OutRecord,
  Producer,
  TransactionalProducer,
} from "../common/kafka/kafka.ts";
import type { Logger } from "../common/log.ts";
import { encodeDelivery } from "../schemas/codec.ts";
import { partitionForKey } from "../schemas/partition.ts";
import {
  membershipCodec,
  membershipKey,
  parseMembershipKey,
  roomEventCodec,
  type Membership,
} from "../schemas/records.ts";
import type { TopicNames } from "../schemas/topics.ts";
import { planRoomEvent, type FanoutLimits } from "./fanout-plan.ts";
import { FanoutTracing } from "./fanout-tracing.ts";
import { MembershipStore, Staged } from "./membership.ts";

export interface FanoutOptions {
  readonly kafka: Kafka;
  readonly names: TopicNames;
  readonly groupId: string;
  /** Stable per router instance: a restart with the same id fences (aborts) its open transaction. */
  readonly routerId: string;
  readonly deliveriesPartitions: number;
  readonly roomPartitions: number;
  readonly limits: FanoutLimits;
  /** Deliveries per transaction; a batch that would fan out more is split between records. */
  readonly maxTxnRecords: number;
  readonly sessionTimeoutMs: number;
  /** The plain producer for fence records. */
  readonly producer: Producer;
  /** Spans of room events' fanout (fanout-tracing.ts). */
  readonly tracing: FanoutTracing;
  readonly log: Logger;
}

export interface FanoutStats {
  owned: number[];
  rebuilding: number[];
  events: number;
  deliveries: number;
  refused: number;
  undecodable: number;
  transactions: number;
  aborted: number;
  rooms: number;
  members: number;
}

export interface Fanout {
  stats(): FanoutStats;
  /** null when fanning out; otherwise why not. */
  notReadyReason(): string | null;
  /** Leaves the groups and closes the producers. Safe to call twice. */
  close(): Promise<void>;
}

/** Deliveries written per produce call inside a transaction: keeps requests under message.max.bytes. */
const CHUNK = 500;
const FENCE_PREFIX = "~fence~";

interface Rebuild {
  /** Offset of the fence record; the reader must pass it. */
  fence: bigint | null;
  readonly done: Promise<void>;
  resolve(): void;
}

export async function startFanout(o: FanoutOptions): Promise<Fanout> {
  const { kafka, names, log } = o;
  const store = new MembershipStore();
  const owned = new Set<number>();
  const rebuilds = new Map<number, Rebuild>();
  /** Per owned partition, the next room-events offset not yet committed by this router. */
  const nextOffset = new Map<number, bigint>();
  const counters = { events: 0, deliveries: 0, refused: 0, undecodable: 0, transactions: 0, aborted: 0 };
  let crashed: Error | null = null;
  const readers = new Set<GroupConsumer>();

  const txProducer: TransactionalProducer = await kafka.transactionalProducer(`${o.groupId}.${o.routerId}`);

  // ---- rebuilding membership ----
  /**
   * Reads rt.room-members' partitions `ps` from the start, in a throwaway group of its own, until
   * each passes its fence; then leaves the group. One reader per assignment, however many
   * partitions it gained.
   */
  function rebuild(ps: readonly number[]): void {
    const pending = new Map<number, Rebuild>();
    const seen = new Map<number, bigint>();
    for (const p of ps) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      const rb: Rebuild = { fence: null, done, resolve };
      rebuilds.set(p, rb);
      pending.set(p, rb);
      store.reset(p);
    }
    const reader: GroupConsumer = kafka.consumer({
      groupId: `${o.groupId}.members.${o.routerId}.${randomBytes(4).toString("hex")}`,
      topics: [names.roomMembers],
      fromBeginning: true,
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 3_000,
      autoCommit: false,
    });
    let closed = false;
    const finish = (p: number) => {
      const rb = pending.get(p);
      if (rb === undefined) return;
      pending.delete(p);
      if (rebuilds.get(p) === rb) {
        rebuilds.delete(p);
        log.info({ partition: p, ...store.counts() }, "room membership rebuilt");
      }
      rb.resolve();
      if (pending.size === 0 && !closed) {
        closed = true;
        readers.delete(reader);
        void reader.close();
      }
    };
    const check = (p: number) => {
      const rb = pending.get(p);
      if (rb === undefined) return;
      // Lost meanwhile: nothing to wait for.
      if (rebuilds.get(p) !== rb) return finish(p);
      const at = seen.get(p);
      if (rb.fence !== null && at !== undefined && at >= rb.fence) finish(p);
    };
    readers.add(reader);
    void reader
      .run({
        eachBatch: async (batch) => {
          const p = batch.partition;
          const rb = pending.get(p);
          if (rb === undefined || rebuilds.get(p) !== rb) {
            check(p);
            return;
          }
          for (const r of batch.records) readMember(p, r);
          const last = batch.records.at(-1);
          if (last !== undefined) seen.set(p, BigInt(last.offset));
          check(p);
        },
        onCrash: (e) => {
          crashed = e;
          log.error({ err: e }, "membership reader stopped for good");
        },
      })
      .catch((e: unknown) => {
        crashed = e instanceof Error ? e : new Error(String(e));
        log.error({ err: e }, "membership reader did not start");
      });
    for (const [p, rb] of pending) void writeFence(p, rb, () => check(p));
  }

  async function writeFence(p: number, rb: Rebuild, then: () => void): Promise<void> {
    const key = `${FENCE_PREFIX}${o.routerId}~${randomBytes(6).toString("hex")}`;
    for (let attempt = 0; rebuilds.get(p) === rb; attempt++) {
      try {
        const [pos] = await o.producer.send(names.roomMembers, [{ key, value: null, partition: p }]);
        rb.fence = BigInt(pos!.offset);
        then();
        return;
      } catch (e) {
        log.warn({ err: e, partition: p, attempt }, "writing the rebuild fence failed; retrying");
        await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
      }
    }
    then();
  }

  function readMember(p: number, r: InRecord): void {
    if (r.key === null) return;
    const key = r.key.toString("utf8");
    if (key.startsWith(FENCE_PREFIX)) return;
    const parsed = parseMembershipKey(key);
    if (parsed === null) {
      log.warn({ partition: p, offset: r.offset }, "membership record with a bad key skipped");
      return;
    }
    if (r.value === null) {
      store.apply(p, { ...parsed, membership: null });
      return;
    }
    const m = membershipCodec.tryDecode(r.value);
    if (!m.ok || m.value.room !== parsed.room || m.value.user !== parsed.user) {
      log.warn({ partition: p, offset: r.offset }, "unreadable membership record skipped");
      return;
    }
    store.apply(p, { ...parsed, membership: m.value });
  }

  // ---- fanout ----
  async function handleBatch(batch: Batch): Promise<void> {
    const p = batch.partition;
    if (!owned.has(p)) return;
    const rb = rebuilds.get(p);
    if (rb !== undefined) await rb.done;
    if (!owned.has(p)) return;
    const staged = new Staged(store, p);
    let out: OutRecord[] = [];
    let spans: Span[] = [];
    let lastOffset: bigint | null = null;
    const flush = async () => {
      if (lastOffset === null) return;
      const upTo = lastOffset + 1n;
      try {
        await writeTransaction(p, out, staged, upTo);
      } catch (e) {
        FanoutTracing.end(spans, e);
        throw e;
      }
      FanoutTracing.end(spans);
      nextOffset.set(p, upTo);
      out = [];
      spans = [];
      lastOffset = null;
    };
    const skipBelow = nextOffset.get(p) ?? -1n;
    for (const record of batch.records) {
      const offset = BigInt(record.offset);
      if (offset < skipBelow) continue;
      const decoded = record.value === null ? null : roomEventCodec.tryDecode(record.value);
      if (decoded === null || !decoded.ok || record.key?.toString("utf8") !== decoded.value.room) {
        counters.undecodable += 1;
        log.warn({ partition: p, offset: record.offset }, "unreadable room event skipped");
      } else {
        const e = decoded.value;
        const plan = planRoomEvent(e, `${p}:${record.offset}`, staged.members(e.room), o.limits);
        counters.events += 1;
        if (plan.refused !== null) counters.refused += 1;
        if (plan.change !== null) staged.stage(plan.change);
        const { span, headers } = o.tracing.start(record, {
          room: e.room,
          eventType: e.kind === "message" ? e.type : e.kind,
          recipients: plan.deliveries.length,
          refused: plan.refused,
          groupId: o.groupId,
        });
        if (span !== null) spans.push(span);
        for (const d of plan.deliveries) {
          out.push({
            key: d.recipient,
            value: encodeDelivery(d),
            partition: partitionForKey(d.recipient, o.deliveriesPartitions),
            timestampMs: d.ts,
            headers,
          });
        }
      }
      lastOffset = offset;
      if (out.length >= o.maxTxnRecords) await flush();
    }
    await flush();
  }

  async function writeTransaction(p: number, out: OutRecord[], staged: Staged, upTo: bigint): Promise<void> {
    const txn = await txProducer.transaction();
    try {
      for (let i = 0; i < out.length; i += CHUNK) {
        await txn.send(names.deliveries, out.slice(i, i + CHUNK));
      }
      if (staged.changes.length > 0) {
        await txn.send(
          names.roomMembers,
          staged.changes.map((c) => ({
            key: membershipKey(c.room, c.user),
            value: c.membership === null ? null : membershipCodec.encode(c.membership as Membership),
            partition: p,
          })),
        );
      }
      await txn.sendOffsets(o.groupId, names.roomEvents, p, String(upTo));
      await txn.commit();
    } catch (e) {
      counters.aborted += 1;
      staged.discard();
      await txn.abort();
      log.warn({ err: e, partition: p }, "fanout transaction failed; the batch is retried");
      throw e;
    }
    counters.transactions += 1;
    counters.deliveries += out.length;
    staged.commit();
  }

  const consumer = kafka.consumer({
    groupId: o.groupId,
    topics: [names.roomEvents],
    fromBeginning: true,
    sessionTimeoutMs: o.sessionTimeoutMs,
    heartbeatIntervalMs: Math.max(300, Math.floor(o.sessionTimeoutMs / 3)),
    autoCommit: false,
  });
  await consumer.run({
    eachBatch: handleBatch,
    onAssignment: (assignment) => {
      const now = new Set(assignment[names.roomEvents] ?? []);
      const gained = [...now].filter((p) => !owned.has(p));
      const lost = [...owned].filter((p) => !now.has(p));
      for (const p of lost) {
        owned.delete(p);
        rebuilds.get(p)?.resolve();
        rebuilds.delete(p);
        store.drop(p);
        nextOffset.delete(p);
      }
      for (const p of gained) {
        owned.add(p);
        nextOffset.delete(p);
      }
      if (gained.length > 0) rebuild(gained);
      log.info({ owned: [...owned].sort((a, b) => a - b), gained, lost }, "room partitions assigned");
    },
    onCrash: (e) => {
      crashed = e;
      log.error({ err: e }, "fanout consumer stopped for good");
    },
  });

  let closing: Promise<void> | null = null;
  return {
    stats: () => ({
      owned: [...owned].sort((a, b) => a - b),
      rebuilding: [...rebuilds.keys()].sort((a, b) => a - b),
      ...counters,
      ...(({ rooms, members }) => ({ rooms, members }))(store.counts()),
    }),
    notReadyReason: () => (crashed === null ? null : `fanout stopped: ${crashed.message}`),
    close: () =>
      (closing ??= (async () => {
        for (const rb of rebuilds.values()) rb.resolve();
        await consumer.close();
        for (const r of readers) await r.close();
        await txProducer.close();
      })()),
  };
}
