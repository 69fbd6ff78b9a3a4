/** Routers as real child processes (router/main.ts) for integration tests. */
import { runTs, type Proc } from "./proc.ts";
import { TEST_SECRET } from "./ws-client.ts";

export interface RouterProc {
  readonly proc: Proc;
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:40123. */
  readonly url: string;
  readonly port: number;
}

export function routerEnv(brokers: string[], prefix: string, extra: Record<string, string> = {}) {
  return {
    RT_KAFKA_BROKERS: brokers.join(","),
    RT_TOPIC_PREFIX: prefix,
    RT_ROUTER_PORT: "0",
    RT_JWT_SECRET: TEST_SECRET,
    RT_DELIVERIES_PARTITIONS: "4",
    RT_LOG_LEVEL: process.env.RT_TEST_LOG_LEVEL ?? "warn",
    ...extra,
  };
}

export async function startRouterProc(env: Record<string, string>): Promise<RouterProc> {
  const proc = runTs("router/main.ts", [], env);
  try {
    const m = await proc.waitFor(/\{"event":"router_ready","url":"([^"]+)","port":(\d+)\}/, 60_000);
    return { proc, url: m[1]!, port: Number(m[2]) };
  } catch (e) {
    await proc.stop("SIGKILL");
    throw e;
  }
}

export interface ConnectAnswer {
  readonly status: number;
  readonly headers: Headers;
  // Bodies are whatever the router sent; tests read fields dynamically.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: Record<string, any>;
}

/** GET /v1/connect with the token in the Authorization header (or, with `query`, in ?token=). */
export async function askRouter(
  router: RouterProc,
  jwt: string | null,
  opts: { query?: boolean; headers?: Record<string, string> } = {},
): Promise<ConnectAnswer> {
  const query = jwt !== null && opts.query === true ? `?token=${encodeURIComponent(jwt)}` : "";
  const headers: Record<string, string> = { ...opts.headers };
  if (jwt !== null && opts.query !== true) headers.authorization = `Bearer ${jwt}`;
  const res = await fetch(`${router.url}/v1/connect${query}`, { headers });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`router answered ${res.status} with a non-JSON body: ${text.slice(0, 200)}`);
  }
  return { status: res.status, headers: res.headers, body };
}
