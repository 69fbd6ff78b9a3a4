/**
 * `npm start`: the whole backbone on this machine. Starts (fetching once) a local Kafka
 * unless RT_KAFKA_BROKERS is set, ensures the topics, builds the demo page, starts the dev
 * control (dev-control.ts) and the services, prints the URLs, and on Ctrl-C (SIGINT) or SIGTERM
 * stops everything it started. A gateway stopped through the dev control is expected to exit;
 * any other service exiting stops everything.
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
import { mintDevToken } from "../gateway/auth.ts";
import { kafkaForRun, type RunKafka } from "./kafka-for-run.ts";
import { DEMO_BUILD_DIR, buildDemo } from "./demo-build.ts";
import { startDevControl, type DevControl, type GatewayHandle, type GatewayState } from "./dev-control.ts";

interface Service {
  readonly name: string;
  readonly entry: string;
  readonly env: Record<string, string>;
  readonly url: string;
  /** Gateways: their port (for /v1/stats), and the dev control may stop and start them. */
  readonly gatewayPort?: number;
}

/** A service's current process. */
interface Supervised {
  readonly service: Service;
  child: ChildProcess | null;
  state: GatewayState;
  /** The dev control stopped it: its exit is not a failure. */
  expectExit: boolean;
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
      url: `http://127.0.0.1:${routerPort}  (entry point: GET /v1/connect; demo page: /demo/)`,
    },
    ...[0, 1].map((i) => ({
      name: `gateway-${i + 1}`,
      entry: "gateway/main.ts",
      env: { RT_GATEWAY_PORT: String(gatewayPort + i), RT_GATEWAY_NODE_ID: `gateway-${i + 1}` },
      url: `ws://127.0.0.1:${gatewayPort + i}/v1/ws`,
      gatewayPort: gatewayPort + i,
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
  const routerPort = readInt(env, "RT_ROUTER_PORT", 8080, { min: 1, max: 65535 });
  const devControlPort = readInt(env, "RT_DEV_CONTROL_PORT", 8090, { min: 0, max: 65535 });
  const demoDir = readString(env, "RT_DEMO_BUILD_DIR", DEMO_BUILD_DIR);
  const logger = createLogger({ service: "start", level });

  let kafka: RunKafka | null = null;
  let devControl: DevControl | null = null;
  const supervised: Supervised[] = [];
  let stopping = false;
  const stopAll = async () => {
    await devControl?.close();
    await Promise.all(supervised.map((s) => (s.child === null ? null : stopChild(s.child, 15_000))));
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
    const jwtSecret = authConfigured ? env.RT_JWT_SECRET : devSecret();
    const childEnv = {
      ...env,
      RT_KAFKA_BROKERS: kafka.brokers.join(","),
      RT_LOG_LEVEL: level,
      RT_EXIT_WITH_PARENT: "1",
      RT_ROUTER_DEMO_DIR: demoDir,
      ...(authConfigured ? {} : { RT_JWT_SECRET: jwtSecret }),
    };
    let fail: (code: number) => void = () => {};
    const exited = new Promise<number>((done) => (fail = done));
    const launch = (sup: Supervised): Promise<void> => {
      const { child, ready } = startService(sup.service, childEnv);
      sup.child = child;
      sup.state = "starting";
      void ready.then(() => {
        if (sup.child === child) sup.state = "running";
      });
      child.on("exit", (code, signal) => {
        if (sup.child === child) sup.child = null;
        sup.state = "stopped";
        if (stopping) return;
        const how = signal ?? `code ${code}`;
        if (sup.expectExit) {
          sup.expectExit = false;
          console.log(`${sup.service.name} exited (${how}), as asked by the dev control`);
          return;
        }
        stopping = true;
        console.error(`${sup.service.name} exited (${how}); stopping everything`);
        fail(1);
      });
      return ready;
    };
    const routerUrl = `http://127.0.0.1:${routerPort}`;
    const issuer = env.RT_JWT_ISSUER;
    const audience = env.RT_JWT_AUDIENCE;
    devControl = await startDevControl({
      host: "127.0.0.1",
      port: devControlPort,
      routerUrl,
      gateways: list.flatMap((service) => {
        if (service.gatewayPort === undefined) return [];
        const sup: Supervised = { service, child: null, state: "stopped", expectExit: false };
        supervised.push(sup);
        const handle: GatewayHandle = {
          name: service.name,
          url: service.url,
          httpUrl: `http://127.0.0.1:${service.gatewayPort}`,
          state: () => sup.state,
          pid: () => sup.child?.pid,
          signal(sig) {
            if (sup.child === null || sup.state === "stopping") return false;
            sup.expectExit = true;
            sup.state = "stopping";
            sup.child.kill(sig);
            return true;
          },
          start() {
            if (sup.state !== "stopped" || stopping) return false;
            void launch(sup);
            return true;
          },
        };
        return [handle];
      }),
      mint:
        jwtSecret === undefined
          ? null
          : (user, ttlS) =>
              mintDevToken(jwtSecret, user, {
                ttlS,
                ...(issuer ? { issuer } : {}),
                ...(audience ? { audience } : {}),
                claims: { rt_rooms: ["*"], rt_channels: ["*"] },
              }),
    });
    await buildDemo(demoDir, { devControlUrl: devControl.url });
    for (const service of list) {
      if (service.gatewayPort === undefined) {
        supervised.unshift({ service, child: null, state: "stopped", expectExit: false });
      }
    }
    const readies = supervised.map((sup) => launch(sup));
    const allReady = Promise.all(readies).then(() => -1);
    const early = await Promise.race([allReady, interrupted, exited]);
    if (early !== -1) return early;
    console.log("");
    console.log(`Kafka:   ${kafka.brokers.join(",")}${kafka.local ? ` (local, data in ${dataDir})` : ""}`);
    for (const s of list) console.log(`${(s.name + ":").padEnd(10)} ${s.url}`);
    console.log(`Demo:     ${routerUrl}/demo/  (dev control: ${devControl.url})`);
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
