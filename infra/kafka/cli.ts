/**
 * `npm run kafka -- fetch`  fetch the pinned Kafka jars into the cache (once)
 * `npm run kafka -- start [--brokers 1|3]`  run a local Kafka in the foreground until Ctrl-C
 *   env: RT_KAFKA_PORT (9092), RT_KAFKA_CONTROLLER_PORT (port + nodes), RT_KAFKA_DATA_DIR
 *        (.cache/kafka-data), RT_KAFKA_NODES (1 or 3; --brokers wins), RT_KAFKA_CACHE_DIR
 *        (.cache/kafka-<version>)
 */
import { join } from "node:path";
import { ConfigError, readInt, readString } from "../../common/env.ts";
import { createLogger } from "../../common/log.ts";
import { LocalKafkaError, REPO_ROOT, defaultCacheDir, ensureKafkaJars } from "./fetch.ts";
import { readNodeCount } from "./cli-args.ts";
import { startLocalKafka } from "./local-kafka.ts";

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const cacheDir = readString(process.env, "RT_KAFKA_CACHE_DIR", defaultCacheDir());
  if (cmd === "fetch") {
    await ensureKafkaJars({ cacheDir });
    return 0;
  }
  if (cmd === "start") {
    const env = process.env;
    const nodes = readNodeCount(argv.slice(1), env);
    const port = readInt(env, "RT_KAFKA_PORT", 9092, { min: 1, max: 65535 });
    const kafka = await startLocalKafka({
      port,
      // The brokers take port .. port+nodes-1; the controllers follow them.
      controllerPort: readInt(env, "RT_KAFKA_CONTROLLER_PORT", port + nodes, { min: 1, max: 65535 }),
      dataDir: readString(env, "RT_KAFKA_DATA_DIR", join(REPO_ROOT, ".cache", "kafka-data")),
      nodes,
      logger: createLogger({ service: "local-kafka", level: "info" }),
      cacheDir,
    });
    console.log(`Kafka is up: RT_KAFKA_BROKERS=${kafka.brokers.join(",")} (Ctrl-C stops it)`);
    await new Promise<void>((done) => {
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    await kafka.stop();
    return 0;
  }
  console.error(`unknown command ${JSON.stringify(cmd ?? "")}: use "fetch" or "start"`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof LocalKafkaError || e instanceof ConfigError) console.error(`error: ${e.message}`);
    else console.error(e);
    process.exit(1);
  },
);
