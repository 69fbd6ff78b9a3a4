/**
 * The gateway's metrics. Names follow the OpenTelemetry semantic conventions where one exists
 * (messaging.*), `rt.` otherwise; docs/OBSERVABILITY.md lists every one.
 *
 * Counting must cost next to nothing per frame, so the hot path bumps plain numbers (`Counts`,
 * one map lookup) that observable instruments read at scrape time; only the latency histograms
 * are recorded per event, with attribute objects built once.
 */
import { getHeapSpaceStatistics } from "node:v8";
import type { Attributes, Histogram, Meter } from "@opentelemetry/api";
import { Counts } from "../common/telemetry.ts";
import { CLOSE_CODES } from "../schemas/close-codes.ts";
import { RESUME_REASONS } from "./resume.ts";

const by = (name: string) => (key: string) => ({ [name]: key });

/** Latency buckets in seconds: 1 ms to 1 min (delivery after a failover can take seconds). */
export const LATENCY_BUCKETS_S = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60,
];

export const KAFKA = { "messaging.system": "kafka" } as const;

/** What the observable instruments read: the gateway's live state. */
export interface GatewayGauges {
  /** Open WebSockets, and of them those with a live session. */
  connections(): { open: number; live: number };
  users(): number;
  ownedPartitions(): number;
  /** Per owned partition whose high watermark is known: records not yet handled. */
  lag(): Iterable<{ partition: number; records: number }>;
  sendQueue(): { queued: number; inFlight: number };
  catchUp(): { scans: number };
  resumeWindow(): { records: number; bytes: number };
}

export type DeliveryMode = "live" | "replay";

export class GatewayMetrics {
  /** Client frames by op, plus `invalid` (did not decode) and `binary`. */
  readonly framesIn = new Counts(by("rt.op"));
  /** Server frames by op. */
  readonly framesOut = new Counts(by("rt.op"));
  /** Key `stage:reason`: stage is upgrade, hello or refresh; reason from AUTH_FAILURES. */
  readonly authFailures = new Counts((key) => {
    const [stage, reason] = key.split(":");
    return { "rt.auth.stage": stage, "rt.auth.reason": reason };
  });
  /** Upgrades answered with an HTTP error before any WebSocket existed, by reason. */
  readonly upgradesRefused = new Counts(by("rt.reason"));
  /** Sends by the ack the sender got: `ok` or the error code. */
  readonly sends = new Counts(by("rt.result"));
  /** Records handed to Kafka by the result of their produce call (`ok` or the error type). */
  readonly produced = new Counts((key) => ({
    ...KAFKA,
    "messaging.destination.name": this.topic,
    ...errorType(key),
  }));
  /** Sockets the gateway closed, by close name (`slow`: slow consumers). */
  readonly closes = new Counts(by("rt.close.reason"));
  /** Resumes by outcome: `recovered` or the reason they were not. */
  readonly resumes = new Counts(by("rt.resume.outcome"));
  /** Records that could not be delivered, by reason. */
  readonly undeliverable = new Counts(by("rt.reason"));
  redirects = 0;
  rebalances = 0;
  /** Live channel events read from rt.channels, and socket writes they fanned out to. */
  channelEvents = 0;
  channelDeliveries = 0;
  /** Records read from the deliveries topic, and of them those read again by a catch-up. */
  recordsRead = 0;
  recordsReplayed = 0;
  /** Recovered resumes served from the resume window, with no seek. */
  windowResumes = 0;

  readonly #deliveryLatency: Histogram;
  readonly #live = { "rt.delivery.mode": "live" } as const;
  readonly #replay = { "rt.delivery.mode": "replay" } as const;
  readonly #sendDuration: Histogram;
  readonly #sendOk = { "rt.result": "ok" } as const;
  readonly #sendFailed = { "rt.result": "failed" } as const;
  readonly #produceDuration: Histogram;
  readonly #produceOk: Attributes;

  constructor(
    meter: Meter,
    private readonly topic: string,
    groupId: string,
    gauges: GatewayGauges,
  ) {
    // Series an alert may watch exist from the start, at 0.
    for (const name of Object.keys(CLOSE_CODES)) this.closes.add(name, 0);
    for (const reason of ["recovered", ...Object.keys(RESUME_REASONS)]) this.resumes.add(reason, 0);
    this.sends.add("ok", 0);
    const advice = { explicitBucketBoundaries: LATENCY_BUCKETS_S };
    this.#deliveryLatency = meter.createHistogram("rt.delivery.latency", {
      unit: "s",
      description: "Event timestamp (the sender's gateway clock) to the write on the recipient's socket",
      advice,
    });
    this.#sendDuration = meter.createHistogram("rt.send.duration", {
      unit: "s",
      description: "A send frame's arrival to its ack being written (ok: Kafka has the record)",
      advice,
    });
    this.#produceDuration = meter.createHistogram("messaging.client.operation.duration", {
      unit: "s",
      description: "Duration of one produce request (a batch of sends) to Kafka, acks=all",
      advice,
    });
    this.#produceOk = {
      ...KAFKA,
      "messaging.operation.name": "send",
      "messaging.operation.type": "send",
      "messaging.destination.name": topic,
    };
    const counter = (name: string, description: string, unit: string, counts: Counts) =>
      meter.createObservableCounter(name, { description, unit }).addCallback((r) => counts.observe(r));
    const single = (name: string, description: string, unit: string, read: () => number) =>
      meter.createObservableCounter(name, { description, unit }).addCallback((r) => r.observe(read()));
    counter("rt.ws.frames.received", "Client frames by op", "{frame}", this.framesIn);
    counter("rt.ws.frames.sent", "Server frames by op", "{frame}", this.framesOut);
    counter("rt.auth.failures", "Refused tokens by stage and reason", "{failure}", this.authFailures);
    counter("rt.ws.upgrades.refused", "Upgrades refused before auth", "{upgrade}", this.upgradesRefused);
    counter("rt.sends", "Send frames by the ack they got", "{send}", this.sends);
    counter("messaging.client.sent.messages", "Records produced to Kafka", "{message}", this.produced);
    counter("rt.ws.closes", "Sockets closed by the gateway, by close name", "{close}", this.closes);
    counter("rt.resumes", "Sessions by resume outcome", "{session}", this.resumes);
    counter("rt.delivery.undeliverable", "Records skipped as undeliverable", "{record}", this.undeliverable);
    single("rt.redirects", "hello answered with a redirect", "{redirect}", () => this.redirects);
    single("rt.channel.events", "Live channel events read", "{event}", () => this.channelEvents);
    single(
      "rt.fanout.deliveries",
      "Socket writes of live channel events (fanout on read)",
      "{delivery}",
      () => this.channelDeliveries,
    );
    single(
      "rt.rebalances",
      "Group rebalances seen (assignments received)",
      "{rebalance}",
      () => this.rebalances,
    );
    single(
      "rt.catchup.scans",
      "Catch-up seeks (one per scan of a partition)",
      "{scan}",
      () => gauges.catchUp().scans,
    );
    single(
      "rt.catchup.records",
      "Records read again by catch-up scans",
      "{record}",
      () => this.recordsReplayed,
    );
    single(
      "rt.resume.window.hits",
      "Recovered resumes served from the resume window (memory), with no catch-up seek",
      "{session}",
      () => this.windowResumes,
    );
    meter
      .createObservableGauge("rt.resume.window.size", {
        description: "Memory the resume window takes (estimated from the records it holds)",
        unit: "By",
      })
      .addCallback((r) => r.observe(gauges.resumeWindow().bytes));
    const consumed = {
      ...KAFKA,
      "messaging.destination.name": topic,
      "messaging.consumer.group.name": groupId,
    };
    meter
      .createObservableCounter("messaging.client.consumed.messages", {
        description: "Records read from the deliveries topic",
        unit: "{message}",
      })
      .addCallback((r) => r.observe(this.recordsRead, consumed));
    const live = { "rt.state": "live" } as const;
    const pending = { "rt.state": "pending" } as const;
    meter
      .createObservableUpDownCounter("rt.ws.connections", {
        description: "Open WebSockets: live sessions, and pending ones (before welcome)",
        unit: "{connection}",
      })
      .addCallback((r) => {
        const c = gauges.connections();
        r.observe(c.live, live);
        r.observe(Math.max(0, c.open - c.live), pending);
      });
    meter
      .createObservableUpDownCounter("rt.ws.users", {
        description: "Users with a live session",
        unit: "{user}",
      })
      .addCallback((r) => r.observe(gauges.users()));
    meter
      .createObservableUpDownCounter("rt.partitions.owned", {
        description: "Partitions of the deliveries topic this gateway owns",
        unit: "{partition}",
      })
      .addCallback((r) => r.observe(gauges.ownedPartitions()));
    const queued = { "rt.state": "queued" } as const;
    const inFlight = { "rt.state": "in_flight" } as const;
    meter
      .createObservableUpDownCounter("rt.send.queue", {
        description: "Sends waiting for Kafka: queued, or in a produce request",
        unit: "{send}",
      })
      .addCallback((r) => {
        const q = gauges.sendQueue();
        r.observe(q.queued, queued);
        r.observe(q.inFlight, inFlight);
      });
    // The process's own memory, so memory per connection can be read from /metrics alone.
    meter
      .createObservableGauge("process.memory.usage", {
        description: "Resident set size of the gateway process",
        unit: "By",
      })
      .addCallback((r) => r.observe(process.memoryUsage.rss()));
    const spaces = new Map<string, Attributes>();
    meter
      .createObservableGauge("v8js.memory.heap.used", {
        description: "V8 heap in use (live objects and garbage not yet collected), by heap space",
        unit: "By",
      })
      .addCallback((r) => {
        for (const s of getHeapSpaceStatistics()) {
          let a = spaces.get(s.space_name);
          if (a === undefined) {
            a = { "v8js.heap.space.name": s.space_name };
            spaces.set(s.space_name, a);
          }
          r.observe(s.space_used_size, a);
        }
      });
    const lagAttributes = new Map<number, Attributes>();
    meter
      .createObservableGauge("rt.consumer.lag", {
        description: "Per owned partition: high watermark minus the next offset to handle",
        unit: "{message}",
      })
      .addCallback((r) => {
        for (const { partition, records } of gauges.lag()) {
          let a = lagAttributes.get(partition);
          if (a === undefined) {
            a = { ...consumed, "messaging.destination.partition.id": String(partition) };
            lagAttributes.set(partition, a);
          }
          r.observe(records, a);
        }
      });
  }

  /** One event written to a socket: its age since the sender's gateway stamped it. */
  delivered(eventTsMs: number, nowMs: number, mode: DeliveryMode): void {
    this.framesOut.add("event");
    this.#deliveryLatency.record(
      Math.max(0, nowMs - eventTsMs) / 1000,
      mode === "live" ? this.#live : this.#replay,
    );
  }

  /** One send acked to its sender, `code` "ok" or the error code. */
  acked(code: string, durationMs: number): void {
    this.sends.add(code);
    this.#sendDuration.record(durationMs / 1000, code === "ok" ? this.#sendOk : this.#sendFailed);
  }

  /** One produce request settled: `error` is the failure's type, undefined when it succeeded. */
  producedBatch(records: number, durationMs: number, error: string | undefined): void {
    this.produced.add(error ?? "ok", records);
    this.#produceDuration.record(
      durationMs / 1000,
      error === undefined ? this.#produceOk : { ...this.#produceOk, "error.type": error },
    );
  }
}

function errorType(key: string): Attributes {
  return key === "ok" ? {} : { "error.type": key };
}
