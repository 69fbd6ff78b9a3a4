/**
 * The churn run's clients: N reference clients (client/RealtimeClient, the SDK applications
 * use, with its router lookup, backoff, resume and dedupe), each bound to a loopback source
 * address, and what the run learns from them: welcomes and drops (into SessionLog), deliveries
 * (to the tracker, through `onEvent`), and counters of sockets, socket errors, client errors and
 * resyncs. The run owns the clock and the schedule; this file only wires listeners.
 */
import type { LeanWebSocket } from "./lean-ws.ts";
import { Histogram, type HistogramSummary } from "./histogram.ts";
import { RealtimeClient } from "../client/client.ts";
import { closeName } from "../client/policy.ts";
import type { RealtimeEvent } from "../client/types.ts";
import { mintDevToken } from "../gateway/auth.ts";
import { clientUser } from "./churn-plan.ts";
import { socketFactory, type RouterFetch } from "./churn-net.ts";
import type { SessionLog } from "./churn-sessions.ts";
import { CLOSE_WAIT_MS } from "./connection.ts";
import { localAddressFor } from "./loopback.ts";

export interface FleetOptions {
  readonly clients: number;
  readonly runId: string;
  readonly routerUrl: string;
  readonly secret: string;
  readonly tokenTtlS: number;
  readonly localAddresses: number;
  readonly backoff: { readonly baseMs: number; readonly capMs: number };
  readonly router: RouterFetch;
  readonly sessions: SessionLog;
  /** The index of a gateway by the node id its welcome names (-1: unknown). */
  readonly nodeIndex: (node: string) => number;
  readonly now: () => number;
}

/** Counts by key since the last `take`, and in all. */
export class Counts {
  #interval = new Map<string, number>();
  readonly #total = new Map<string, number>();

  bump(key: string, n = 1): void {
    this.#interval.set(key, (this.#interval.get(key) ?? 0) + n);
    this.#total.set(key, (this.#total.get(key) ?? 0) + n);
  }

  take(): Record<string, number> {
    const out = Object.fromEntries(this.#interval);
    this.#interval = new Map();
    return out;
  }

  total(): Record<string, number> {
    return Object.fromEntries([...this.#total].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** A socket error as a short stable key: the errno code, else the message without numbers. */
function errorKey(e: Error): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code === "string" && code !== "") return code;
  return e.message.replace(/\d{4,}|\d+\.\d+\.\d+\.\d+(:\d+)?/g, "N").slice(0, 60);
}

export class Fleet {
  readonly clients: (RealtimeClient | undefined)[];
  readonly socketsOpened = new Counts();
  readonly socketErrors = new Counts();
  readonly clientErrors = new Counts();
  readonly resyncs = new Counts();
  readonly welcomes = new Counts();
  readonly drops = new Counts();
  /** Deliveries: set by the run once traffic starts. */
  onEvent: (client: number, event: RealtimeEvent) => void = () => {};
  /** A client stopped for good (a "no" close code, or `closeAll`). */
  onClosed: (client: number) => void = () => {};
  readonly #o: FleetOptions;
  readonly #live = new Set<LeanWebSocket>();
  readonly #lastClose: Uint16Array;
  readonly #lastError: (string | undefined)[];
  readonly #addresses = new Set<string>();
  /** When the client's current socket was created and when it opened (NaN: not yet). */
  readonly #socketAt: Float64Array;
  readonly #openAt: Float64Array;
  readonly #upgrade = new Histogram({ highestTrackableValue: 3_600_000_000, significantDigits: 3 });
  readonly #helloToWelcome = new Histogram({ highestTrackableValue: 3_600_000_000, significantDigits: 3 });
  #started = 0;

  constructor(options: FleetOptions) {
    this.#o = options;
    this.clients = new Array<RealtimeClient | undefined>(options.clients);
    this.#lastClose = new Uint16Array(options.clients);
    this.#lastError = new Array<string | undefined>(options.clients);
    this.#socketAt = new Float64Array(options.clients).fill(NaN);
    this.#openAt = new Float64Array(options.clients).fill(NaN);
  }

  /**
   * Since the last call, in microseconds: socket creation to open (TCP connect and WebSocket
   * upgrade), and open to welcome (hello, token check, admission on the gateway).
   */
  takeTimings(): { upgradeUs: HistogramSummary; helloToWelcomeUs: HistogramSummary } {
    const r = { upgradeUs: this.#upgrade.summary(), helloToWelcomeUs: this.#helloToWelcome.summary() };
    this.#upgrade.reset();
    this.#helloToWelcome.reset();
    return r;
  }

  get started(): number {
    return this.#started;
  }

  get liveSockets(): number {
    return this.#live.size;
  }

  get localAddresses(): string[] {
    return [...this.#addresses].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  }

  /** Creates client `c` and starts connecting it. */
  start(c: number): void {
    const o = this.#o;
    const user = clientUser(o.runId, c);
    const localAddress = localAddressFor(c, o.localAddresses, new URL(o.routerUrl).hostname);
    if (localAddress !== undefined) this.#addresses.add(localAddress);
    const ws = socketFactory(localAddress, {
      onSocket: (socket) => {
        this.#live.add(socket);
        this.socketsOpened.bump("opened");
        this.#socketAt[c] = o.now();
        this.#openAt[c] = NaN;
        socket.once("open", () => {
          const at = o.now();
          this.#openAt[c] = at;
          this.#upgrade.record((at - this.#socketAt[c]!) * 1000);
        });
        socket.on("error", (e: Error) => this.socketErrors.bump(errorKey(e)));
        socket.on("close", (code: number) => {
          this.#live.delete(socket);
          this.#lastClose[c] = code;
        });
      },
    });
    const client = new RealtimeClient({
      routerUrl: o.routerUrl,
      token: () => mintDevToken(o.secret, user, { ttlS: o.tokenTtlS }),
      WebSocket: ws,
      fetch: o.router.fetch,
      backoff: o.backoff,
    });
    this.clients[c] = client;
    this.#started++;
    o.sessions.onStart(c, o.now());
    client.on("welcome", (w) => {
      const opened = this.#openAt[c]!;
      if (!Number.isNaN(opened)) this.#helloToWelcome.record((o.now() - opened) * 1000);
      this.#lastClose[c] = 0;
      this.#lastError[c] = undefined;
      this.welcomes.bump(w.recovered ? "recovered" : (w.reason ?? "not_recovered"));
      o.sessions.onWelcome(c, o.now(), w.recovered, o.nodeIndex(w.node));
    });
    client.on("state", (s) => {
      if (s !== "reconnecting" || !o.sessions.isOpen(c)) return;
      const at = o.now();
      // The client reports why it gave up on a socket (an `error` event) right after this
      // state change, in the same synchronous step: read it once that step is over.
      queueMicrotask(() => {
        const code = this.#lastClose[c]!;
        const how = code !== 0 ? closeName(code) : (this.#lastError[c] ?? "unknown");
        this.drops.bump(how);
        o.sessions.onDrop(c, at, how);
      });
    });
    client.on("error", (e) => {
      this.#lastError[c] = e.code;
      this.clientErrors.bump(e.code);
    });
    client.on("resync", (r) =>
      this.resyncs.bump(`${r.reason}${r.detail === undefined ? "" : `:${r.detail}`}`),
    );
    client.on("closed", (info) => {
      this.clientErrors.bump(`closed:${info.reason}`);
      o.sessions.onClosed(c);
      this.onClosed(c);
    });
    client.on("event", (e) => this.onEvent(c, e));
    client.connect().catch(() => {});
  }

  /** Stops every client, waits up to CLOSE_WAIT_MS for the sockets to close, then terminates the rest. */
  async closeAll(): Promise<{ ms: number; terminated: number }> {
    const start = Date.now();
    for (const client of this.clients) client?.close();
    const deadline = start + CLOSE_WAIT_MS;
    while (this.#live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    let terminated = 0;
    for (const socket of [...this.#live]) {
      terminated++;
      socket.terminate();
    }
    this.#live.clear();
    return { ms: Date.now() - start, terminated };
  }
}
