/**
 * What the churn run hands the reference client (client/) instead of the globals: a `fetch` for
 * the router over one bounded keep-alive pool, and a WebSocket constructor per client that
 * binds the client's loopback source address and lets the run watch each socket.
 *
 * Why not the global fetch: its pool opens a connection per concurrent request, and thousands
 * of clients asking the router at once (after a gateway dies) would each take a file
 * descriptor. Here at most `maxSockets` are open; the rest queue, as they would behind a load
 * balancer's connection limit.
 */
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { LeanWebSocket } from "./lean-ws.ts";
import type { WebSocketCtor } from "../client/connection.ts";
import type { FetchLike } from "../client/router.ts";
import { Histogram, type HistogramSummary } from "./histogram.ts";

const MAX_BODY_BYTES = 64 * 1024;

export interface RouterFetch {
  readonly fetch: FetchLike;
  /** Answers by HTTP status, and failures (`error`) since the last call. */
  takeCounts(): Map<string, number>;
  /** Request to answer (queueing for a pooled socket included), microseconds, since the last call. */
  takeLatency(): HistogramSummary;
  close(): void;
}

export function createRouterFetch(maxSockets: number): RouterFetch {
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  let counts = new Map<string, number>();
  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const latency = new Histogram({ highestTrackableValue: 3_600_000_000, significantDigits: 3 });
  const fetch: FetchLike = (url, init) =>
    new Promise((resolve, reject) => {
      const start = performance.now();
      const req = request(
        url,
        { method: init.method, headers: init.headers, agent, signal: init.signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size <= MAX_BODY_BYTES) chunks.push(chunk);
          });
          res.once("end", () => {
            const status = res.statusCode ?? 0;
            bump(String(status));
            latency.record((performance.now() - start) * 1000);
            const body = Buffer.concat(chunks).toString("utf8");
            resolve({
              status,
              headers: {
                get: (name: string) => {
                  const v = res.headers[name.toLowerCase()];
                  return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
                },
              },
              text: () => Promise.resolve(body),
            });
          });
          res.once("error", (e) => {
            bump("error");
            reject(e);
          });
        },
      );
      req.once("error", (e) => {
        bump("error");
        reject(e);
      });
      req.end();
    });
  return {
    fetch,
    takeCounts() {
      const c = counts;
      counts = new Map();
      return c;
    },
    takeLatency() {
      const summary = latency.summary();
      latency.reset();
      return summary;
    },
    close: () => agent.destroy(),
  };
}

export interface SocketHooks {
  /** A socket was created (before the client adds its own listeners). */
  readonly onSocket: (ws: LeanWebSocket) => void;
}

/**
 * A constructor the client can `new` with a URL: it creates a lean WebSocket bound to
 * `localAddress` (when given) and shows it to `hooks` first, so their listeners run before the
 * client's.
 */
export function socketFactory(localAddress: string | undefined, hooks: SocketHooks): WebSocketCtor {
  const options = localAddress === undefined ? {} : { localAddress };
  // A plain function: `new` on it returns the object it returns, here the socket.
  function BoundWebSocket(url: string): LeanWebSocket {
    const ws = new LeanWebSocket(url, options);
    hooks.onSocket(ws);
    return ws;
  }
  return BoundWebSocket as unknown as WebSocketCtor;
}
