/**
 * Where the deliveries log stands per partition (first offset, end offset, first offset young
 * enough to resume), read from Kafka and shared for a short time: a reconnect storm of
 * thousands of resumes costs one pair of admin calls per interval, not one per client.
 */
import type { Admin } from "../common/kafka/kafka.ts";

export interface PartitionBounds {
  readonly logStart: bigint;
  readonly logEnd: bigint;
  readonly ageStart: bigint;
}

export class LogBounds {
  #value: Map<number, PartitionBounds> | null = null;
  #at = 0;
  #inFlight: Promise<Map<number, PartitionBounds>> | null = null;

  constructor(
    private readonly admin: Admin,
    private readonly topic: string,
    private readonly maxAgeMs: number,
    private readonly ttlMs = 500,
  ) {}

  /** Bounds no older than the TTL; rejects with a KafkaError when Kafka cannot answer. */
  async get(partition: number): Promise<PartitionBounds | undefined> {
    if (this.#value === null || Date.now() - this.#at > this.ttlMs) {
      this.#inFlight ??= this.#read().finally(() => (this.#inFlight = null));
      this.#value = await this.#inFlight;
    }
    return this.#value.get(partition);
  }

  async #read(): Promise<Map<number, PartitionBounds>> {
    const started = Date.now();
    const [offsets, young] = await Promise.all([
      this.admin.partitionOffsets(this.topic),
      this.admin.offsetsForTime(this.topic, started - this.maxAgeMs),
    ]);
    const byPartition = new Map<number, PartitionBounds>();
    for (const o of offsets) {
      const age = young.find((y) => y.partition === o.partition)?.offset;
      byPartition.set(o.partition, {
        logStart: BigInt(o.low),
        logEnd: BigInt(o.high),
        ageStart: age === undefined || BigInt(age) < 0n ? BigInt(o.high) : BigInt(age),
      });
    }
    this.#at = started;
    return byPartition;
  }
}
