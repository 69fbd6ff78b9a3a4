/**
 * Steady traffic for fault tests, as real clients behave: a sender that sends numbered events at a
 * fixed pace and reopens its socket when it closes, and a recipient that stays connected, resuming
 * with its last cursor whenever its socket closes. Afterwards: which sends were acked ok, and which
 * of those never reached the recipient.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { connectUser, type Frame, type TestClient } from "./ws-client.ts";

/** The recipient: collects event ids and remembers every welcome, reconnecting with its cursor. */
export class Recipient {
  readonly ids = new Set<string>();
  readonly welcomes: Frame[] = [];
  /** The close of every session that ended. */
  readonly closes: { code: number; reason: string }[] = [];
  cursor: string | undefined;
  #stopped = false;
  #client: TestClient | null = null;
  readonly #loop: Promise<void>;

  constructor(jwt: string, via: () => string) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        let client: TestClient;
        try {
          const r = await connectUser(via(), jwt, this.cursor === undefined ? {} : { cursor: this.cursor });
          client = r.client;
          this.welcomes.push(r.welcome);
          // A session that starts afresh (recovered: false) starts at the welcome's cursor.
          if (r.welcome.recovered !== true) this.cursor = r.welcome.cursor as string;
        } catch {
          await sleep(200);
          continue;
        }
        this.#client = client;
        let seen = 0;
        const take = () => {
          for (; seen < client.frames.length; seen++) {
            const f = client.frames[seen]!;
            if (f.op !== "event") continue;
            this.ids.add(f.id as string);
            this.cursor = f.cursor as string;
          }
        };
        while (!this.#stopped && client.isClosed === null) {
          take();
          await sleep(20);
        }
        take();
        if (client.isClosed !== null) this.closes.push(client.isClosed);
      }
    })();
  }

  get sessions(): number {
    return this.welcomes.length;
  }

  /** Waits until every id has arrived; returns the ones still missing at the deadline. */
  async waitFor(ids: Iterable<string>, timeoutMs: number): Promise<string[]> {
    const want = [...ids];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const missing = want.filter((id) => !this.ids.has(id));
      if (missing.length === 0 || Date.now() > deadline) return missing;
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#client?.close();
    await this.#loop;
  }
}

/** The sender: one event every `intervalMs` while running; a closed socket is reopened. */
export class Sender {
  readonly sessions: TestClient[] = [];
  /** Sends written on each session. */
  readonly #sent = new Map<TestClient, number>();
  #n = 0;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(
    private readonly jwt: string,
    private readonly via: () => string,
    private readonly to: string,
    private readonly label: string,
  ) {}

  async #open(): Promise<TestClient | null> {
    const last = this.sessions[this.sessions.length - 1];
    if (last !== undefined && last.isClosed === null) return last;
    while (!this.#stopped) {
      try {
        const { client } = await connectUser(this.via(), this.jwt);
        this.sessions.push(client);
        return client;
      } catch {
        await sleep(200);
      }
    }
    return null;
  }

  /** Starts sending; `stop` ends it. */
  start(intervalMs: number): void {
    this.#stopped = false;
    this.#running = (async () => {
      while (!this.#stopped) {
        const client = await this.#open();
        if (client === null) return;
        const id = `${this.label}-${this.#n++}`;
        client.send({ op: "send", id, to: `user:${this.to}`, type: "t", data: { id } });
        this.#sent.set(client, (this.#sent.get(client) ?? 0) + 1);
        await sleep(intervalMs);
      }
    })();
  }

  /** Stops sending and waits until every send has an ack or its socket has closed. */
  async stop(settleMs = 30_000): Promise<void> {
    this.#stopped = true;
    await this.#running;
    const deadline = Date.now() + settleMs;
    while (Date.now() < deadline) {
      const pending = this.sessions.some(
        (c) =>
          c.isClosed === null && c.frames.filter((f) => f.op === "ack").length < (this.#sent.get(c) ?? 0),
      );
      if (!pending) return;
      await sleep(50);
    }
  }

  /** Every ack, by send id. */
  acks(): Map<string, Frame> {
    const out = new Map<string, Frame>();
    for (const c of this.sessions) for (const f of c.frames) if (f.op === "ack") out.set(f.id as string, f);
    return out;
  }

  /** Ids of the sends acked ok. */
  okIds(): string[] {
    return [...this.acks()].filter(([, f]) => f.ok === true).map(([id]) => id);
  }

  close(): void {
    for (const c of this.sessions) c.close();
  }
}
