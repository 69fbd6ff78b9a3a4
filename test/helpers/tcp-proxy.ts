/**
 * A TCP proxy on loopback between clients and one upstream port, which a test can stall: while
 * paused, connections stay open but no byte moves either way, and new connections are accepted
 * and held (a network that has stopped delivering packets, not one that refuses them). A broker
 * whose advertised listener is the proxy's port is reached only through it, bootstrap and all
 * (infra/kafka/local-kafka.ts `advertisedPort`).
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** Stops moving bytes and holds new connections. */
  pause(): void;
  /** Moves the held bytes and connections on. */
  resume(): void;
  /**
   * While on, bytes from upstream are thrown away: requests reach the broker, its answers never
   * come back (a connection that dies after the request was sent).
   */
  dropReplies(on: boolean): void;
  /** Closes every open connection; new ones are accepted. */
  cut(): void;
  /** Connections open through the proxy now. */
  readonly connections: number;
  /** Closes the listener and every connection. Safe to call twice. */
  close(): Promise<void>;
}

export async function startTcpProxy(opts: {
  readonly upstreamPort: number;
  readonly port?: number;
}): Promise<TcpProxy> {
  let paused = false;
  let dropping = false;
  const pairs = new Set<[Socket, Socket | null]>();
  const held: (() => void)[] = [];

  const pipe = (pair: [Socket, Socket | null]) => {
    const [down] = pair;
    const up = connect({ host: "127.0.0.1", port: opts.upstreamPort });
    pair[1] = up;
    down.on("data", (d: Buffer) => up.write(d));
    up.on("data", (d: Buffer) => {
      if (!dropping) down.write(d);
    });
    const end = () => {
      down.destroy();
      up.destroy();
      pairs.delete(pair);
    };
    up.on("error", end);
    up.on("close", end);
    down.on("close", end);
    if (paused) {
      down.pause();
      up.pause();
    }
  };

  const server: Server = createServer((down) => {
    const pair: [Socket, Socket | null] = [down, null];
    pairs.add(pair);
    down.on("error", () => down.destroy());
    if (paused) {
      down.pause();
      held.push(() => pipe(pair));
      down.on("close", () => pairs.delete(pair));
    } else pipe(pair);
  });
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 0, "127.0.0.1", () => done());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  let closing: Promise<void> | null = null;
  return {
    port,
    pause() {
      paused = true;
      for (const [down, up] of pairs) {
        down.pause();
        up?.pause();
      }
    },
    resume() {
      paused = false;
      for (const [down, up] of pairs) {
        down.resume();
        up?.resume();
      }
      for (const start of held.splice(0)) start();
    },
    dropReplies(on: boolean) {
      dropping = on;
    },
    cut() {
      for (const [down, up] of [...pairs]) {
        down.destroy();
        up?.destroy();
      }
    },
    get connections() {
      return pairs.size;
    },
    close: () =>
      (closing ??= new Promise<void>((done) => {
        for (const [down, up] of pairs) {
          down.destroy();
          up?.destroy();
        }
        pairs.clear();
        server.close(() => done());
      })),
  };
}
