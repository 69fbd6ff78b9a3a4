/**
 * The gateway's produce batching. KafkaJS has no linger setting, so the gateway groups client
 * sends into `Producer.send` calls itself.
 *
 * One FIFO queue per topic. A topic is ready when its oldest queued record has waited
 * `lingerMs`, when it holds a full batch, or on flush/close. A ready topic sends one batch (its
 * oldest records, up to `maxBatchRecords` and `maxBatchBytes`) when a global in-flight slot is
 * free AND the topic has no batch in flight. At most one batch per topic is ever in flight, and
 * it keeps its slot until `send` settles, even after its records have timed out: so a topic's
 * batches reach Kafka strictly one after another, in enqueue order, whatever
 * `maxInFlightBatches` is (more slots only let different topics send in parallel).
 *
 * Every record has its own deadline, `timeoutMs` after enqueue. Node keeps timers of one
 * duration in a single list, so a timer per record costs O(1) to arm and to clear.
 */
import type { OutRecord, RecordPosition } from "../common/kafka/kafka.ts";
import { KafkaError } from "../common/kafka/errors.ts";

/** Why a record was not acknowledged, and whether sending it again may succeed. */
export const ENQUEUE_ERRORS = {
  /** The gateway's produce queue is at its bound: back off and resend. Not written. */
  queue_full: { retriable: true },
  /** Kafka failed the write with a retriable error (broker down, leader moving). Not written. */
  unavailable: { retriable: true },
  /**
   * No ack within `timeoutMs`. If the record had been handed to Kafka it MAY still be written
   * (at-least-once): resend with the same id so the duplicate can be recognised.
   */
  timeout: { retriable: true },
  /** The batcher is closing (gateway shutting down): resend through another gateway. Not written. */
  closed: { retriable: true },
  /** Kafka rejected the write for good, or the record is larger than a batch. Not written. */
  rejected: { retriable: false },
} as const;
export type EnqueueErrorCode = keyof typeof ENQUEUE_ERRORS;

export type EnqueueResult =
  | { readonly ok: true; readonly position: RecordPosition }
  | {
      readonly ok: false;
      readonly code: EnqueueErrorCode;
      readonly message: string;
      readonly retriable: boolean;
    };

/** `Producer.send`'s contract: resolves with one position per record after acks=all. */
export type SendFn = (topic: string, records: readonly OutRecord[]) => Promise<RecordPosition[]>;

export interface SendBatcherLimits {
  readonly maxBatchRecords: number;
  readonly maxBatchBytes: number;
  /** How long the first record of a batch waits for company before the batch is sent. */
  readonly lingerMs: number;
  /** Bounds on records waiting for a send (in-flight ones are bounded by the batch limits). */
  readonly maxQueuedRecords: number;
  readonly maxQueuedBytes: number;
  /** Concurrent send calls, all topics together; never more than one per topic. */
  readonly maxInFlightBatches: number;
  /** Per record, from enqueue to ack. */
  readonly timeoutMs: number;
}

export const SEND_BATCHER_DEFAULTS: SendBatcherLimits = Object.freeze({
  // With one batch in flight per topic, a topic's throughput is at most a batch per produce round
  // trip, and that round trip grows with the gateway's load: 500 records a batch capped a gateway
  // near 4,000 sends/s. The byte bound (RT_PRODUCE_MAX_BATCH_BYTES) is the one that matters.
  maxBatchRecords: 5_000,
  maxBatchBytes: 1024 * 1024,
  lingerMs: 2,
  maxQueuedRecords: 10_000,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxInFlightBatches: 1,
  timeoutMs: 10_000,
});

export interface SendBatcherOptions extends Partial<SendBatcherLimits> {
  readonly send: SendFn;
}

export interface SendBatcherStats {
  /** Records (and their bytes) waiting for a send call. */
  readonly queuedRecords: number;
  readonly queuedBytes: number;
  /** Send calls not settled yet, including those whose records have all timed out. */
  readonly inFlightBatches: number;
  readonly inFlightRecords: number;
}

export interface SendBatcher {
  /**
   * Queues `record` for `topic`. Resolves ok only after the `send` call carrying the record
   * has resolved (never a false ack). If that call rejects, every record of it fails:
   * `unavailable` for a retriable KafkaError, `rejected` otherwise. Records enqueued in order
   * for one topic are passed to `send` in that order. A full queue fails at once with
   * `queue_full` and leaves queued records alone. Never rejects; resolves exactly once.
   */
  enqueue(topic: string, record: OutRecord): Promise<EnqueueResult>;
  /** Sends what is queued without waiting for linger; resolves once every record enqueued
   * before the call has its result (so within `timeoutMs`). */
  flush(): Promise<void>;
  /** Stops accepting (enqueue resolves `closed`), then flushes. Safe to call twice. */
  close(): Promise<void>;
  stats(): SendBatcherStats;
}

/** Bytes a record weighs against the limits: value, key and headers. */
export function recordBytes(record: OutRecord): number {
  let bytes = (record.value?.length ?? 0) + Buffer.byteLength(record.key);
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  return bytes;
}

/** Throws RangeError on limits that are not positive integers (lingerMs may be 0). */
export function createSendBatcher(options: SendBatcherOptions): SendBatcher {
  const { send, ...overrides } = options;
  const limits = validateLimits({ ...SEND_BATCHER_DEFAULTS, ...withoutUndefined(overrides) });
  const topics = new Map<string, TopicQueue>();
  // Every record whose promise has not resolved yet: what flush waits for.
  const pending = new Set<Entry>();
  let queuedRecords = 0;
  let queuedBytes = 0;
  let inFlightBatches = 0;
  let inFlightRecords = 0;
  let closing: Promise<void> | null = null;

  function settle(entry: Entry, result: EnqueueResult): void {
    if (entry.state === "settled") throw new Error("send-batcher invariant: record settled twice");
    entry.state = "settled";
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    pending.delete(entry);
    entry.resolve(result);
  }

  function topicQueue(topic: string): TopicQueue {
    let q = topics.get(topic);
    if (q === undefined) {
      q = {
        topic,
        entries: new Fifo(),
        records: 0,
        bytes: 0,
        lingerTimer: null,
        ready: false,
        inFlight: false,
      };
      topics.set(topic, q);
    }
    return q;
  }

  function forgetIfIdle(q: TopicQueue): void {
    if (q.records > 0 || q.inFlight) return;
    if (q.lingerTimer !== null) clearTimeout(q.lingerTimer);
    q.lingerTimer = null;
    if (topics.get(q.topic) === q) topics.delete(q.topic);
  }

  function markReady(q: TopicQueue): void {
    if (q.lingerTimer !== null) clearTimeout(q.lingerTimer);
    q.lingerTimer = null;
    q.ready = true;
  }

  function expire(entry: Entry, q: TopicQueue): void {
    entry.timer = null;
    if (entry.state === "queued") {
      // Never handed to Kafka: drop it, it will not be written.
      q.records -= 1;
      q.bytes -= entry.bytes;
      queuedRecords -= 1;
      queuedBytes -= entry.bytes;
      settle(
        entry,
        failure("timeout", `not sent within ${limits.timeoutMs} ms (queue stalled); not written`),
      );
      while (q.entries.peek()?.state === "settled") q.entries.shift();
      forgetIfIdle(q);
    } else if (entry.state === "in_flight") {
      settle(
        entry,
        failure(
          "timeout",
          `no ack from Kafka within ${limits.timeoutMs} ms; it may still be written: resend with the same id`,
        ),
      );
    }
  }

  function pump(): void {
    if (inFlightBatches >= limits.maxInFlightBatches) return;
    const ready = [...topics.values()].filter((q) => q.ready && !q.inFlight && q.records > 0);
    for (const q of ready) {
      if (inFlightBatches >= limits.maxInFlightBatches) break;
      startBatch(q);
      // Round robin: the topic that just sent goes to the back of the line.
      topics.delete(q.topic);
      topics.set(q.topic, q);
    }
  }

  function startBatch(q: TopicQueue): void {
    const batch: Entry[] = [];
    let bytes = 0;
    while (batch.length < limits.maxBatchRecords) {
      const entry = q.entries.peek();
      if (entry === undefined) break;
      if (entry.state !== "queued") {
        q.entries.shift(); // timed out while queued
        continue;
      }
      if (batch.length > 0 && bytes + entry.bytes > limits.maxBatchBytes) break;
      q.entries.shift();
      entry.state = "in_flight";
      batch.push(entry);
      bytes += entry.bytes;
    }
    q.records -= batch.length;
    q.bytes -= bytes;
    queuedRecords -= batch.length;
    queuedBytes -= bytes;
    // Leftovers have waited for this batch already: they go as soon as it settles.
    q.ready = q.records > 0;
    q.inFlight = true;
    inFlightBatches += 1;
    inFlightRecords += batch.length;
    void callSend(
      send,
      q.topic,
      batch.map((e) => e.record),
    ).then((outcome) => settleBatch(q, batch, outcome));
  }

  function settleBatch(q: TopicQueue, batch: readonly Entry[], outcome: SendOutcome): void {
    q.inFlight = false;
    inFlightBatches -= 1;
    inFlightRecords -= batch.length;
    const broken = outcome.ok && outcome.positions.length !== batch.length;
    const result = (i: number): EnqueueResult => {
      if (broken) return failure("rejected", "producer broke its contract: wrong number of positions");
      if (outcome.ok) return { ok: true, position: outcome.positions[i]! };
      return failureFromError(outcome.error);
    };
    batch.forEach((entry, i) => {
      // Already resolved `timeout`: a late outcome changes nothing for the sender.
      if (entry.state === "in_flight") settle(entry, result(i));
    });
    forgetIfIdle(q);
    pump();
    if (broken && outcome.ok) {
      // Every sender has its answer; now crash loudly (an unhandled rejection), the port is broken.
      throw new Error(
        `send-batcher invariant: send(${q.topic}) returned ${outcome.positions.length} positions for ${batch.length} records`,
      );
    }
  }

  function enqueue(topic: string, record: OutRecord): Promise<EnqueueResult> {
    if (closing !== null) return Promise.resolve(failure("closed", "the gateway is shutting down"));
    const bytes = recordBytes(record);
    if (bytes > limits.maxBatchBytes) {
      return Promise.resolve(
        failure("rejected", `record of ${bytes} bytes is over the ${limits.maxBatchBytes} byte limit`),
      );
    }
    if (queuedRecords + 1 > limits.maxQueuedRecords || queuedBytes + bytes > limits.maxQueuedBytes) {
      return Promise.resolve(failure("queue_full", "the gateway's produce queue is full; retry later"));
    }
    const q = topicQueue(topic);
    let resolve!: (r: EnqueueResult) => void;
    const done = new Promise<EnqueueResult>((r) => (resolve = r));
    const entry: Entry = { record, bytes, state: "queued", timer: null, resolve, done };
    entry.timer = setTimeout(() => expire(entry, q), limits.timeoutMs);
    q.entries.push(entry);
    q.records += 1;
    q.bytes += bytes;
    queuedRecords += 1;
    queuedBytes += bytes;
    pending.add(entry);
    if (q.records >= limits.maxBatchRecords || q.bytes >= limits.maxBatchBytes || limits.lingerMs === 0) {
      markReady(q);
      pump();
    } else if (!q.ready && q.lingerTimer === null) {
      q.lingerTimer = setTimeout(() => {
        q.lingerTimer = null;
        q.ready = true;
        pump();
      }, limits.lingerMs);
    }
    return done;
  }

  async function flush(): Promise<void> {
    for (const q of topics.values()) if (q.records > 0) markReady(q);
    pump();
    await Promise.all([...pending].map((e) => e.done));
  }

  return {
    enqueue,
    flush,
    close(): Promise<void> {
      closing ??= flush();
      return closing;
    },
    stats: () => ({ queuedRecords, queuedBytes, inFlightBatches, inFlightRecords }),
  };
}

interface Entry {
  readonly record: OutRecord;
  readonly bytes: number;
  state: "queued" | "in_flight" | "settled";
  timer: ReturnType<typeof setTimeout> | null;
  readonly resolve: (result: EnqueueResult) => void;
  readonly done: Promise<EnqueueResult>;
}

interface TopicQueue {
  readonly topic: string;
  /** In enqueue order; may hold records that timed out while queued (skipped). */
  readonly entries: Fifo<Entry>;
  /** Live queued records and their bytes. */
  records: number;
  bytes: number;
  lingerTimer: ReturnType<typeof setTimeout> | null;
  /** Lingered long enough (or full, or flushing): send when a slot is free. */
  ready: boolean;
  inFlight: boolean;
}

type SendOutcome = { ok: true; positions: RecordPosition[] } | { ok: false; error: unknown };

async function callSend(send: SendFn, topic: string, records: readonly OutRecord[]): Promise<SendOutcome> {
  try {
    return { ok: true, positions: await send(topic, records) };
  } catch (error) {
    return { ok: false, error };
  }
}

function failure(code: EnqueueErrorCode, message: string): EnqueueResult {
  return { ok: false, code, message, retriable: ENQUEUE_ERRORS[code].retriable };
}

function failureFromError(error: unknown): EnqueueResult {
  if (error instanceof KafkaError) {
    return failure(error.retriable ? "unavailable" : "rejected", error.message);
  }
  // Off-contract error (the port promises KafkaError): not written, and a resend is harmless.
  return failure("unavailable", `send failed: ${error instanceof Error ? error.message : String(error)}`);
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function validateLimits(limits: SendBatcherLimits): SendBatcherLimits {
  for (const [name, value] of Object.entries(limits)) {
    const min = name === "lingerMs" ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new RangeError(`send batcher: ${name} must be an integer >= ${min}, got ${value}`);
    }
  }
  if (limits.maxBatchBytes > limits.maxQueuedBytes) {
    throw new RangeError("send batcher: maxBatchBytes must not exceed maxQueuedBytes");
  }
  return Object.freeze({ ...limits });
}

/** A queue with O(1) shift: an array and a head index, compacted once half is dead. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
