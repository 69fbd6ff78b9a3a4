/**
 * The bookkeeping of a direct-message run, as pure state: the I/O shell reports sends, acks,
 * deliveries and closes with their times, and reads counters, per-second intervals and the final
 * totals.
 *
 * Each pair has one sender, one receiver and its own sequence numbers 0, 1, 2, ...; per message
 * the tracker keeps one flag byte and its send time, in arrays sized for the run when it starts
 * (no per-message objects, memory known up front). From the flags:
 * - duplicate: a second delivery of a message already delivered;
 * - out of order: a delivery whose sequence number is below the highest already delivered on
 *   its pair (the design orders events per recipient, and each pair's sender is its only sender);
 * - lost: acked ok, never delivered by the end of the grace period. Messages whose receiver was
 *   closed during the run are counted apart: the run does not reconnect, so it cannot tell loss
 *   from a delivery that a resume would have made.
 *
 * Windows: rates count events whose own time (send, ack arrival, delivery arrival) falls in
 * [measureStartMs, measureEndMs); latency histograms hold the messages *sent* in that window,
 * whenever their ack or delivery arrived.
 */
import { Histogram, type HistogramSummary } from "./histogram.ts";

const SENT = 1;
const ACK_OK = 2;
const ACK_FAILED = 4;
const DELIVERED = 8;
const MEASURED = 16;

export interface TrackerOptions {
  readonly pairs: number;
  /** Most messages one pair can send in the run. */
  readonly maxSeqPerPair: number;
  readonly measureStartMs: number;
  readonly measureEndMs: number;
  /** Latencies above this (microseconds) are clamped. */
  readonly highestLatencyUs: number;
}

/** One second (or any interval) of the run. Latency is of deliveries that arrived in it. */
export interface Interval {
  readonly sent: number;
  readonly ackedOk: number;
  readonly ackedFailed: number;
  readonly delivered: number;
  readonly latencyUs: HistogramSummary;
}

export interface Totals {
  readonly sent: number;
  readonly ackedOk: number;
  readonly ackedFailed: Readonly<Record<string, number>>;
  /** Sent, but neither an ok nor a failed ack came back. */
  readonly ackMissing: number;
  readonly delivered: number;
  readonly lost: number;
  /** Acked ok and not delivered, on pairs whose receiver was closed during the run. */
  readonly undeliveredClosedReceiver: number;
  /** Delivered although the ack failed or never came: allowed by at-least-once, worth knowing. */
  readonly deliveredWithoutOkAck: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly pairsOutOfOrder: number;
  /** Acks or events that name no message this run sent. */
  readonly unknownAcks: number;
  readonly duplicateAcks: number;
  readonly foreignEvents: number;
  readonly closedReceivers: number;
  readonly measured: {
    readonly sent: number;
    readonly ackedOk: number;
    readonly ackedFailed: number;
    readonly delivered: number;
  };
  readonly endToEndUs: HistogramSummary;
  readonly ackUs: HistogramSummary;
}

function latencyHistogram(highestUs: number): Histogram {
  return new Histogram({ highestTrackableValue: Math.max(2, Math.ceil(highestUs)), significantDigits: 3 });
}

export class Tracker {
  readonly #o: TrackerOptions;
  readonly #flags: Uint8Array[];
  readonly #sendTimesMs: Float64Array[];
  readonly #nextSeq: Uint32Array;
  readonly #highestDelivered: Float64Array;
  readonly #pairOutOfOrder: Uint8Array;
  readonly #receiverClosed: Uint8Array;
  readonly #endToEnd: Histogram;
  readonly #ack: Histogram;
  readonly #intervalLatency: Histogram;
  readonly #failedByCode = new Map<string, number>();
  #sent = 0;
  #ackedOk = 0;
  #ackedFailed = 0;
  #delivered = 0;
  #okUndelivered = 0;
  #duplicates = 0;
  #outOfOrder = 0;
  #unknownAcks = 0;
  #duplicateAcks = 0;
  #foreignEvents = 0;
  #measured = { sent: 0, ackedOk: 0, ackedFailed: 0, delivered: 0 };
  #interval = { sent: 0, ackedOk: 0, ackedFailed: 0, delivered: 0 };

  constructor(options: TrackerOptions) {
    const { pairs, maxSeqPerPair } = options;
    if (!Number.isSafeInteger(pairs) || pairs < 1) throw new RangeError(`pairs must be >= 1, got ${pairs}`);
    if (!Number.isSafeInteger(maxSeqPerPair) || maxSeqPerPair < 1 || maxSeqPerPair > 2 ** 31) {
      throw new RangeError(`maxSeqPerPair must be in [1, 2^31], got ${maxSeqPerPair}`);
    }
    this.#o = options;
    this.#flags = Array.from({ length: pairs }, () => new Uint8Array(maxSeqPerPair));
    this.#sendTimesMs = Array.from({ length: pairs }, () => new Float64Array(maxSeqPerPair));
    this.#nextSeq = new Uint32Array(pairs);
    this.#highestDelivered = new Float64Array(pairs).fill(-1);
    this.#pairOutOfOrder = new Uint8Array(pairs);
    this.#receiverClosed = new Uint8Array(pairs);
    this.#endToEnd = latencyHistogram(options.highestLatencyUs);
    this.#ack = latencyHistogram(options.highestLatencyUs);
    this.#intervalLatency = latencyHistogram(options.highestLatencyUs);
  }

  #inWindow(tMs: number): boolean {
    return tMs >= this.#o.measureStartMs && tMs < this.#o.measureEndMs;
  }

  #known(pair: number, seq: number): boolean {
    return (
      Number.isSafeInteger(pair) &&
      pair >= 0 &&
      pair < this.#o.pairs &&
      Number.isSafeInteger(seq) &&
      seq >= 0 &&
      seq < this.#nextSeq[pair]! &&
      (this.#flags[pair]![seq]! & SENT) !== 0
    );
  }

  /** The sequence number of the pair's next message; null when its capacity is used up. */
  nextSeq(pair: number): number | null {
    const seq = this.#nextSeq[pair]!;
    return seq < this.#o.maxSeqPerPair ? seq : null;
  }

  /** The message `nextSeq(pair)` returned was handed to the socket at `nowMs`. */
  onSent(pair: number, seq: number, nowMs: number): void {
    if (seq !== this.#nextSeq[pair]) throw new RangeError(`pair ${pair}: sent seq ${seq} out of turn`);
    this.#nextSeq[pair] = seq + 1;
    const measured = this.#inWindow(nowMs);
    this.#flags[pair]![seq] = SENT | (measured ? MEASURED : 0);
    this.#sendTimesMs[pair]![seq] = nowMs;
    this.#sent++;
    this.#interval.sent++;
    if (measured) this.#measured.sent++;
  }

  onAck(pair: number, seq: number, ok: boolean, code: string | undefined, nowMs: number): void {
    if (!this.#known(pair, seq)) {
      this.#unknownAcks++;
      return;
    }
    const flags = this.#flags[pair]!;
    const f = flags[seq]!;
    if ((f & (ACK_OK | ACK_FAILED)) !== 0) {
      this.#duplicateAcks++;
      return;
    }
    flags[seq] = f | (ok ? ACK_OK : ACK_FAILED);
    const inWindow = this.#inWindow(nowMs);
    if ((f & MEASURED) !== 0) this.#ack.record((nowMs - this.#sendTimesMs[pair]![seq]!) * 1000);
    if (ok) {
      this.#ackedOk++;
      this.#interval.ackedOk++;
      if (inWindow) this.#measured.ackedOk++;
      if ((f & DELIVERED) === 0) this.#okUndelivered++;
    } else {
      const c = code ?? "unknown";
      this.#failedByCode.set(c, (this.#failedByCode.get(c) ?? 0) + 1);
      this.#ackedFailed++;
      this.#interval.ackedFailed++;
      if (inWindow) this.#measured.ackedFailed++;
    }
  }

  /** An event arrived at the pair's receiver; `sendTimeMs` is the one its payload carries. */
  onDelivered(pair: number, seq: number, sendTimeMs: number | null, nowMs: number): void {
    if (!this.#known(pair, seq)) {
      this.#foreignEvents++;
      return;
    }
    const flags = this.#flags[pair]!;
    const f = flags[seq]!;
    if ((f & DELIVERED) !== 0) {
      this.#duplicates++;
      return;
    }
    flags[seq] = f | DELIVERED;
    this.#delivered++;
    this.#interval.delivered++;
    if (this.#inWindow(nowMs)) this.#measured.delivered++;
    if ((f & ACK_OK) !== 0) this.#okUndelivered--;
    if (seq < this.#highestDelivered[pair]!) {
      this.#outOfOrder++;
      this.#pairOutOfOrder[pair] = 1;
    } else this.#highestDelivered[pair] = seq;
    const latencyUs = (nowMs - (sendTimeMs ?? this.#sendTimesMs[pair]![seq]!)) * 1000;
    this.#intervalLatency.record(latencyUs);
    if ((f & MEASURED) !== 0) this.#endToEnd.record(latencyUs);
  }

  onReceiverClosed(pair: number): void {
    this.#receiverClosed[pair] = 1;
  }

  /** Acks not yet back, and ok-acked messages not yet delivered: the grace period waits for both. */
  pending(): { acks: number; deliveries: number } {
    return { acks: this.#sent - this.#ackedOk - this.#ackedFailed, deliveries: this.#okUndelivered };
  }

  get sent(): number {
    return this.#sent;
  }

  get failures(): number {
    return this.#ackedFailed;
  }

  /** End-to-end latency of measured messages so far, in microseconds. */
  endToEndSoFar(): HistogramSummary {
    return this.#endToEnd.summary();
  }

  /** Counts since the previous call, and the latency of deliveries that arrived in between. */
  takeInterval(): Interval {
    const interval: Interval = { ...this.#interval, latencyUs: this.#intervalLatency.summary() };
    this.#interval = { sent: 0, ackedOk: 0, ackedFailed: 0, delivered: 0 };
    this.#intervalLatency.reset();
    return interval;
  }

  /** Scans every message once: call at the end. */
  totals(): Totals {
    let lost = 0;
    let undeliveredClosed = 0;
    let deliveredWithoutOk = 0;
    let ackMissing = 0;
    for (let pair = 0; pair < this.#o.pairs; pair++) {
      const flags = this.#flags[pair]!;
      const n = this.#nextSeq[pair]!;
      for (let seq = 0; seq < n; seq++) {
        const f = flags[seq]!;
        if ((f & (ACK_OK | ACK_FAILED)) === 0) ackMissing++;
        if ((f & ACK_OK) !== 0 && (f & DELIVERED) === 0) {
          if (this.#receiverClosed[pair] === 1) undeliveredClosed++;
          else lost++;
        }
        if ((f & DELIVERED) !== 0 && (f & ACK_OK) === 0) deliveredWithoutOk++;
      }
    }
    return {
      sent: this.#sent,
      ackedOk: this.#ackedOk,
      ackedFailed: Object.fromEntries([...this.#failedByCode].sort(([a], [b]) => a.localeCompare(b))),
      ackMissing,
      delivered: this.#delivered,
      lost,
      undeliveredClosedReceiver: undeliveredClosed,
      deliveredWithoutOkAck: deliveredWithoutOk,
      duplicates: this.#duplicates,
      outOfOrder: this.#outOfOrder,
      pairsOutOfOrder: this.#pairOutOfOrder.reduce((a, b) => a + b, 0),
      unknownAcks: this.#unknownAcks,
      duplicateAcks: this.#duplicateAcks,
      foreignEvents: this.#foreignEvents,
      closedReceivers: this.#receiverClosed.reduce((a, b) => a + b, 0),
      measured: { ...this.#measured },
      endToEndUs: this.#endToEnd.summary(),
      ackUs: this.#ack.summary(),
    };
  }
}
