/**
 * The session history of a churn run's clients, as pure state: the shell reports starts,
 * welcomes, drops (a live session that ended) and final closes with their times, and marks the
 * disruptions it causes (a gateway killed, drained, started). Per client it keeps a few typed
 * array slots, so memory is fixed when the run starts.
 *
 * A drop belongs to the latest disruption at or before it (drops before any belong to
 * "baseline"). A client counts once as affected per disruption; for its first drop there, the
 * time from the disruption to the next welcome and the outage (drop to welcome) are recorded,
 * with whether that welcome said `recovered`. Later drops in the same disruption (a client moved
 * twice) are counted as re-drops.
 */
import { Histogram, type HistogramSummary } from "./histogram.ts";

export interface DisruptionSummary {
  readonly name: string;
  readonly atMs: number;
  /** Clients whose session was on the disrupted node when it happened (-1 node: not counted). */
  readonly openOnNode: number;
  /** Clients whose live session dropped (each once). */
  readonly affected: number;
  /** Affected clients that got a welcome again. */
  readonly resumed: number;
  readonly notResumed: number;
  readonly recoveredTrue: number;
  readonly recoveredFalse: number;
  /** Further drops of clients already counted as affected by this disruption. */
  readonly reDrops: number;
  /** From the disruption to each affected client's next welcome, microseconds. */
  readonly toWelcomeUs: HistogramSummary;
  /** From each affected client's drop to its next welcome, microseconds. */
  readonly outageUs: HistogramSummary;
  /** Drops by how the socket ended (close code name, or how the client gave up). */
  readonly drops: Readonly<Record<string, number>>;
}

export interface SessionsSummary {
  readonly clients: number;
  readonly connected: number;
  /** First welcome minus start, microseconds. */
  readonly connectUs: HistogramSummary;
  readonly closedForGood: number;
  readonly openAtEnd: number;
  readonly disruptions: readonly DisruptionSummary[];
}

interface Disruption {
  readonly name: string;
  readonly atMs: number;
  readonly openOnNode: number;
  affected: number;
  resumed: number;
  recoveredTrue: number;
  recoveredFalse: number;
  reDrops: number;
  readonly toWelcome: Histogram;
  readonly outage: Histogram;
  readonly drops: Map<string, number>;
}

const NONE = -2;
const BASELINE = -1;
/** Disruptions one run may mark: a kill, a restart and some slack. */
const MAX_DISRUPTIONS = 16;

export class SessionLog {
  readonly #clients: number;
  readonly #highestUs: number;
  readonly #startedAt: Float64Array;
  readonly #open: Uint8Array;
  readonly #everOpen: Uint8Array;
  readonly #closed: Uint8Array;
  readonly #node: Int16Array;
  readonly #dropAt: Float64Array;
  /** The disruption (index, or BASELINE) of the pending drop; NONE when not waiting for a welcome. */
  readonly #pendingIn: Int16Array;
  /** Whether the pending drop is the client's first in its disruption. */
  readonly #pendingFirst: Uint8Array;
  /** The last disruption this client was counted as affected by (NONE: none). */
  readonly #affectedBy: Int16Array;
  readonly #connect: Histogram;
  readonly #baseline: Disruption;
  readonly #disruptions: Disruption[] = [];
  #connected = 0;
  #openCount = 0;
  #closedCount = 0;

  /** `highestMs`: the longest time any histogram must hold (the run's length). */
  constructor(clients: number, highestMs: number) {
    if (!Number.isSafeInteger(clients) || clients < 1)
      throw new RangeError(`clients must be >= 1, got ${clients}`);
    this.#clients = clients;
    this.#highestUs = Math.max(2, Math.ceil(highestMs * 1000));
    this.#startedAt = new Float64Array(clients).fill(NaN);
    this.#open = new Uint8Array(clients);
    this.#everOpen = new Uint8Array(clients);
    this.#closed = new Uint8Array(clients);
    this.#node = new Int16Array(clients).fill(-1);
    this.#dropAt = new Float64Array(clients).fill(NaN);
    this.#pendingIn = new Int16Array(clients).fill(NONE);
    this.#pendingFirst = new Uint8Array(clients);
    this.#affectedBy = new Int16Array(clients).fill(NONE);
    this.#connect = this.#histogram();
    this.#baseline = this.#disruption("baseline", -Infinity, -1);
  }

  #histogram(): Histogram {
    return new Histogram({ highestTrackableValue: this.#highestUs, significantDigits: 3 });
  }

  #disruption(name: string, atMs: number, openOnNode: number): Disruption {
    return {
      name,
      atMs,
      openOnNode,
      affected: 0,
      resumed: 0,
      recoveredTrue: 0,
      recoveredFalse: 0,
      reDrops: 0,
      toWelcome: this.#histogram(),
      outage: this.#histogram(),
      drops: new Map(),
    };
  }

  get openCount(): number {
    return this.#openCount;
  }

  get connected(): number {
    return this.#connected;
  }

  /** Clients that dropped and have not been welcomed again. */
  get waiting(): number {
    let n = 0;
    for (let c = 0; c < this.#clients; c++) if (this.#pendingIn[c] !== NONE && this.#closed[c] === 0) n++;
    return n;
  }

  /** The node of client `c`'s live session, or -1. */
  nodeOf(c: number): number {
    return this.#open[c] === 1 ? this.#node[c]! : -1;
  }

  isOpen(c: number): boolean {
    return this.#open[c] === 1;
  }

  onStart(c: number, atMs: number): void {
    this.#startedAt[c] = atMs;
  }

  /**
   * Marks a disruption of `node` (-1: none in particular) at `atMs`; times must not go back.
   * Returns its index.
   */
  mark(name: string, atMs: number, node: number): number {
    const last = this.#disruptions.at(-1);
    if (last !== undefined && atMs < last.atMs)
      throw new RangeError("disruptions must be marked in time order");
    if (this.#disruptions.length >= MAX_DISRUPTIONS) throw new RangeError("too many disruptions");
    let onNode = 0;
    if (node >= 0) for (let c = 0; c < this.#clients; c++) if (this.nodeOf(c) === node) onNode++;
    this.#disruptions.push(this.#disruption(name, atMs, node >= 0 ? onNode : -1));
    return this.#disruptions.length - 1;
  }

  #at(index: number): Disruption {
    return index === BASELINE ? this.#baseline : this.#disruptions[index]!;
  }

  onWelcome(c: number, atMs: number, recovered: boolean, node: number): void {
    if (this.#closed[c] === 1) return;
    if (this.#everOpen[c] === 0) {
      this.#everOpen[c] = 1;
      this.#connected++;
      const started = this.#startedAt[c]!;
      if (!Number.isNaN(started)) this.#connect.record((atMs - started) * 1000);
    }
    const pending = this.#pendingIn[c]!;
    if (pending !== NONE) {
      const d = this.#at(pending);
      if (this.#pendingFirst[c] === 1) {
        d.resumed++;
        if (recovered) d.recoveredTrue++;
        else d.recoveredFalse++;
        const from = pending === BASELINE ? this.#dropAt[c]! : d.atMs;
        d.toWelcome.record((atMs - from) * 1000);
        d.outage.record((atMs - this.#dropAt[c]!) * 1000);
      }
      this.#pendingIn[c] = NONE;
    }
    if (this.#open[c] === 0) this.#openCount++;
    this.#open[c] = 1;
    this.#node[c] = node;
  }

  /** Client `c`'s live session ended (`how`: close code name, or why the client gave up). */
  onDrop(c: number, atMs: number, how: string): void {
    if (this.#open[c] === 0 || this.#closed[c] === 1) return;
    this.#open[c] = 0;
    this.#openCount--;
    let index = BASELINE;
    for (let i = this.#disruptions.length - 1; i >= 0; i--) {
      if (this.#disruptions[i]!.atMs <= atMs) {
        index = i;
        break;
      }
    }
    const d = this.#at(index);
    d.drops.set(how, (d.drops.get(how) ?? 0) + 1);
    const first = this.#affectedBy[c] !== index;
    if (first) {
      d.affected++;
      this.#affectedBy[c] = index;
    } else d.reDrops++;
    this.#pendingIn[c] = index;
    this.#pendingFirst[c] = first ? 1 : 0;
    this.#dropAt[c] = atMs;
  }

  /** Client `c` stopped for good (a "no" close code, or the run closed it). */
  onClosed(c: number): void {
    if (this.#closed[c] === 1) return;
    if (this.#open[c] === 1) {
      this.#open[c] = 0;
      this.#openCount--;
    }
    this.#closed[c] = 1;
    this.#closedCount++;
  }

  summary(): SessionsSummary {
    const notResumed = new Map<number, number>();
    for (let c = 0; c < this.#clients; c++) {
      const p = this.#pendingIn[c]!;
      if (p !== NONE && this.#pendingFirst[c] === 1) notResumed.set(p, (notResumed.get(p) ?? 0) + 1);
    }
    const one = (d: Disruption, index: number): DisruptionSummary => ({
      name: d.name,
      atMs: d.atMs,
      openOnNode: d.openOnNode,
      affected: d.affected,
      resumed: d.resumed,
      notResumed: notResumed.get(index) ?? 0,
      recoveredTrue: d.recoveredTrue,
      recoveredFalse: d.recoveredFalse,
      reDrops: d.reDrops,
      toWelcomeUs: d.toWelcome.summary(),
      outageUs: d.outage.summary(),
      drops: Object.fromEntries([...d.drops].sort(([a], [b]) => a.localeCompare(b))),
    });
    return {
      clients: this.#clients,
      connected: this.#connected,
      connectUs: this.#connect.summary(),
      closedForGood: this.#closedCount,
      openAtEnd: this.#openCount,
      disruptions: [one(this.#baseline, BASELINE), ...this.#disruptions.map((d, i) => one(d, i))],
    };
  }
}
