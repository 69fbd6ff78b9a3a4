/**
 * The Kafka port (kafka.ts) implemented with KafkaJS 2.2.4. KafkaJS specifics stay here:
 * its loggers are routed to pino, its errors mapped to KafkaError, its offsets kept as strings.
 */
import {
  Kafka as KafkaJs,
  type ConfigResourceTypes,
  logLevel as KafkaJsLogLevel,
  type Admin as KafkaJsAdmin,
  type Consumer as KafkaJsConsumer,
  type IHeaders,
  type LogEntry,
  type PartitionAssigner,
  type Producer as KafkaJsProducer,
} from "kafkajs";
import type { Logger } from "../log.ts";
import type { TopicSpec } from "../../schemas/topics.ts";
import { KafkaError, kafkaRejected, kafkaUnavailable } from "./errors.ts";
import type {
  Admin,
  ClusterInfo,
  EnsureOutcome,
  GroupConsumer,
  GroupConsumerHandlers,
  GroupConsumerOptions,
  GroupState,
  InRecord,
  Kafka,
  OutRecord,
  PartitionOffsets,
  Producer,
  RecordPosition,
  TopicDescription,
  Transaction,
  TransactionalProducer,
} from "./kafka.ts";

export interface KafkaJsOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger: Logger;
  readonly connectionTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Retries of admin and consumer calls before a call fails (the producer retries forever). */
  readonly retries?: number;
}

function toKafkaError(e: unknown, what: string): KafkaError {
  if (e instanceof KafkaError) return e;
  const err = e as {
    name?: string;
    message?: string;
    retriable?: boolean;
    type?: string;
    errors?: readonly { topic?: string; message?: string; type?: string }[];
  };
  // KafkaJS's aggregate errors (e.g. "Topic creation errors") say what failed only inside.
  const inner = Array.isArray(err.errors)
    ? err.errors
        .map((x) => `${x.topic === undefined ? "" : `${x.topic}: `}${x.message ?? x.type ?? String(x)}`)
        .join("; ")
    : "";
  const message = `${what}: ${err.message ?? String(e)}${inner === "" ? "" : ` (${inner})`}`;
  const transient =
    err.retriable === true ||
    err.name === "KafkaJSConnectionError" ||
    err.name === "KafkaJSNumberOfRetriesExceeded" ||
    err.name === "KafkaJSRequestTimeoutError" ||
    err.name === "KafkaJSBrokerNotFound" ||
    err.name === "KafkaJSConnectionClosedError" ||
    err.name === "KafkaJSLockTimeout";
  return transient ? kafkaUnavailable(message, e) : kafkaRejected(message, e);
}

function headersOut(h: Readonly<Record<string, string>> | undefined): IHeaders | undefined {
  return h === undefined ? undefined : { ...h };
}

function headersIn(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h === undefined) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const first = Array.isArray(v) ? v[0] : v;
    if (first !== undefined) out[k] = Buffer.isBuffer(first) ? first.toString("utf8") : String(first);
  }
  return out;
}

function logCreator(root: Logger) {
  const log = root.child({ component: "kafkajs" });
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      const fields = { ns: namespace, ...rest };
      // KafkaJS logs every error response of the wire layer as ERROR, including the expected
      // ones of a rebalance; the layers above report what actually failed.
      if (namespace === "Connection" || /rebalancing/.test(String(rest.error ?? message)))
        log.debug(fields, message);
      else if (level === KafkaJsLogLevel.ERROR) log.error(fields, message);
      else if (level === KafkaJsLogLevel.WARN) log.warn(fields, message);
      else if (level === KafkaJsLogLevel.INFO) log.debug(fields, message);
      else log.trace(fields, message);
    };
}

export function createKafka(opts: KafkaJsOptions): Kafka {
  const kafka = new KafkaJs({
    clientId: opts.clientId,
    brokers: [...opts.brokers],
    connectionTimeout: opts.connectionTimeoutMs ?? 3_000,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    retry: { retries: opts.retries ?? 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    logLevel: KafkaJsLogLevel.INFO,
    logCreator: logCreator(opts.logger),
  });
  return {
    admin: async () => createAdmin(kafka.admin()),
    producer: async (p) => createProducer(kafka, p?.transactionalId),
    transactionalProducer: async (id) => createTransactionalProducer(kafka, id),
    consumer: (c) => createConsumer(kafka.consumer(consumerConfig(c)), c, opts.logger),
  };
}

async function createAdmin(admin: KafkaJsAdmin): Promise<Admin> {
  try {
    await admin.connect();
  } catch (e) {
    throw toKafkaError(e, "connecting the admin client");
  }
  let closed = false;
  const partitionCount = async (topic: string): Promise<number | null> => {
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) return null;
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    return md.topics[0]?.partitions.length ?? null;
  };
  const wrap =
    <A extends unknown[], R>(what: string, fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      try {
        return await fn(...a);
      } catch (e) {
        throw toKafkaError(e, what);
      }
    };
  return {
    describeCluster: wrap("describing the cluster", async (): Promise<ClusterInfo> => {
      const c = await admin.describeCluster();
      return {
        clusterId: c.clusterId,
        brokers: c.brokers.map((b) => ({ nodeId: b.nodeId, host: b.host, port: b.port })),
        controllerId: c.controller,
      };
    }),
    ensureTopics: wrap("ensuring topics", async (specs: readonly TopicSpec[]): Promise<EnsureOutcome[]> => {
      const existing = new Set(await admin.listTopics());
      const missing = specs.filter((s) => !existing.has(s.name));
      if (missing.length > 0) {
        try {
          await admin.createTopics({
            waitForLeaders: true,
            topics: missing.map((s) => ({
              topic: s.name,
              numPartitions: s.partitions,
              replicationFactor: s.replicationFactor,
              configEntries: Object.entries(s.config).map(([name, value]) => ({ name, value })),
            })),
          });
        } catch (e) {
          // Another process created them first, or the new topics' leaders were not known yet
          // when KafkaJS waited for them: both end in the metadata check below.
          if (!isCreateRace(e)) throw await explainCreateFailure(admin, missing, e);
        }
      }
      const md = await topicMetadataAfterCreate(
        admin,
        specs.map((s) => s.name),
        missing.length > 0,
      );
      return specs.map((s): EnsureOutcome => {
        const partitions = md.topics.find((t) => t.name === s.name)?.partitions.length ?? 0;
        const created = missing.includes(s);
        if (partitions !== s.partitions) {
          return { topic: s.name, action: "mismatch", partitions, expectedPartitions: s.partitions };
        }
        return { topic: s.name, action: created ? "created" : "exists", partitions };
      });
    }),
    listTopics: wrap("listing topics", () => admin.listTopics()),
    deleteTopics: wrap("deleting topics", async (names: readonly string[]) => {
      if (names.length > 0) await admin.deleteTopics({ topics: [...names] });
    }),
    partitionCount: wrap("reading the partition count", partitionCount),
    partitionOffsets: wrap("fetching offsets", async (topic: string): Promise<PartitionOffsets[]> => {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets
        .map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
        .sort((a, b) => a.partition - b.partition);
    }),
    offsetsForTime: wrap("fetching offsets by time", async (topic: string, timestampMs: number) => {
      const offsets = await admin.fetchTopicOffsetsByTimestamp(topic, timestampMs);
      return offsets
        .map((o) => ({ partition: o.partition, offset: o.offset }))
        .sort((a, b) => a.partition - b.partition);
    }),
    describeGroup: wrap("describing the group", async (groupId: string): Promise<GroupState> => {
      const { groups } = await admin.describeGroups([groupId]);
      const g = groups[0];
      if (g === undefined) return { groupId, state: "Dead", protocol: "", members: [] };
      return {
        groupId,
        state: g.state,
        protocol: g.protocol,
        members: g.members.map((m) => ({
          memberId: m.memberId,
          clientId: m.clientId,
          host: m.clientHost,
          metadata: m.memberMetadata,
          assignment: m.memberAssignment,
        })),
      };
    }),
    describeTopics: wrap(
      "describing topics",
      async (topics: readonly string[]): Promise<TopicDescription[]> => {
        const existing = new Set(await admin.listTopics());
        const names = topics.filter((t) => existing.has(t));
        if (names.length === 0) return [];
        const md = await admin.fetchTopicMetadata({ topics: names });
        const { resources } = await admin.describeConfigs({
          includeSynonyms: false,
          resources: names.map((name) => ({ type: TOPIC_RESOURCE, name })),
        });
        return names.map((topic): TopicDescription => {
          const partitions = (md.topics.find((t) => t.name === topic)?.partitions ?? [])
            .map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr }))
            .sort((a, b) => a.partition - b.partition);
          const res = resources.find((r) => r.resourceName === topic);
          if (res !== undefined && res.errorCode !== 0) {
            throw kafkaRejected(
              `describing the configuration of ${topic}: ${res.errorMessage ?? res.errorCode}`,
            );
          }
          return { topic, partitions, configs: configMap(res?.configEntries ?? []) };
        });
      },
    ),
    describeBrokerConfigs: wrap("describing a broker's configuration", async (nodeId: number) => {
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: BROKER_RESOURCE, name: String(nodeId) }],
      });
      const res = resources[0];
      if (res === undefined || res.errorCode !== 0) {
        throw kafkaRejected(`describing broker ${nodeId}: ${res?.errorMessage ?? "no answer"}`);
      }
      return configMap(res.configEntries);
    }),
    committedOffsets: wrap("fetching committed offsets", async (groupId: string, topic: string) => {
      const res = await admin.fetchOffsets({ groupId, topics: [topic] });
      return (res[0]?.partitions ?? [])
        .map((p) => ({ partition: p.partition, offset: p.offset, metadata: p.metadata }))
        .sort((a, b) => a.partition - b.partition);
    }),
    close: async () => {
      if (closed) return;
      closed = true;
      await admin.disconnect();
    },
  };
}

/**
 * Kafka refuses a replication factor above the broker count with a bare "Replication-factor is
 * invalid": name the factor, the brokers and the fix instead (a misconfigured cluster must be
 * clear at start). Other failures are returned unchanged.
 */
function isCreateRace(e: unknown): boolean {
  const types = [
    (e as { type?: string }).type,
    ...((e as { errors?: { type?: string }[] }).errors ?? []).map((x) => x.type),
  ].filter((t) => t !== undefined);
  return (
    types.length > 0 && types.every((t) => t === "TOPIC_ALREADY_EXISTS" || t === "UNKNOWN_TOPIC_OR_PARTITION")
  );
}

async function explainCreateFailure(
  admin: KafkaJsAdmin,
  specs: readonly TopicSpec[],
  e: unknown,
): Promise<unknown> {
  const errors = (e as { errors?: readonly { type?: string }[] }).errors;
  if (!Array.isArray(errors) || !errors.some((x) => x.type === "INVALID_REPLICATION_FACTOR")) return e;
  const brokers = await admin.describeCluster().then(
    (c) => String(c.brokers.length),
    () => "fewer",
  );
  const rf = Math.max(...specs.map((s) => s.replicationFactor));
  const wanted = rf > 0 ? `RT_TOPIC_REPLICATION_FACTOR=${rf}` : "the brokers' default.replication.factor";
  return new KafkaError(
    "cluster_misconfigured",
    `cannot create ${specs.map((s) => s.name).join(", ")}: ${wanted} needs at least that many brokers, ` +
      `the cluster has ${brokers}. Add brokers, or set RT_TOPIC_REPLICATION_FACTOR to at most the broker count ` +
      "(3 with min.insync.replicas=2 in production; see docs/OPERATIONS.md#kafka-settings)",
    { retriable: false, cause: e },
  );
}

// KafkaJS is CommonJS and its ConfigResourceTypes enum is not a named ESM export: Kafka's
// resource type codes (ConfigResource.Type), as KafkaJS's own constants.
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
const BROKER_RESOURCE = 4 as ConfigResourceTypes;

function configMap(
  entries: readonly { configName: string; configValue: string | null }[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) if (e.configValue !== null) out[e.configName] = e.configValue;
  return out;
}

async function createProducer(kafka: KafkaJs, transactionalId: string | undefined): Promise<Producer> {
  const open = async (): Promise<KafkaJsProducer> => {
    const producer: KafkaJsProducer = kafka.producer({
      idempotent: true,
      allowAutoTopicCreation: false,
      maxInFlightRequests: 1,
      ...(transactionalId === undefined ? {} : { transactionalId }),
    });
    try {
      await producer.connect();
    } catch (e) {
      void producer.disconnect().catch(() => {});
      throw toKafkaError(e, "connecting the producer");
    }
    return producer;
  };
  let producer = await open();
  // After a failed send the broker may still have written the batch, while KafkaJS rolls its
  // sequence numbers back. The next batch (other records) would then reuse them: with the same
  // record count the broker takes it for a duplicate of the written one and acknowledges it
  // without writing it (a false ack), with another count it refuses it (OUT_OF_ORDER_SEQUENCE).
  // So a failed send retires the producer: the next send gets a new one, with a new producer
  // id and fresh sequence numbers. (A transactional producer aborts its transaction instead.)
  const retires = transactionalId === undefined;
  let retired: KafkaJsProducer | null = null;
  let reopening: Promise<void> | null = null;
  const reopen = (): Promise<void> =>
    (reopening ??= (async () => {
      try {
        const old = retired;
        retired = null;
        void old?.disconnect().catch(() => {});
        producer = await open();
      } catch (e) {
        retired ??= producer;
        throw e;
      } finally {
        reopening = null;
      }
    })());
  let closing: Promise<void> | null = null;
  return {
    async send(topic: string, records: readonly OutRecord[]): Promise<RecordPosition[]> {
      if (records.length === 0) return [];
      if (reopening !== null) await reopening;
      if (retired !== null) await reopen();
      const current = producer;
      let result;
      try {
        result = await current.send({ topic, acks: -1, messages: messagesOut(records) });
      } catch (e) {
        if (retires && producer === current) retired = current;
        throw toKafkaError(e, `producing to ${topic}`);
      }
      return positionsOf(topic, records, result, (r) => r.partition);
    },
    close: () =>
      (closing ??= (reopening ?? Promise.resolve()).catch(() => {}).then(() => producer.disconnect())),
  };
}

function messagesOut(records: readonly OutRecord[]) {
  return records.map((r) => ({
    key: r.key,
    value: r.value,
    ...(r.headers === undefined ? {} : { headers: headersOut(r.headers) }),
    ...(r.partition === undefined ? {} : { partition: r.partition }),
    ...(r.timestampMs === undefined ? {} : { timestamp: String(r.timestampMs) }),
  }));
}

/**
 * Topic metadata; right after a create, brokers may not know the new topics yet (UNKNOWN_TOPIC_OR_PARTITION,
 * "does not host this topic-partition", or no partitions listed), so that is retried for up to
 * about 10 s.
 */
async function topicMetadataAfterCreate(
  admin: ReturnType<KafkaJs["admin"]>,
  topics: string[],
  justCreated: boolean,
): Promise<Awaited<ReturnType<ReturnType<KafkaJs["admin"]>["fetchTopicMetadata"]>>> {
  for (let attempt = 0; ; attempt++) {
    try {
      const md = await admin.fetchTopicMetadata({ topics });
      const incomplete = md.topics.some((t) => t.partitions.length === 0);
      if (!justCreated || !incomplete || attempt >= 40) return md;
    } catch (e) {
      const unknown = (e as { type?: string }).type === "UNKNOWN_TOPIC_OR_PARTITION";
      if (!justCreated || !unknown || attempt >= 40) throw e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function createTransactionalProducer(
  kafka: KafkaJs,
  transactionalId: string,
): Promise<TransactionalProducer> {
  const producer: KafkaJsProducer = kafka.producer({
    idempotent: true,
    allowAutoTopicCreation: false,
    maxInFlightRequests: 1,
    transactionalId,
    transactionTimeout: 30_000,
    // The next transaction's first request usually meets CONCURRENT_TRANSACTIONS while the
    // coordinator still writes the last one's markers (a few ms). KafkaJS retries it with the
    // client's backoff (100 ms first): back-to-back transactions measured p50 111 ms each on
    // a local broker, and 21 ms with a 10 ms first retry.
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 10, maxRetryTime: 1_000 },
  });
  try {
    await producer.connect();
  } catch (e) {
    throw toKafkaError(e, "connecting the transactional producer");
  }
  let closing: Promise<void> | null = null;
  return {
    async transaction(): Promise<Transaction> {
      let txn;
      try {
        txn = await producer.transaction();
      } catch (e) {
        throw toKafkaError(e, "beginning a transaction");
      }
      return {
        async send(topic, records) {
          if (records.length === 0) return [];
          try {
            const result = await txn.send({ topic, acks: -1, messages: messagesOut(records) });
            return positionsOf(topic, records, result, (r) => r.partition);
          } catch (e) {
            throw toKafkaError(e, `producing to ${topic} in a transaction`);
          }
        },
        async sendOffsets(groupId, topic, partition, nextOffset) {
          try {
            await txn.sendOffsets({
              consumerGroupId: groupId,
              topics: [{ topic, partitions: [{ partition, offset: nextOffset }] }],
            });
          } catch (e) {
            throw toKafkaError(e, `adding offsets of ${topic}/${partition} to a transaction`);
          }
        },
        async commit() {
          try {
            await txn.commit();
          } catch (e) {
            throw toKafkaError(e, "committing a transaction");
          }
        },
        async abort() {
          try {
            if (txn.isActive()) await txn.abort();
          } catch {
            // Not committed is all the caller needs; the broker aborts it at its timeout anyway.
          }
        },
      };
    },
    close: () => (closing ??= producer.disconnect()),
  };
}

/**
 * KafkaJS reports one base offset per partition; records of one partition were written in
 * call order, so the i-th record of a partition is at base + i. Records without an explicit
 * partition would need KafkaJS's partitioner to be replayed here, so the port requires
 * explicit partitions when positions matter (the gateway always sets them).
 */
function positionsOf(
  topic: string,
  records: readonly OutRecord[],
  result: readonly { partition: number; baseOffset?: string; errorCode: number }[],
  partitionOf: (r: OutRecord) => number | undefined,
): RecordPosition[] {
  const base = new Map<number, bigint>();
  for (const r of result) if (r.baseOffset !== undefined) base.set(r.partition, BigInt(r.baseOffset));
  const seen = new Map<number, bigint>();
  return records.map((r) => {
    const p = partitionOf(r) ?? (result.length === 1 ? result[0]!.partition : -1);
    const b = base.get(p);
    if (b === undefined) return { topic, partition: p, offset: "-1" };
    const i = seen.get(p) ?? 0n;
    seen.set(p, i + 1n);
    return { topic, partition: p, offset: String(b + i) };
  });
}

function consumerConfig(c: GroupConsumerOptions) {
  return {
    groupId: c.groupId,
    sessionTimeout: c.sessionTimeoutMs,
    rebalanceTimeout: Math.max(c.sessionTimeoutMs, 10_000),
    heartbeatInterval: c.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 100,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5_000 },
    ...(c.assigners === undefined ? {} : { partitionAssigners: c.assigners as PartitionAssigner[] }),
  };
}

function createConsumer(
  consumer: KafkaJsConsumer,
  opts: GroupConsumerOptions,
  logger: Logger,
): GroupConsumer {
  let closing: Promise<void> | null = null;
  const removers: (() => void)[] = [];
  return {
    async run(handlers: GroupConsumerHandlers) {
      removers.push(
        consumer.on(consumer.events.GROUP_JOIN, (e) => {
          handlers.onAssignment?.(e.payload.memberAssignment, e.payload.memberId);
        }),
        consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
          const b = e.payload;
          handlers.onBatchEnd?.(b.topic, b.partition, b.lastOffset, b.highWatermark);
        }),
        consumer.on(consumer.events.CRASH, (e) => {
          logger.error({ err: e.payload.error, restart: e.payload.restart }, "kafka consumer crashed");
          if (!e.payload.restart) handlers.onCrash?.(e.payload.error);
        }),
      );
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: [...opts.topics], fromBeginning: opts.fromBeginning });
        await consumer.run({
          autoCommit: opts.autoCommit,
          eachBatchAutoResolve: true,
          partitionsConsumedConcurrently: 1,
          eachBatch: async ({ batch, heartbeat }) => {
            const records: InRecord[] = batch.messages.map((m) => ({
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              key: m.key,
              value: m.value,
              headers: headersIn(m.headers),
              timestampMs: Number(m.timestamp),
            }));
            await handlers.eachBatch({
              topic: batch.topic,
              partition: batch.partition,
              records,
              highWatermark: batch.highWatermark,
            });
            await heartbeat();
          },
        });
      } catch (e) {
        throw toKafkaError(e, `starting consumer group ${opts.groupId}`);
      }
    },
    commit: async (topic, partition, nextOffset, metadata) => {
      try {
        await consumer.commitOffsets([{ topic, partition, offset: nextOffset, metadata: metadata ?? null }]);
      } catch (e) {
        throw toKafkaError(e, `committing ${topic}/${partition}`);
      }
    },
    seek: (topic, partition, offset) => consumer.seek({ topic, partition, offset }),
    pause: (topic, partitions) => consumer.pause([{ topic, partitions: [...partitions] }]),
    resume: (topic, partitions) => consumer.resume([{ topic, partitions: [...partitions] }]),
    close: () =>
      (closing ??= (async () => {
        for (const remove of removers.splice(0)) remove();
        await consumer.disconnect();
      })()),
  };
}
