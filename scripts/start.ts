/**
 * `npm start`: the whole backbone on this machine. Starts (fetching once) a local Kafka
 * unless RT_KAFKA_BROKERS is set, ensures the topics, starts the services, prints the URLs,
 * and on Ctrl-C (SIGINT) or SIGTERM stops everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { devSecret } from "../common/dev-secret.ts";
import { ConfigError, readInt, readString } from "../common/env.ts";
import { KafkaError } from "../common/kafka/errors.ts";
import { ensureTopics } from "../common/kafka/ensure-topics.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { LOCAL_KAFKA_PORT_DEFAULT } from "../common/kafka-config.ts";
import { createLogger, LOG_LEVELS } from "../common/log.ts";
import { readEnum } from "../common/env.ts";
import { LocalKafkaError, REPO_ROOT } from "../infra/kafka/fetch.ts";
import { readTopicsConfig, topicSpecs } from "../schemas/topics.ts";
import { kafkaForRun, type RunKafka } from "./kafka-for-run.ts";

interface Service {
  readonly name: string;
  readonly entry: string;
  readonly env: Record<string, string>;
  readonly url: string;
}

/** The services of the local backbone; entries that do not exist yet are skipped. */
function services(env: NodeJS.ProcessEnv): Service[] {
  const routerPort = readInt(env, "RT_ROUTER_PORT", 8080, { min: 1, max: 65535 });
  const gatewayPort = readInt(env, "RT_GATEWAY_PORT", 8081, { min: 1, max: 65534 });
  const list: Service[] = [
    {
      name: "router",
      entry: "router/main.ts",
      env: {},
      url: `http://127.0.0.1:${routerPort}  (entry point: GET /v1/connect)`,
    },
    ...[0, 1].map((i) => ({
      name: `gateway-${i + 1}`,
      entry: "gateway/main.ts",
      env: { RT_GATEWAY_PORT: String(gatewayPort + i), RT_GATEWAY_NODE_ID: `gateway-${i + 1}` },
      url: `ws://127.0.0.1:${gatewayPort + i}/v1/ws`,
    })),
  ];
  return list.filter((s) => existsSync(join(REPO_ROOT, s.entry)));
}

/** Services print one `{"event":"<name>_ready",...}` line once they serve. */
const READY_LINE = /^\{"event":"\w+_ready"/;

function startService(
  s: Service,
  childEnv: NodeJS.ProcessEnv,
): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, ["--import", "tsx", s.entry], {
    cwd: REPO_ROOT,
    env: { ...childEnv, ...s.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let markReady: () => void = () => {};
  const ready = new Promise<void>((done) => (markReady = done));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      if (READY_LINE.test(line)) markReady();
      process.stdout.write(`[${s.name}] ${line}\n`);
    });
  }
  return { child, ready };
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<number> {
  const env = process.env;
  // Validate everything before starting anything, so a bad variable leaves nothing running.
  const level = readEnum(env, "RT_LOG_LEVEL", LOG_LEVELS, "info");
  const topicsConfig = readTopicsConfig(env);
  const kafkaPort = readInt(env, "RT_KAFKA_PORT", LOCAL_KAFKA_PORT_DEFAULT, { min: 1, max: 65534 });
  const controllerPort = readInt(env, "RT_KAFKA_CONTROLLER_PORT", kafkaPort + 1, { min: 1, max: 65535 });
  const dataDir = readString(env, "RT_KAFKA_DATA_DIR", join(REPO_ROOT, ".cache", "kafka-data"));
  const list = services(env);
  const logger = createLogger({ service: "start", level });

  let kafka: RunKafka | null = null;
  const children: ChildProcess[] = [];
  let stopping = false;
  const stopAll = async () => {
    await Promise.all(children.map((c) => stopChild(c, 15_000)));
    await kafka?.stop();
  };
  // Ctrl-C reaches every process of the terminal's group, often twice through wrappers
  // (npm, tsx): later signals must not cut the cleanup short.
  const interrupted = new Promise<number>((done) => {
    const onSignal = () => {
      if (!stopping) console.log("stopping...");
      stopping = true;
      done(0);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  try {
    console.log(env.RT_KAFKA_BROKERS ? "checking Kafka at RT_KAFKA_BROKERS" : "starting local Kafka");
    kafka = await Promise.race([
      kafkaForRun(env, logger, { port: kafkaPort, controllerPort, dataDir, nodes: 1 }),
      interrupted.then(() => null),
    ]);
    if (kafka === null) return 130;
    const admin = await createKafka({ brokers: kafka.brokers, clientId: "rt-start", logger }).admin();
    try {
      for (const o of await ensureTopics(admin, topicSpecs(topicsConfig))) {
        console.log(`topic ${o.action.padEnd(7)} ${o.topic} (${o.partitions} partitions)`);
      }
    } finally {
      await admin.close();
    }
    const authConfigured = ["RT_JWT_SECRET", "RT_JWT_PUBLIC_KEY", "RT_JWKS_URL"].some((v) => env[v]);
    const childEnv = {
      ...env,
      RT_KAFKA_BROKERS: kafka.brokers.join(","),
      RT_LOG_LEVEL: level,
      RT_EXIT_WITH_PARENT: "1",
      ...(authConfigured ? {} : { RT_JWT_SECRET: devSecret() }),
    };
    const readies: Promise<void>[] = [];
    const exited = new Promise<number>((done) => {
      for (const s of list) {
        const { child, ready } = startService(s, childEnv);
        children.push(child);
        readies.push(ready);
        child.on("exit", (code, signal) => {
          if (stopping) return;
          stopping = true;
          console.error(`${s.name} exited (${signal ?? `code ${code}`}); stopping everything`);
          done(1);
        });
      }
    });
    const allReady = Promise.all(readies).then(() => -1);
    const early = await Promise.race([allReady, interrupted, exited]);
    if (early !== -1) return early;
    console.log("");
    console.log(`Kafka:   ${kafka.brokers.join(",")}${kafka.local ? ` (local, data in ${dataDir})` : ""}`);
    for (const s of list) console.log(`${(s.name + ":").padEnd(10)} ${s.url}`);
    if (!authConfigured) {
      console.log(
        "Tokens:   dev secret in .cache/dev-jwt-secret; mint one with `npm run rt -- token <user>`",
      );
    }
    console.log("The backbone is up. Ctrl-C stops everything.");
    return await Promise.race([interrupted, exited]);
  } finally {
    await stopAll();
    console.log("stopped");
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof ConfigError || e instanceof LocalKafkaError || e instanceof KafkaError) {
      console.error(`error: ${e.message}`);
    } else console.error(e);
    process.exit(1);
  },
);
