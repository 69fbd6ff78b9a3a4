/**
 * Integration-test access to the run's real Kafka (started by scripts/test.ts). Each test
 * owns its names: a random topic prefix and group ids, deleted again by `cleanup()`.
 */
import { randomBytes } from "node:crypto";
import { createKafka } from "../../common/kafka/kafkajs.ts";
import type { Admin, Kafka } from "../../common/kafka/kafka.ts";
import { createLogger, type Logger } from "../../common/log.ts";
import { topicNames, type TopicNames } from "../../schemas/topics.ts";

export function testBrokers(): string[] {
  const brokers = process.env.RT_KAFKA_BROKERS;
  if (brokers === undefined || brokers === "") {
    throw new Error("RT_KAFKA_BROKERS is not set: run integration tests with `npm test` (it starts Kafka)");
  }
  return brokers.split(",");
}

export function testLogger(): Logger {
  return createLogger({
    service: "test",
    level: (process.env.RT_TEST_LOG_LEVEL as "info" | undefined) ?? "silent",
  });
}

export interface TestKafka {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly prefix: string;
  readonly names: TopicNames;
  readonly brokers: string[];
  uniq(label: string): string;
  cleanup(): Promise<void>;
}

export async function testKafka(): Promise<TestKafka> {
  const prefix = `t${randomBytes(4).toString("hex")}.`;
  const brokers = testBrokers();
  const kafka = createKafka({ brokers, clientId: `test-${prefix}`, logger: testLogger() });
  const admin = await kafka.admin();
  return {
    kafka,
    admin,
    prefix,
    names: topicNames(prefix),
    brokers,
    uniq: (label) => `${prefix}${label}-${randomBytes(3).toString("hex")}`,
    async cleanup() {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
      await admin.deleteTopics(mine);
      await admin.close();
    },
  };
}
