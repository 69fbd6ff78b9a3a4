/**
 * The range reader (range.ts) with KafkaJS 2.2.4, which has no assign(): a consumer in a
 * throwaway group of its own (one member, so it gets every partition) that seeks each partition
 * to the start of its range when the group is joined, pauses the partitions outside the ranges,
 * and commits nothing, so the group vanishes when it leaves.
 *
 * Exactly-once per offset, whatever KafkaJS does: fetches may start before the seek takes effect
 * (from the log start) or be repeated after a rejoin, so each partition keeps `next`, the lowest
 * offset not yet handed to the caller, and drops records below it. A partition is done when a
 * fetched batch reaches `to - 1`; KafkaJS reports batches that hold only control records or
 * aborted transactions as an end-of-batch event, which counts too. A range whose last offsets
 * no longer exist (compacted away) never reaches `to - 1`: after `idleMs` without a batch for it
 * while fetches keep succeeding, it is done as well.
 */
import { randomBytes } from "node:crypto";
import { Kafka as KafkaJs, logLevel as KafkaJsLogLevel, type Consumer, type LogEntry } from "kafkajs";
import { kafkaRejected, kafkaUnavailable, type KafkaError } from "./errors.ts";
import type { InRecord } from "./kafka.ts";
import type { KafkaJsOptions } from "./kafkajs.ts";
import type { PartitionRange, RangeReadHandlers, RangeReadOptions, RangeReader } from "./range.ts";

const DEFAULT_IDLE_MS = 5_000;
/** Successful fetches after a partition's last batch before it may count as idle. */
const IDLE_FETCHES = 5;

interface PartitionState {
  next: bigint;
  readonly to: bigint;
  done: boolean;
  lastBatchAt: number;
  fetchesSinceBatch: number;
}

export function createRangeReader(opts: KafkaJsOptions): RangeReader {
  const log = opts.logger.child({ component: "kafkajs-range" });
  const kafka = new KafkaJs({
    clientId: opts.clientId,
    brokers: [...opts.brokers],
    connectionTimeout: opts.connectionTimeoutMs ?? 3_000,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    retry: { retries: opts.retries ?? 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    logLevel: KafkaJsLogLevel.WARN,
    logCreator:
      () =>
      ({ namespace, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        log.debug({ ns: namespace, ...rest }, message);
      },
  });
  const active = new Set<() => void>();
  return {
    async read(topic, ranges, handlers, readOpts) {
      const stop = { fn: () => {} };
      const run = readRange(kafka, topic, ranges, handlers, readOpts ?? {}, opts.clientId, stop);
      active.add(stop.fn);
      try {
        return await run;
      } finally {
        active.delete(stop.fn);
      }
    },
    async close() {
      for (const stop of active) stop();
    },
  };
}

async function readRange(
  kafka: KafkaJs,
  topic: string,
  ranges: readonly PartitionRange[],
  handlers: RangeReadHandlers,
  opts: RangeReadOptions,
  clientId: string,
  stop: { fn: () => void },
): Promise<{ aborted: boolean }> {
  const state = new Map<number, PartitionState>();
  for (const r of ranges) {
    const s: PartitionState = {
      next: BigInt(r.from),
      to: BigInt(r.to),
      done: false,
      lastBatchAt: Date.now(),
      fetchesSinceBatch: 0,
    };
    state.set(r.partition, s);
  }
  const finish = (p: number, s: PartitionState): void => {
    if (s.done) return;
    s.done = true;
    handlers.onPartitionDone?.(p);
  };
  for (const [p, s] of state) if (s.next >= s.to) finish(p, s);
  const allDone = (): boolean => [...state.values()].every((s) => s.done);
  if (allDone()) return { aborted: false };
  if (opts.signal?.aborted) return { aborted: true };

  let settle!: (outcome: { aborted: boolean } | { error: unknown }) => void;
  const outcome = new Promise<{ aborted: boolean } | { error: unknown }>((done) => (settle = done));
  stop.fn = () => settle({ aborted: true });
  const onAbort = () => settle({ aborted: true });
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const checkDone = (): void => {
    if (allDone()) settle({ aborted: false });
  };
  const reached = (p: number, s: PartitionState, lastOffset: string | null): void => {
    s.lastBatchAt = Date.now();
    s.fetchesSinceBatch = 0;
    if (lastOffset !== null && BigInt(lastOffset) >= s.to - 1n) finish(p, s);
  };

  const consumer: Consumer = kafka.consumer({
    groupId: `${clientId}-range-${randomBytes(6).toString("hex")}`,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2_000 },
  });
  const idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
  let joined = false;
  const removers = [
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      joined = true;
      const assigned = e.payload.memberAssignment[topic] ?? [];
      const idle = assigned.filter((p) => state.get(p)?.done !== false);
      if (idle.length > 0) consumer.pause([{ topic, partitions: idle }]);
      for (const p of assigned) {
        const s = state.get(p);
        if (s === undefined || s.done) continue;
        s.lastBatchAt = Date.now();
        consumer.seek({ topic, partition: p, offset: String(s.next) });
      }
    }),
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      // Batches of control records or aborted transactions reach only this event.
      const s = state.get(e.payload.partition);
      if (e.payload.topic !== topic || s === undefined || s.done) return;
      reached(e.payload.partition, s, e.payload.lastOffset);
      checkDone();
    }),
    consumer.on(consumer.events.FETCH, () => {
      if (!joined) return;
      const now = Date.now();
      for (const [p, s] of state) {
        if (s.done) continue;
        s.fetchesSinceBatch++;
        if (s.fetchesSinceBatch >= IDLE_FETCHES && now - s.lastBatchAt >= idleMs) finish(p, s);
      }
      checkDone();
    }),
    consumer.on(consumer.events.CRASH, (e) => {
      if (!e.payload.restart) settle({ error: toKafkaError(e.payload.error, `reading ${topic}`) });
    }),
  ];

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch }) => {
        const s = state.get(batch.partition);
        if (batch.topic !== topic || s === undefined || s.done) return;
        const records: InRecord[] = [];
        for (const m of batch.messages) {
          const offset = BigInt(m.offset);
          if (offset < s.next || offset >= s.to) continue;
          records.push({
            topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key,
            value: m.value,
            headers: headersIn(m.headers),
            timestampMs: Number(m.timestamp),
          });
        }
        if (records.length > 0) {
          try {
            await handlers.eachBatch({
              topic,
              partition: batch.partition,
              records,
              highWatermark: batch.highWatermark,
            });
          } catch (error) {
            settle({ error });
            return;
          }
          s.next = BigInt(records[records.length - 1]!.offset) + 1n;
        }
        reached(batch.partition, s, batch.lastOffset());
        if (s.done) consumer.pause([{ topic, partitions: [batch.partition] }]);
        checkDone();
      },
    });
  } catch (e) {
    settle({ error: toKafkaError(e, `reading ${topic}`) });
  }

  const result = await outcome;
  opts.signal?.removeEventListener("abort", onAbort);
  for (const remove of removers) remove();
  await consumer.disconnect().catch(() => undefined);
  if ("error" in result) throw result.error;
  return result;
}

function headersIn(h: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h === undefined) return out;
  for (const [k, v] of Object.entries(h)) {
    const first: unknown = Array.isArray(v) ? v[0] : v;
    if (first === undefined || first === null) continue;
    out[k] = Buffer.isBuffer(first) ? first.toString("utf8") : String(first);
  }
  return out;
}

function toKafkaError(e: unknown, what: string): KafkaError {
  const err = e as { name?: string; message?: string; retriable?: boolean };
  const message = `${what}: ${err.message ?? String(e)}`;
  const transient =
    err.retriable === true ||
    ["KafkaJSConnectionError", "KafkaJSNumberOfRetriesExceeded", "KafkaJSRequestTimeoutError"].includes(
      err.name ?? "",
    );
  return transient ? kafkaUnavailable(message, e) : kafkaRejected(message, e);
}
