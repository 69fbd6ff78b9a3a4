/**
 * The router's metrics: /v1/connect answers as the semantic conventions' HTTP server duration
 * (by status code, and `error.type` = the router error code, which tells `no_owner` from
 * `unavailable` behind the same 503), refused tokens, and what the placement cache knows.
 * docs/OBSERVABILITY.md lists every one.
 */
import type { Attributes, Histogram, Meter } from "@opentelemetry/api";
import { Counts } from "../common/telemetry.ts";
import { LATENCY_BUCKETS_S } from "../gateway/metrics.ts";
import { CONNECT_PATH } from "./connect.ts";
import type { FanoutStats } from "./fanout.ts";
import type { PlacementStatus } from "./placement.ts";

export class RouterMetrics {
  /** Key `connect:reason`, the same shape as the gateway's. */
  readonly authFailures = new Counts((key) => {
    const [stage, reason] = key.split(":");
    return { "rt.auth.stage": stage, "rt.auth.reason": reason };
  });
  readonly #duration: Histogram;
  readonly #answerAttributes = new Map<string, Attributes>();

  constructor(
    meter: Meter,
    placement: () => PlacementStatus,
    /** The room fanout's counters; null until it has started. */
    fanout: () => FanoutStats | null = () => null,
  ) {
    this.#duration = meter.createHistogram("http.server.request.duration", {
      unit: "s",
      description: "Duration of GET /v1/connect requests, by answer",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S },
    });
    meter
      .createObservableCounter("rt.auth.failures", { description: "Refused tokens", unit: "{failure}" })
      .addCallback((r) => this.authFailures.observe(r));
    meter
      .createObservableUpDownCounter("rt.router.gateways", {
        description: "Members of the gateways' consumer group at the last good read",
        unit: "{gateway}",
      })
      .addCallback((r) => r.observe(placement().members));
    meter
      .createObservableUpDownCounter("rt.router.partitions.owned", {
        description: "Partitions of the deliveries topic with a known owner",
        unit: "{partition}",
      })
      .addCallback((r) => r.observe(placement().ownedPartitions));
    meter
      .createObservableUpDownCounter("rt.router.connect.held", {
        description: "/v1/connect requests held for the new owner of a partition that is moving",
        unit: "{request}",
      })
      .addCallback((r) => r.observe(placement().held));
    meter
      .createObservableGauge("rt.router.placement.age", {
        description: "Age of the ownership the router serves (time since the last good read)",
        unit: "s",
      })
      .addCallback((r) => {
        const age = placement().ageMs;
        if (age !== null) r.observe(age / 1000);
      });
    const fanoutCounter = (
      name: string,
      description: string,
      unit: string,
      read: (s: FanoutStats) => number,
    ) =>
      meter.createObservableCounter(name, { description, unit }).addCallback((r) => {
        const s = fanout();
        if (s !== null) r.observe(read(s));
      });
    fanoutCounter(
      "rt.room.fanout.events",
      "Room events applied (messages, joins, leaves)",
      "{event}",
      (s) => s.events,
    );
    fanoutCounter(
      "rt.room.fanout.deliveries",
      "Delivery records written by room fanout (committed transactions)",
      "{record}",
      (s) => s.deliveries,
    );
    fanoutCounter(
      "rt.room.fanout.refused",
      "Room events refused in log order (sender not a member, room full)",
      "{event}",
      (s) => s.refused,
    );
    fanoutCounter(
      "rt.room.fanout.undecodable",
      "Room event records skipped as unreadable",
      "{record}",
      (s) => s.undecodable,
    );
    fanoutCounter(
      "rt.room.fanout.transactions",
      "Fanout transactions committed",
      "{transaction}",
      (s) => s.transactions,
    );
    fanoutCounter(
      "rt.room.fanout.aborted",
      "Fanout transactions aborted (the batch is retried)",
      "{transaction}",
      (s) => s.aborted,
    );
    meter
      .createObservableUpDownCounter("rt.room.fanout.partitions.owned", {
        description: "Partitions of the room-events topic this router fans out",
        unit: "{partition}",
      })
      .addCallback((r) => {
        const s = fanout();
        if (s !== null) r.observe(s.owned.length);
      });
  }

  /** One /v1/connect answer: `status` as uWS writes it ("503 Service Unavailable"). */
  answered(status: string, errorCode: string | undefined, durationMs: number): void {
    const key = `${status}|${errorCode ?? ""}`;
    let a = this.#answerAttributes.get(key);
    if (a === undefined) {
      a = {
        "http.request.method": "GET",
        "http.route": CONNECT_PATH,
        "http.response.status_code": Number.parseInt(status, 10),
        ...(errorCode === undefined ? {} : { "error.type": errorCode }),
      };
      this.#answerAttributes.set(key, a);
    }
    this.#duration.record(durationMs / 1000, a);
  }
}
