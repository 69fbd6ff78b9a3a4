/**
 * `rt`: the operator's command line.
 *   rt topics ensure   create the design's topics (idempotent); exit 1 on a partition mismatch
 *   rt topics list     show the design's topics with partitions and offsets
 * Configuration comes from the RT_* environment variables (see README).
 */
import { ConfigError } from "../common/env.ts";
import { KafkaError } from "../common/kafka/errors.ts";
import { ensureTopics } from "../common/kafka/ensure-topics.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { readKafkaConfig } from "../common/kafka-config.ts";
import { createLogger } from "../common/log.ts";
import { readTopicsConfig, topicSpecs } from "../schemas/topics.ts";

const USAGE = `usage: rt topics ensure | rt topics list`;

async function main(argv: string[]): Promise<number> {
  const [group, cmd, ...rest] = argv;
  if (group !== "topics" || (cmd !== "ensure" && cmd !== "list")) {
    console.error(`unknown command ${JSON.stringify(argv.join(" "))}\n${USAGE}`);
    return 2;
  }
  if (rest.length > 0) {
    console.error(`unexpected argument ${JSON.stringify(rest[0])}\n${USAGE}`);
    return 2;
  }
  const env = process.env;
  const kafkaConfig = readKafkaConfig(env, "rt-cli");
  const topics = readTopicsConfig(env);
  const logger = createLogger({ service: "rt-cli", level: "silent" });
  const kafka = createKafka({
    brokers: kafkaConfig.brokers,
    clientId: kafkaConfig.clientId,
    logger,
    retries: 2,
  });
  const admin = await kafka.admin();
  try {
    if (cmd === "ensure") {
      const outcomes = await ensureTopics(admin, topicSpecs(topics));
      for (const o of outcomes) console.log(`${o.action.padEnd(8)} ${o.topic} (${o.partitions} partitions)`);
      return 0;
    }
    for (const spec of topicSpecs(topics)) {
      const count = await admin.partitionCount(spec.name);
      if (count === null) {
        console.log(`missing  ${spec.name}`);
        continue;
      }
      const offsets = await admin.partitionOffsets(spec.name);
      const messages = offsets.reduce((n, o) => n + (BigInt(o.high) - BigInt(o.low)), 0n);
      console.log(
        `${spec.name}  partitions=${count}  retained_records=${messages}  ${spec.config["cleanup.policy"]}`,
      );
    }
    return 0;
  } finally {
    await admin.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof ConfigError || e instanceof KafkaError) console.error(`error: ${e.message}`);
    else console.error(e);
    process.exit(1);
  },
);
