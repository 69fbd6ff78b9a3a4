/** Gateways as real child processes (gateway/main.ts) for integration tests. */
import { setTimeout as sleep } from "node:timers/promises";
import { runTs, type Proc } from "./proc.ts";
import { TEST_SECRET } from "./ws-client.ts";

export interface GatewayProc {
  readonly proc: Proc;
  readonly url: string;
  readonly port: number;
  readonly http: string;
}

export function gatewayEnv(brokers: string[], prefix: string, extra: Record<string, string> = {}) {
  return {
    RT_KAFKA_BROKERS: brokers.join(","),
    RT_TOPIC_PREFIX: prefix,
    RT_GATEWAY_PORT: "0",
    RT_JWT_SECRET: TEST_SECRET,
    RT_DELIVERIES_PARTITIONS: "4",
    RT_GATEWAY_SESSION_TIMEOUT_MS: "3000",
    RT_LOG_LEVEL: process.env.RT_TEST_LOG_LEVEL ?? "warn",
    ...extra,
  };
}

export async function startGatewayProc(env: Record<string, string>): Promise<GatewayProc> {
  const proc = runTs("gateway/main.ts", [], env);
  try {
    const m = await proc.waitFor(/\{"event":"gateway_ready","url":"([^"]+)","port":(\d+)/, 60_000);
    const port = Number(m[2]);
    return { proc, url: m[1]!, port, http: `http://127.0.0.1:${port}` };
  } catch (e) {
    await proc.stop("SIGKILL");
    throw e;
  }
}

/** Waits until every gateway answers /readyz with 200 (each owns partitions). */
export async function waitAllReady(gateways: readonly GatewayProc[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const g of gateways) {
    for (;;) {
      const res = await fetch(`${g.http}/readyz`).catch(() => null);
      if (res?.status === 200) break;
      if (Date.now() > deadline)
        throw new Error(`${g.url} not ready: ${res === null ? "no answer" : await res.text()}`);
      await sleep(100);
    }
  }
}
