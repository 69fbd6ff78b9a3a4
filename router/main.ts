/**
 * `npm run router`: one router process. Reads the environment once, fails fast on a bad
 * variable, prints one `{"event":"router_ready",...}` line once it serves, and stops on
 * SIGTERM/SIGINT within RT_SHUTDOWN_GRACE_MS.
 */
import { hostname } from "node:os";
import { stopOnSignals } from "../common/shutdown.ts";
import { ConfigError } from "../common/env.ts";
import { createLogger } from "../common/log.ts";
import { readTelemetryConfig, startTelemetry } from "../common/telemetry.ts";
import { readAuthConfig } from "../gateway/auth.ts";
import { NativeUwsError } from "../gateway/uws.ts";
import { readRouterConfig } from "./config.ts";
import { startRouter } from "./router.ts";
import { ListenError } from "./server.ts";

async function main(): Promise<void> {
  const config = readRouterConfig(process.env);
  const auth = readAuthConfig(process.env);
  const telemetryConfig = readTelemetryConfig(process.env, {
    serviceName: "rt-router",
    instanceId: `${hostname()}-${process.pid}`,
  });
  const telemetry = startTelemetry(telemetryConfig);
  const log = createLogger({ service: "router", level: config.logLevel });
  log.info(telemetryConfig.describe);
  const router = await startRouter(config, auth, log, telemetry);
  // Machine-readable line for supervisors and tests.
  console.log(JSON.stringify({ event: "router_ready", url: router.url, port: router.port }));
  stopOnSignals({
    log,
    graceMs: config.shutdownGraceMs,
    stop: () => router.stop().then(() => telemetry.shutdown()),
  });
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof NativeUwsError || e instanceof ListenError) {
    console.error(`error: ${e.message}`);
  } else console.error(e);
  process.exit(1);
});
