/**
 * The dev control of `npm start`: a small HTTP API on loopback for the demo page, never part of
 * a gateway or router and never run in production. It mints development tokens for any user
 * name, reports the cluster (each gateway's state and /v1/stats, the router's /v1/stats), and
 * crashes (SIGKILL), drains (SIGTERM) and starts the gateways that `npm start` supervises.
 *
 * Browsers may call it only from the demo page's origin (the router's): CORS allows that origin
 * alone, and a POST with any other `Origin` is refused, so another web page open in the same
 * browser cannot kill gateways or mint tokens. Requests without `Origin` (curl) are allowed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isUserId } from "../schemas/targets.ts";

export type GatewayState = "starting" | "running" | "stopping" | "stopped";

/** One supervised gateway process. */
export interface GatewayHandle {
  readonly name: string;
  /** Its WebSocket URL. */
  readonly url: string;
  /** Its HTTP base URL (/v1/stats, /readyz). */
  readonly httpUrl: string;
  state(): GatewayState;
  pid(): number | undefined;
  /** Signals the process (SIGKILL: a crash; SIGTERM: a drain); false when it is not running. */
  signal(signal: "SIGKILL" | "SIGTERM"): boolean;
  /** Starts it again; false when it is not stopped. */
  start(): boolean;
}

export interface DevControlOptions {
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  /** The router's base URL; its origin is the only browser origin allowed. */
  readonly routerUrl: string;
  readonly gateways: readonly GatewayHandle[];
  /** Mints a token for `user`, or null when this backbone's auth cannot be minted for (JWKS). */
  readonly mint: ((user: string, ttlS: number) => Promise<string>) | null;
}

export interface DevControl {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_TTL_S = 86_400;
const STATS_TIMEOUT_MS = 1000;

export async function startDevControl(o: DevControlOptions): Promise<DevControl> {
  const allowedOrigin = new URL(o.routerUrl).origin;
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      json(res, 500, { error: "internal", message: e instanceof Error ? e.message : String(e) });
    });
  });

  function json(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) return;
    res.writeHead(status, {
      "content-type": "application/json",
      "cache-control": "no-store",
      "access-control-allow-origin": allowedOrigin,
      vary: "origin",
    });
    res.end(JSON.stringify(body));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://dev");
    const origin = req.headers.origin;
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "access-control-allow-origin": allowedOrigin,
        "access-control-allow-methods": "GET, POST",
        "access-control-max-age": "600",
      });
      res.end();
      return;
    }
    if (origin !== undefined && origin !== allowedOrigin) {
      json(res, 403, {
        error: "forbidden_origin",
        message: `only ${allowedOrigin} may call the dev control`,
      });
      return;
    }
    if (req.method === "GET" && url.pathname === "/dev/token") {
      const user = url.searchParams.get("user") ?? "";
      const ttlS = Number(url.searchParams.get("ttl") ?? "3600");
      if (!isUserId(user)) {
        json(res, 400, {
          error: "bad_user",
          message: "user must be 1-128 printable ASCII characters without spaces",
        });
        return;
      }
      if (!Number.isInteger(ttlS) || ttlS < 1 || ttlS > MAX_TTL_S) {
        json(res, 400, { error: "bad_ttl", message: `ttl must be 1-${MAX_TTL_S} seconds` });
        return;
      }
      if (o.mint === null) {
        json(res, 501, {
          error: "no_dev_tokens",
          message: "this backbone checks tokens with a public key or JWKS: bring a token from its issuer",
        });
        return;
      }
      json(res, 200, { user, token: await o.mint(user, ttlS), ttl_s: ttlS });
      return;
    }
    if (req.method === "GET" && url.pathname === "/dev/cluster") {
      json(res, 200, await cluster());
      return;
    }
    const m = /^\/dev\/gateways\/([\w-]+)\/(kill|drain|start)$/.exec(url.pathname);
    if (m !== null) {
      if (req.method !== "POST") {
        json(res, 405, { error: "method_not_allowed", message: "use POST" });
        return;
      }
      const g = o.gateways.find((x) => x.name === m[1]);
      if (g === undefined) {
        json(res, 404, { error: "not_found", message: `no gateway ${m[1]}` });
        return;
      }
      const action = m[2]!;
      const done = action === "start" ? g.start() : g.signal(action === "kill" ? "SIGKILL" : "SIGTERM");
      if (!done) {
        json(res, 409, { error: "conflict", message: `${g.name} is ${g.state()}: cannot ${action} it` });
        return;
      }
      json(res, 200, { gateway: g.name, action, state: g.state() });
      return;
    }
    json(res, 404, {
      error: "not_found",
      message: "GET /dev/token?user=U, GET /dev/cluster, POST /dev/gateways/<name>/(kill|drain|start)",
    });
  }

  async function cluster(): Promise<Record<string, unknown>> {
    const [router, ...gateways] = await Promise.all([
      getJson(`${o.routerUrl}/v1/stats`),
      ...o.gateways.map((g) =>
        g.state() === "stopped" ? Promise.resolve(null) : getJson(`${g.httpUrl}/v1/stats`),
      ),
    ]);
    return {
      router: router ?? null,
      gateways: o.gateways.map((g, i) => {
        const stats = gateways[i] as { connections?: number; users?: number; owned?: number[] } | null;
        return {
          name: g.name,
          url: g.url,
          state: g.state(),
          pid: g.pid() ?? null,
          connections: stats?.connections ?? null,
          users: stats?.users ?? null,
          owned: stats?.owned ?? null,
        };
      }),
    };
  }

  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(o.port, o.host, () => done());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${o.host}:${port}`,
    close() {
      closing ??= new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      });
      return closing;
    },
  };
}

async function getJson(url: string): Promise<unknown> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(STATS_TIMEOUT_MS) });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}
