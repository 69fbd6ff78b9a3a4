/**
 * `npm run gateway`: one gateway process. Reads the environment once, fails fast on a bad
 * variable, drains on SIGTERM/SIGINT within RT_SHUTDOWN_GRACE_MS. When the deliveries topic is
 * deleted and created again (or repartitioned) under it, the gateway drains and a new one starts
 * in the same process, on the same port, with the new epoch.
 */
import { stopOnSignals } from "../common/shutdown.ts";
import { ConfigError } from "../common/env.ts";
import { KafkaError } from "../common/kafka/errors.ts";
import { createLogger } from "../common/log.ts";
import { readTelemetryConfig, startTelemetry } from "../common/telemetry.ts";
import { readAuthConfig } from "./auth.ts";
import { readGatewayConfig } from "./config.ts";
import { startGateway } from "./gateway.ts";
import { ListenError, NativeUwsError } from "./uws.ts";

let brokers = "";

async function main(): Promise<void> {
  const config = readGatewayConfig(process.env);
  brokers = config.kafka.brokers.join(",");
  const auth = readAuthConfig(process.env);
  const telemetryConfig = readTelemetryConfig(process.env, {
    serviceName: "rt-gateway",
    instanceId: config.nodeId,
  });
  // Before the logger: with tracing on, the SDK's context manager is what puts span ids on log lines.
  const telemetry = startTelemetry(telemetryConfig);
  const log = createLogger({ service: "gateway", level: config.logLevel }).child({ node: config.nodeId });
  log.info(telemetryConfig.describe);
  let gateway = await startGateway(config, auth, log, telemetry);
  let stopping = false;
  // Machine-readable line for supervisors and tests.
  console.log(
    JSON.stringify({ event: "gateway_ready", url: gateway.url, port: gateway.port, node: config.nodeId }),
  );
  let restarted: Promise<void> = Promise.resolve();
  stopOnSignals({
    log,
    graceMs: config.shutdownGraceMs,
    stop: async () => {
      stopping = true;
      await restarted;
      await gateway.stop();
      await telemetry.shutdown();
    },
  });
  // The same port, so clients and the router find the gateway where it was.
  const again = { ...config, port: gateway.port };
  for (;;) {
    const reason = await gateway.replaced;
    if (stopping) return;
    restarted = (async () => {
      // Bounded like a shutdown: a drain that hangs on the old log ends the process instead,
      // for its supervisor to start again.
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        gateway.stop().then(() => true),
        new Promise<boolean>((done) => (timer = setTimeout(() => done(false), config.shutdownGraceMs))),
      ]);
      clearTimeout(timer);
      if (!drained) {
        log.error(
          { graceMs: config.shutdownGraceMs },
          "draining for a restart did not finish in time; exiting",
        );
        process.exit(1);
      }
      for (let attempt = 0; !stopping; attempt++) {
        try {
          gateway = await startGateway(again, auth, log, telemetry);
          log.info({ reason, url: gateway.url }, "gateway restarted on the new deliveries topic");
          return;
        } catch (e) {
          log.warn({ err: e, attempt }, "restarting the gateway failed; retrying");
          await new Promise((done) => setTimeout(done, Math.min(5_000, 250 * 2 ** attempt)));
        }
      }
    })();
    await restarted;
    if (stopping) return;
  }
}

main().catch((e: unknown) => {
  if (e instanceof KafkaError && e.retriable) {
    console.error(
      `error: ${e.message} (Kafka at ${brokers}: check RT_KAFKA_BROKERS and that the cluster is up)`,
    );
  } else if (
    e instanceof ConfigError ||
    e instanceof KafkaError ||
    e instanceof NativeUwsError ||
    e instanceof ListenError
  ) {
    console.error(`error: ${e.message}`);
  } else console.error(e);
  process.exit(1);
});
