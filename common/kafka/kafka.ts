/**
 * The project's own Kafka port. Gateway, router and tools talk to Kafka only through these
 * interfaces, so the client library (today KafkaJS, in kafkajs.ts) can be replaced without
 * touching their logic. Offsets are decimal strings (int64 does not fit a JS number).
 */
import type { TopicSpec } from "../../schemas/topics.ts";

export interface OutRecord {
  readonly key: string;
  /** null: a tombstone (deletes the key from a compacted topic). */
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, string>>;
  /** Explicit partition; when absent, Kafka's default (murmur2 of the key, as the Java client). */
  readonly partition?: number;
  /** Event time in ms since the epoch; when absent, the produce time. */
  readonly timestampMs?: number;
}

export interface RecordPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface InRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly timestampMs: number;
}

export interface Producer {
  /**
   * Writes `records` to `topic` with acks=all through an idempotent producer. Resolves, with
   * one position per record in input order, only after Kafka has acknowledged every record.
   * Records of one call that land in the same partition keep their relative order. A
   * rejection (KafkaError) means the caller must treat every record of the call as not
   * written: no record of a failed call may be acknowledged to anyone.
   */
  send(topic: string, records: readonly OutRecord[]): Promise<RecordPosition[]>;
  /** Flushes nothing further; waits for in-flight sends. Safe to call twice. */
  close(): Promise<void>;
}

export interface Batch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly InRecord[];
  /** Offset of the next record Kafka will write in this partition. */
  readonly highWatermark: string;
}

export interface GroupConsumerOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Where a partition with no committed offset starts. */
  readonly fromBeginning: boolean;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** Custom assignment protocols, in preference order (library-specific objects). */
  readonly assigners?: readonly unknown[];
  /**
   * Commit offsets after every handled batch (one round trip to the group coordinator per
   * batch). False: the owner commits with `commit` at its own pace.
   */
  readonly autoCommit: boolean;
}

export interface GroupConsumerHandlers {
  /**
   * Called with the records of one partition, in offset order. Batches of one partition are
   * never handled concurrently. A rejection is logged and the batch is retried.
   */
  eachBatch(batch: Batch): Promise<void>;
  /** Called after every (re)join with this member's partitions per topic. */
  onAssignment?(assignment: Readonly<Record<string, readonly number[]>>, memberId: string): void;
  /** Called when the consumer crashed and will not restart by itself. */
  onCrash?(error: Error): void;
  /**
   * Called after each fetched batch of a partition, also one that held only transaction
   * markers or aborted records (which never reach eachBatch): `lastOffset` is the batch's last
   * offset, markers included, and `highWatermark` the partition's at the fetch.
   */
  onBatchEnd?(topic: string, partition: number, lastOffset: string, highWatermark: string): void;
}

export interface GroupConsumer {
  /** Joins the group and starts delivering batches; resolves once running. */
  run(handlers: GroupConsumerHandlers): Promise<void>;
  /**
   * Commits `nextOffset` (the next record to read) for a partition this member owns. Rejects
   * with a KafkaError when the group is rebalancing or the partition moved: the new owner then
   * starts from the previous commit, so a failed commit only means some records are read twice.
   * `metadata` is stored with the offset (Kafka's commit metadata) and read back by
   * `Admin.committedOffsets`.
   */
  commit(topic: string, partition: number, nextOffset: string, metadata?: string): Promise<void>;
  /** Next fetch of this partition starts at `offset` (only for an assigned partition). */
  seek(topic: string, partition: number, offset: string): void;
  pause(topic: string, partitions: readonly number[]): void;
  resume(topic: string, partitions: readonly number[]): void;
  /** Leaves the group (partitions move at once, no session timeout). Safe to call twice. */
  close(): Promise<void>;
}

export interface GroupMember {
  readonly memberId: string;
  readonly clientId: string;
  readonly host: string;
  readonly metadata: Buffer;
  readonly assignment: Buffer;
}

export interface GroupState {
  readonly groupId: string;
  /** Kafka's group state: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead. */
  readonly state: string;
  readonly protocol: string;
  readonly members: readonly GroupMember[];
}

export interface PartitionOffsets {
  readonly partition: number;
  /** First offset still in the log (retention moves it). */
  readonly low: string;
  /** Offset the next record will get. */
  readonly high: string;
}

export type EnsureOutcome =
  | { readonly topic: string; readonly action: "created" | "exists"; readonly partitions: number }
  | {
      readonly topic: string;
      readonly action: "mismatch";
      readonly partitions: number;
      readonly expectedPartitions: number;
    };

export interface ClusterInfo {
  readonly clusterId: string;
  readonly brokers: readonly { readonly nodeId: number; readonly host: string; readonly port: number }[];
  readonly controllerId: number | null;
}

export interface PartitionReplicas {
  readonly partition: number;
  /** Node id of the leader; -1 while the partition has none. */
  readonly leader: number;
  /** Node ids holding a replica (the replication factor is their count). */
  readonly replicas: readonly number[];
  /** Node ids of the in-sync replicas. */
  readonly isr: readonly number[];
}

export interface TopicDescription {
  readonly topic: string;
  readonly partitions: readonly PartitionReplicas[];
  /**
   * The topic's effective configuration: its own overrides and what it inherits from the
   * brokers' settings and Kafka's defaults (e.g. cleanup.policy, retention.ms,
   * min.insync.replicas, unclean.leader.election.enable, max.message.bytes).
   */
  readonly configs: Readonly<Record<string, string>>;
}

export interface Admin {
  /** One real metadata round trip; rejects with KafkaUnavailableError when no broker answers. */
  describeCluster(): Promise<ClusterInfo>;
  /**
   * Creates the missing topics and leaves existing ones alone (idempotent, safe to race with
   * another process doing the same). An existing topic with another partition count is
   * reported as "mismatch", never altered.
   */
  ensureTopics(specs: readonly TopicSpec[]): Promise<EnsureOutcome[]>;
  listTopics(): Promise<string[]>;
  deleteTopics(names: readonly string[]): Promise<void>;
  partitionCount(topic: string): Promise<number | null>;
  partitionOffsets(topic: string): Promise<PartitionOffsets[]>;
  /** Per partition, the first offset whose timestamp is >= `timestampMs` (high when none). */
  offsetsForTime(topic: string, timestampMs: number): Promise<{ partition: number; offset: string }[]>;
  describeGroup(groupId: string): Promise<GroupState>;
  /** Replica placement and effective configuration of each topic that exists; missing ones are left out. */
  describeTopics(topics: readonly string[]): Promise<TopicDescription[]>;
  /** Effective configuration of one broker (its static and dynamic settings over Kafka's defaults). */
  describeBrokerConfigs(nodeId: number): Promise<Readonly<Record<string, string>>>;
  /** The group's committed offset per partition of `topic` ("-1" where none). */
  committedOffsets(
    groupId: string,
    topic: string,
  ): Promise<{ partition: number; offset: string; metadata: string | null }[]>;
  close(): Promise<void>;
}

/**
 * One Kafka transaction: its records and its consumer-offset commit become visible together
 * (to read_committed consumers, which every consumer of this port is) or not at all.
 */
export interface Transaction {
  /** Adds records; resolves when Kafka has them (still invisible until commit). */
  send(topic: string, records: readonly OutRecord[]): Promise<RecordPosition[]>;
  /** Commits `nextOffset` for the group's partition as part of this transaction. */
  sendOffsets(groupId: string, topic: string, partition: number, nextOffset: string): Promise<void>;
  commit(): Promise<void>;
  /** Drops everything sent in this transaction. Never rejects. */
  abort(): Promise<void>;
}

/**
 * A producer with a transactional id. One transaction at a time. A second producer with the same
 * id fences this one: its later calls reject (KafkaError, not retriable).
 */
export interface TransactionalProducer {
  transaction(): Promise<Transaction>;
  /** Safe to call twice. */
  close(): Promise<void>;
}

/** A connection factory for one Kafka cluster. */
export interface Kafka {
  admin(): Promise<Admin>;
  producer(opts?: { readonly transactionalId?: string }): Promise<Producer>;
  transactionalProducer(transactionalId: string): Promise<TransactionalProducer>;
  consumer(opts: GroupConsumerOptions): GroupConsumer;
}
