/**
 * The bookkeeping of a fanout run in one generator process, as pure state: every local client
 * belongs to one group (a room; the broadcast is one group), every message to a slot of its
 * group (its sequence number), and each client must receive each message of its group exactly
 * once. One flag byte per client and slot, in one array sized when the run starts.
 *
 * Times are the main process's clock (the generator converts its own readings with the measured
 * offset): latency is arrival minus the send time the message carries. The measured window
 * works as in `direct`: rates count arrivals inside it, latency histograms hold the messages
 * *sent* inside it.
 *
 * Totals of several processes add up with `mergeTotals`.
 */
import { Histogram, type SparseHistogram } from "./histogram.ts";

export interface FanoutTrackerOptions {
  /** The group of each local client. */
  readonly groupOfClient: ArrayLike<number>;
  readonly groups: number;
  /** Slots (messages) per group. */
  readonly slots: number;
  /** Keep a histogram per slot (broadcast: the spread of each broadcast's arrival). */
  readonly perSlot: boolean;
  readonly highestLatencyUs: number;
}

export interface FanoutInterval {
  readonly delivered: number;
  readonly latencyUs: SparseHistogram;
}

/** What a tracker found, as plain data; several add up with `mergeTotals`. */
export interface FanoutTotals {
  readonly clients: number;
  readonly delivered: number;
  /** Delivered while the measured window was open (by arrival). */
  readonly deliveredInWindow: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  /** Expected (sent and accepted) and never received, by a client that stayed connected. */
  readonly lost: number;
  /** Expected and never received, by a client whose socket closed during the run. */
  readonly undeliveredClosed: number;
  /** Received although the send was refused (or never answered). */
  readonly unexpected: number;
  /** Events of the run's type whose slot is unknown. */
  readonly foreign: number;
  readonly closedClients: number;
  /** Latency of messages sent in the measured window, microseconds. */
  readonly latencyUs: SparseHistogram;
  /** Per slot (with `perSlot`): received, missed by connected clients, latency. */
  readonly slots: readonly SlotTotals[];
}

export interface SlotTotals {
  readonly received: number;
  readonly lost: number;
  readonly latencyUs: SparseHistogram;
}

/** Per group: how many slots were issued, and which of those were refused (not expected). */
export interface Expected {
  readonly sent: readonly number[];
  readonly refused: readonly (readonly number[])[];
}

export type ReceiveOutcome = "new" | "duplicate" | "foreign";

const RECEIVED = 1;
const SLOT_DIGITS = 2;
const TOTAL_DIGITS = 3;

export function latencyHistogram(highestUs: number, digits: 2 | 3 = TOTAL_DIGITS): Histogram {
  return new Histogram({
    highestTrackableValue: Math.max(2, Math.ceil(highestUs)),
    significantDigits: digits,
  });
}

export class FanoutTracker {
  readonly #o: FanoutTrackerOptions;
  readonly #clients: number;
  readonly #flags: Uint8Array;
  readonly #highest: Int32Array;
  readonly #closed: Uint8Array;
  readonly #latency: Histogram;
  readonly #interval: Histogram;
  readonly #slotLatency: Histogram[];
  readonly #slotReceived: Float64Array;
  #window: { startMs: number; endMs: number } = { startMs: Infinity, endMs: Infinity };
  #delivered = 0;
  #deliveredInWindow = 0;
  #intervalDelivered = 0;
  #duplicates = 0;
  #outOfOrder = 0;
  #foreign = 0;

  constructor(options: FanoutTrackerOptions) {
    const { groupOfClient, groups, slots } = options;
    if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`slots must be >= 1, got ${slots}`);
    if (!Number.isSafeInteger(groups) || groups < 1)
      throw new RangeError(`groups must be >= 1, got ${groups}`);
    for (let c = 0; c < groupOfClient.length; c++) {
      const g = groupOfClient[c]!;
      if (!Number.isSafeInteger(g) || g < 0 || g >= groups)
        throw new RangeError(`client ${c}: bad group ${g}`);
    }
    this.#o = options;
    this.#clients = groupOfClient.length;
    this.#flags = new Uint8Array(this.#clients * slots);
    this.#highest = new Int32Array(this.#clients).fill(-1);
    this.#closed = new Uint8Array(this.#clients);
    this.#latency = latencyHistogram(options.highestLatencyUs);
    this.#interval = latencyHistogram(options.highestLatencyUs);
    const perSlot = options.perSlot ? slots : 0;
    this.#slotLatency = Array.from({ length: perSlot }, () =>
      latencyHistogram(options.highestLatencyUs, SLOT_DIGITS),
    );
    this.#slotReceived = new Float64Array(perSlot);
  }

  /** The measured window, in the main process's clock. */
  setWindow(startMs: number, endMs: number): void {
    this.#window = { startMs, endMs };
  }

  #inWindow(tMs: number): boolean {
    return tMs >= this.#window.startMs && tMs < this.#window.endMs;
  }

  /**
   * Client `client` received slot `seq` of `group`, sent at `sendTimeMs` (null: unknown), at
   * `arrivalMs`. A message of another group, or past the slots, is foreign.
   */
  onReceive(
    client: number,
    group: number,
    seq: number,
    sendTimeMs: number | null,
    arrivalMs: number,
  ): ReceiveOutcome {
    const o = this.#o;
    if (
      !Number.isSafeInteger(client) ||
      client < 0 ||
      client >= this.#clients ||
      o.groupOfClient[client] !== group ||
      !Number.isSafeInteger(seq) ||
      seq < 0 ||
      seq >= o.slots
    ) {
      this.#foreign++;
      return "foreign";
    }
    const at = client * o.slots + seq;
    if ((this.#flags[at]! & RECEIVED) !== 0) {
      this.#duplicates++;
      return "duplicate";
    }
    this.#flags[at] = RECEIVED;
    this.#delivered++;
    this.#intervalDelivered++;
    if (this.#inWindow(arrivalMs)) this.#deliveredInWindow++;
    if (seq < this.#highest[client]!) this.#outOfOrder++;
    else this.#highest[client] = seq;
    if (sendTimeMs !== null) {
      const us = (arrivalMs - sendTimeMs) * 1000;
      this.#interval.record(us);
      if (this.#inWindow(sendTimeMs)) this.#latency.record(us);
      if (o.perSlot) this.#slotLatency[seq]!.record(us);
    }
    if (o.perSlot) this.#slotReceived[seq]!++;
    return "new";
  }

  onClosed(client: number): void {
    if (client >= 0 && client < this.#clients) this.#closed[client] = 1;
  }

  get delivered(): number {
    return this.#delivered;
  }

  get duplicates(): number {
    return this.#duplicates;
  }

  /** Deliveries since the last call, and the latency of every one of them. */
  takeInterval(): FanoutInterval {
    const r = { delivered: this.#intervalDelivered, latencyUs: this.#interval.toSparse() };
    this.#intervalDelivered = 0;
    this.#interval.reset();
    return r;
  }

  /** Scans every flag once: call at the end. */
  totals(expected: Expected): FanoutTotals {
    const o = this.#o;
    const refused = Array.from({ length: o.groups }, (_, g) => new Set(expected.refused[g] ?? []));
    const slotLost = new Float64Array(o.perSlot ? o.slots : 0);
    let lost = 0;
    let undeliveredClosed = 0;
    let unexpected = 0;
    for (let c = 0; c < this.#clients; c++) {
      const g = o.groupOfClient[c]!;
      const sent = Math.min(o.slots, expected.sent[g] ?? 0);
      const base = c * o.slots;
      for (let s = 0; s < o.slots; s++) {
        const got = (this.#flags[base + s]! & RECEIVED) !== 0;
        const wanted = s < sent && !refused[g]!.has(s);
        if (got && !wanted) unexpected++;
        else if (!got && wanted) {
          if (this.#closed[c] === 1) undeliveredClosed++;
          else {
            lost++;
            if (o.perSlot) slotLost[s]!++;
          }
        }
      }
    }
    return {
      clients: this.#clients,
      delivered: this.#delivered,
      deliveredInWindow: this.#deliveredInWindow,
      duplicates: this.#duplicates,
      outOfOrder: this.#outOfOrder,
      lost,
      undeliveredClosed,
      unexpected,
      foreign: this.#foreign,
      closedClients: this.#closed.reduce((a, b) => a + b, 0),
      latencyUs: this.#latency.toSparse(),
      slots: this.#slotLatency.map((h, s) => ({
        received: this.#slotReceived[s]!,
        lost: slotLost[s]!,
        latencyUs: h.toSparse(),
      })),
    };
  }
}

function addSparse(
  list: readonly SparseHistogram[],
  fallbackHighest: number,
  digits: 2 | 3,
): SparseHistogram {
  const first = list[0];
  const h = latencyHistogram(first?.highestTrackableValue ?? fallbackHighest, digits);
  for (const s of list) h.addSparse(s);
  return h.toSparse();
}

/** The totals of several processes as one. Slot lists must be equally long (or empty). */
export function mergeTotals(list: readonly FanoutTotals[], highestLatencyUs: number): FanoutTotals {
  const sum = (f: (t: FanoutTotals) => number) => list.reduce((a, t) => a + f(t), 0);
  const slotCount = Math.max(0, ...list.map((t) => t.slots.length));
  for (const t of list) {
    if (t.slots.length !== 0 && t.slots.length !== slotCount) throw new RangeError("slot counts differ");
  }
  return {
    clients: sum((t) => t.clients),
    delivered: sum((t) => t.delivered),
    deliveredInWindow: sum((t) => t.deliveredInWindow),
    duplicates: sum((t) => t.duplicates),
    outOfOrder: sum((t) => t.outOfOrder),
    lost: sum((t) => t.lost),
    undeliveredClosed: sum((t) => t.undeliveredClosed),
    unexpected: sum((t) => t.unexpected),
    foreign: sum((t) => t.foreign),
    closedClients: sum((t) => t.closedClients),
    latencyUs: addSparse(
      list.map((t) => t.latencyUs),
      highestLatencyUs,
      TOTAL_DIGITS,
    ),
    slots: Array.from({ length: slotCount }, (_, s) => {
      const parts = list.filter((t) => t.slots.length > 0).map((t) => t.slots[s]!);
      return {
        received: parts.reduce((a, p) => a + p.received, 0),
        lost: parts.reduce((a, p) => a + p.lost, 0),
        latencyUs: addSparse(
          parts.map((p) => p.latencyUs),
          highestLatencyUs,
          SLOT_DIGITS,
        ),
      };
    }),
  };
}

/** A sparse histogram's summary (as `Histogram.summary`). */
export function sparseSummary(s: SparseHistogram) {
  const h = new Histogram({
    highestTrackableValue: s.highestTrackableValue,
    significantDigits: s.significantDigits as 1 | 2 | 3 | 4,
  });
  h.addSparse(s);
  return h.summary();
}
