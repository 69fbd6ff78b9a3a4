/**
 * `rt`: the operator's command line.
 *   rt topics ensure   create the design's topics (idempotent); exit 1 on a partition mismatch
 *   rt topics list     show the design's topics with partitions and offsets
 *   rt token <user> [--ttl <seconds>]
 *                      print a development token (HS256 with RT_JWT_SECRET, else the local dev secret)
 *   rt replay --topic <topic> ...
 *                      read a range of a topic to JSON Lines, an Avro file or another topic (cli/replay.ts)
 * Configuration comes from the RT_* environment variables (see README).
 */
import { devSecret } from "../common/dev-secret.ts";
import { ConfigError, readString } from "../common/env.ts";
import { mintDevToken } from "../gateway/auth.ts";
import { isUserId } from "../schemas/targets.ts";
import { KafkaError } from "../common/kafka/errors.ts";
import { ensureTopics } from "../common/kafka/ensure-topics.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { readKafkaConfig } from "../common/kafka-config.ts";
import { createLogger } from "../common/log.ts";
import { readTopicsConfig, topicSpecs } from "../schemas/topics.ts";
import { runReplay } from "./replay.ts";

const USAGE = `usage: rt topics ensure | rt topics list | rt token <user> [--ttl <seconds>] | rt replay --topic <topic> ...`;

async function mintToken(args: string[]): Promise<number> {
  const [user, flag, value, ...rest] = args;
  if (user === undefined || !isUserId(user)) {
    console.error(
      `bad user id ${JSON.stringify(user ?? "")}: 1-128 printable ASCII characters, no spaces\n${USAGE}`,
    );
    return 2;
  }
  let ttlS = 3600;
  if (flag !== undefined) {
    if (
      flag !== "--ttl" ||
      value === undefined ||
      !/^\d{1,9}$/.test(value) ||
      Number(value) < 1 ||
      rest.length > 0
    ) {
      console.error(
        `bad arguments ${JSON.stringify(args.slice(1).join(" "))}: expected --ttl <seconds>\n${USAGE}`,
      );
      return 2;
    }
    ttlS = Number(value);
  }
  const env = process.env;
  const secret = readString(env, "RT_JWT_SECRET") ?? devSecret();
  const issuer = readString(env, "RT_JWT_ISSUER");
  const audience = readString(env, "RT_JWT_AUDIENCE");
  console.log(
    await mintDevToken(secret, user, {
      ttlS,
      ...(issuer === undefined ? {} : { issuer }),
      ...(audience === undefined ? {} : { audience }),
    }),
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "token") return mintToken(argv.slice(1));
  if (argv[0] === "replay") return runReplay(argv.slice(1));
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
