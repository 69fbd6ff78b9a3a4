/**
 * `npm run gateway`: one gateway process. Reads the environment once, fails fast on a bad
 * variable, drains on SIGTERM/SIGINT within RT_SHUTDOWN_GRACE_MS.
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
  const gateway = await startGateway(config, auth, log, telemetry);
  // Machine-readable line for supervisors and tests.
  console.log(
    JSON.stringify({ event: "gateway_ready", url: gateway.url, port: gateway.port, node: config.nodeId }),
  );
  stopOnSignals({
    log,
    graceMs: config.shutdownGraceMs,
    stop: () => gateway.stop().then(() => telemetry.shutdown()),
  });
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
