import { readHostPorts, readInt, readString, type Env } from "./env.ts";

export interface KafkaConfig {
  /** Bootstrap servers. */
  readonly brokers: readonly string[];
  /** True when RT_KAFKA_BROKERS was unset: the local Kafka of `npm start`. */
  readonly local: boolean;
  readonly clientId: string;
}

export const LOCAL_KAFKA_PORT_DEFAULT = 9092;

/** RT_KAFKA_BROKERS, or the local Kafka that `npm start` runs on RT_KAFKA_PORT. */
export function readKafkaConfig(env: Env, defaultClientId: string): KafkaConfig {
  const brokers = readHostPorts(env, "RT_KAFKA_BROKERS");
  const port = readInt(env, "RT_KAFKA_PORT", LOCAL_KAFKA_PORT_DEFAULT, { min: 1, max: 65535 });
  return Object.freeze({
    brokers: Object.freeze(brokers ?? [`127.0.0.1:${port}`]),
    local: brokers === undefined,
    clientId: readString(env, "RT_KAFKA_CLIENT_ID", defaultClientId),
  });
}
