/**
 * The Kafka that `npm start` and `npm test` use: the cluster in RT_KAFKA_BROKERS when set
 * (checked to answer), otherwise a local Kafka started here and stopped by `stop()`.
 */
import { readHostPorts, type Env } from "../common/env.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import type { Logger } from "../common/log.ts";
import { LocalKafkaError } from "../infra/kafka/fetch.ts";
import { startLocalKafka, type LocalKafkaOptions } from "../infra/kafka/local-kafka.ts";

export interface RunKafka {
  readonly brokers: string[];
  readonly local: boolean;
  stop(): Promise<void>;
}

export async function kafkaForRun(
  env: Env,
  logger: Logger,
  local: Omit<LocalKafkaOptions, "logger">,
): Promise<RunKafka> {
  const configured = readHostPorts(env, "RT_KAFKA_BROKERS");
  if (configured === undefined) {
    const kafka = await startLocalKafka({ ...local, logger });
    return { brokers: kafka.brokers, local: true, stop: () => kafka.stop() };
  }
  const kafka = createKafka({
    brokers: configured,
    clientId: "rt-reachability",
    logger: logger.child({}, { level: "silent" }),
    retries: 2,
    connectionTimeoutMs: 3_000,
  });
  try {
    const admin = await kafka.admin();
    try {
      await admin.describeCluster();
    } finally {
      await admin.close();
    }
  } catch (e) {
    throw new LocalKafkaError(
      "not_ready",
      `RT_KAFKA_BROKERS=${configured.join(",")}: no broker answered (${(e as Error).message}); ` +
        "check the addresses, or unset RT_KAFKA_BROKERS to use a local Kafka",
    );
  }
  return { brokers: configured, local: false, stop: async () => {} };
}
