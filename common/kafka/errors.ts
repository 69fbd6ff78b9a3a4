/**
 * Errors of the Kafka port. `retriable` says whether the same call may succeed later
 * without any change (broker down, leader moving) or never will (bad request).
 */
export class KafkaError extends Error {
  readonly retriable: boolean;
  constructor(
    readonly code:
      | "kafka_unavailable"
      | "kafka_timeout"
      | "kafka_rejected"
      | "topic_mismatch"
      | "cluster_misconfigured",
    message: string,
    opts: { retriable: boolean; cause?: unknown },
  ) {
    super(message, { cause: opts.cause });
    this.name = "KafkaError";
    this.retriable = opts.retriable;
  }
}

export function kafkaUnavailable(message: string, cause?: unknown): KafkaError {
  return new KafkaError("kafka_unavailable", message, { retriable: true, cause });
}

export function kafkaRejected(message: string, cause?: unknown): KafkaError {
  return new KafkaError("kafka_rejected", message, { retriable: false, cause });
}
