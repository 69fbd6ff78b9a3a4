/**
 * Whether the gateways the group names can be reached. A gateway that crashed keeps its
 * partitions until Kafka's session timeout expires; handing its URL out meanwhile sends every
 * reconnecting client into a refused connection and a growing backoff. A refused TCP connect
 * marks the URL down (the router then answers 503 with a short retry hint), and the next
 * accepted connect marks it up again. Timeouts prove nothing (a busy gateway) and change nothing.
 */
import { connect } from "node:net";

export class Liveness {
  readonly #down = new Set<string>();
  readonly #probing = new Set<string>();

  constructor(private readonly timeoutMs = 1_000) {}

  isDown(url: string): boolean {
    return this.#down.has(url);
  }

  /** Starts one probe per URL not already being probed; never throws. */
  probe(urls: Iterable<string>): void {
    for (const url of new Set(urls)) {
      if (this.#probing.has(url)) continue;
      let target: { host: string; port: number };
      try {
        const u = new URL(url);
        const port = u.port === "" ? (u.protocol === "wss:" ? 443 : 80) : Number(u.port);
        target = { host: u.hostname.replace(/^\[|\]$/g, ""), port };
      } catch {
        continue;
      }
      this.#probing.add(url);
      const socket = connect({ host: target.host, port: target.port });
      const done = (down: boolean | null) => {
        socket.destroy();
        this.#probing.delete(url);
        if (down === true) this.#down.add(url);
        else if (down === false) this.#down.delete(url);
      };
      socket.setTimeout(this.timeoutMs, () => done(null));
      socket.once("connect", () => done(false));
      socket.once("error", (e: NodeJS.ErrnoException) =>
        done(
          e.code === "ECONNREFUSED" || e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH" ? true : null,
        ),
      );
    }
  }

  /** Forgets URLs no longer in the group. */
  retain(urls: Iterable<string>): void {
    const keep = new Set(urls);
    for (const url of this.#down) if (!keep.has(url)) this.#down.delete(url);
  }
}
