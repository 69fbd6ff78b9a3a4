/**
 * The gateway's spans. uWebSockets.js and the gateway's batched produce are not instrumented by
 * OpenTelemetry, so the spans are made here by hand; one event's trace is
 *
 *   gateway A: rt.ws.receive (SERVER, child of the send frame's traceparent, if any)
 *                └ send <topic> (PRODUCER, enqueue to Kafka's ack; its context goes in the
 *                                record's `traceparent` header)
 *   gateway B:     └ process <topic> (CONSUMER, child of the header)
 *                     └ rt.ws.deliver (one per socket of the recipient)
 *
 * Why not @opentelemetry/instrumentation-kafkajs (0.32.0 is the last release for Node 20 and
 * instrumentation 0.223): the gateway hands KafkaJS one `send` per batch of many clients' sends
 * from a timer, so that instrumentation would parent every record of a batch to whatever
 * context the timer carried and overwrite the header with it; and in eachBatch mode it starts
 * a new trace per batch with only links to the producers. Neither gives one trace per event.
 *
 * Callers check `enabled` before calling anything here: with tracing off nothing is allocated.
 * A span that is not sampled is not recording: no child span is made under it, but its
 * (unsampled) context still travels in the header so gateway B makes the same decision. With
 * 1% sampling that is the fate of 99% of events, so that path is kept short: attributes are
 * set only on recording spans (samplers here do not look at attributes), and gateway B makes no
 * span at all under an unsampled parent when the sampler follows the parent.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import type { InRecord } from "../common/kafka/kafka.ts";
import type { DeliveryMode } from "./metrics.ts";

export const SPAN_RECEIVE = "rt.ws.receive";
export const SPAN_DELIVER = "rt.ws.deliver";

/** The spans of one send frame on the sender's gateway. */
export interface SendTrace {
  readonly receive: Span;
  /** The context holding the receive span: logs written inside it carry its ids. */
  readonly context: Context;
  /** null when the receive span is not sampled. */
  readonly produce: Span | null;
  /** For the Kafka record: the produce span's (or the unsampled receive span's) traceparent. */
  readonly headers: Record<string, string>;
}

export interface SendStart {
  readonly conn: string;
  readonly user: string;
  readonly id: string;
  readonly to: string;
  readonly recipient: string;
  readonly partition: number;
  readonly traceparent: string | undefined;
  /** The topic written to; default: the deliveries topic. */
  readonly topic?: string;
  /** The frame's op, e.g. send or join; default: send. */
  readonly op?: string;
}

export class GatewayTracing {
  readonly #messaging: Readonly<Record<string, string>>;

  constructor(
    private readonly tracer: Tracer,
    readonly enabled: boolean,
    private readonly topic: string,
    private readonly groupId: string,
    /** The sampler is parent-based: no span under an unsampled parent. */
    private readonly followsParent: boolean,
  ) {
    this.#messaging = { "messaging.system": "kafka", "messaging.destination.name": topic };
  }

  startSend(s: SendStart): SendTrace {
    const parent =
      s.traceparent === undefined
        ? ROOT_CONTEXT
        : propagation.extract(ROOT_CONTEXT, { traceparent: s.traceparent });
    const receive = this.tracer.startSpan(SPAN_RECEIVE, { kind: SpanKind.SERVER }, parent);
    const ctx = trace.setSpan(parent, receive);
    const headers: Record<string, string> = {};
    if (!receive.isRecording()) {
      propagation.inject(ctx, headers);
      return { receive, context: ctx, produce: null, headers };
    }
    receive.setAttributes({
      "rt.op": s.op ?? "send",
      "rt.conn": s.conn,
      "user.id": s.user,
      "rt.message.id": s.id,
      "rt.target": s.to,
    });
    const topic = s.topic ?? this.topic;
    const produce = this.tracer.startSpan(
      `send ${topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          ...this.#messaging,
          "messaging.destination.name": topic,
          "messaging.operation.name": "send",
          "messaging.operation.type": "send",
          "messaging.destination.partition.id": String(s.partition),
          "messaging.kafka.message.key": s.recipient,
        },
      },
      ctx,
    );
    propagation.inject(trace.setSpan(ctx, produce), headers);
    return { receive, context: ctx, produce, headers };
  }

  /** Kafka answered (or the send failed before it did): ends the produce span. */
  produced(
    t: SendTrace,
    result: { offset: string; cursor: string } | { error: string; message: string },
  ): void {
    const span = t.produce;
    if (span === null) return;
    if ("offset" in result) {
      span.setAttribute("messaging.kafka.offset", Number(result.offset));
      span.setAttribute("rt.cursor", result.cursor);
    } else {
      span.setAttribute("error.type", result.error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: result.message });
    }
    span.end();
  }

  /** The ack is written: ends the receive span. */
  acked(t: SendTrace, result: string, cursor: string | undefined): void {
    if (!t.receive.isRecording()) return;
    t.receive.setAttribute("rt.result", result);
    if (cursor !== undefined) t.receive.setAttribute("rt.cursor", cursor);
    if (result !== "ok") t.receive.setStatus({ code: SpanStatusCode.ERROR, message: result });
    t.receive.end();
  }

  /**
   * A record of an owned partition is being handled: a child of the record's traceparent, or
   * null when that parent is unsampled and the sampler follows it.
   */
  startProcess(record: InRecord, epoch: string, mode: DeliveryMode): Span | null {
    const parent = propagation.extract(ROOT_CONTEXT, record.headers);
    if (this.followsParent) {
      const sc = trace.getSpanContext(parent);
      if (sc !== undefined && (sc.traceFlags & TraceFlags.SAMPLED) === 0) return null;
    }
    const span = this.tracer.startSpan(`process ${this.topic}`, { kind: SpanKind.CONSUMER }, parent);
    if (!span.isRecording()) return span;
    span.setAttributes({
      ...this.#messaging,
      "messaging.operation.name": "process",
      "messaging.operation.type": "process",
      "messaging.consumer.group.name": this.groupId,
      "messaging.destination.partition.id": String(record.partition),
      "messaging.kafka.offset": Number(record.offset),
      "messaging.kafka.message.key": record.key?.toString("utf8") ?? "",
      "rt.cursor": `${epoch}:${record.partition}:${record.offset}`,
      "rt.delivery.mode": mode,
    });
    return span;
  }

  /** The write of one event to one socket of the recipient: a child of `process`. */
  startDeliver(process: Span, conn: string, user: string, cursor: string): Span {
    return this.tracer.startSpan(
      SPAN_DELIVER,
      { kind: SpanKind.INTERNAL, attributes: { "rt.conn": conn, "user.id": user, "rt.cursor": cursor } },
      trace.setSpan(ROOT_CONTEXT, process),
    );
  }
}

/** Runs `fn` with `span` active (so log lines carry its ids) when it records; else just runs it. */
export function within<T>(span: Span | null, fn: () => T): T {
  if (span === null || !span.isRecording()) return fn();
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** Runs `fn` inside `ctx` when its span records. */
export function inContext<T>(ctx: Context, fn: () => T): T {
  const span = trace.getSpan(ctx);
  if (span === undefined || !span.isRecording()) return fn();
  return context.with(ctx, fn);
}
