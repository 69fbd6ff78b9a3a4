/**
 * The router's span in an event's trace. A room message's trace is
 *
 *   gateway A: rt.ws.receive └ send <room-events>            (traceparent in the record)
 *   router:                    └ fanout <room-events>          (CONSUMER, child of that header,
 *                                                               linked to it, ends at the commit)
 *   gateway B:                    └ process <deliveries>        (one per member's delivery record,
 *                                    └ rt.ws.deliver            all children of the fanout span)
 *
 * so one trace id covers sender, router and every recipient. The fanout span ends when the
 * transaction holding its deliveries commits (then the deliveries are visible to gateways) or
 * fails (error status; the batch is retried and makes a new span).
 *
 * With tracing off, or an unsampled parent under a parent-based sampler, no span is made and the
 * record's own traceparent is copied to the deliveries as it is.
 */
import {
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import type { InRecord } from "../common/kafka/kafka.ts";

export const SPAN_FANOUT_PREFIX = "fanout";

export interface FanoutSpanInfo {
  readonly room: string;
  readonly eventType: string;
  readonly recipients: number;
  readonly refused: string | null;
  readonly groupId: string;
}

export class FanoutTracing {
  constructor(
    private readonly tracer: Tracer | null,
    private readonly topic: string,
    private readonly followsParent: boolean,
  ) {}

  /**
   * The span of one room event's fanout and the headers its deliveries carry; null span when
   * none is made (the headers are then the record's own traceparent, if any).
   */
  start(record: InRecord, info: FanoutSpanInfo): { span: Span | null; headers: Record<string, string> } {
    const traceparent = record.headers["traceparent"];
    const passThrough: Record<string, string> = traceparent === undefined ? {} : { traceparent };
    if (this.tracer === null) return { span: null, headers: passThrough };
    const parent = propagation.extract(ROOT_CONTEXT, record.headers);
    const sc = trace.getSpanContext(parent);
    if (this.followsParent && sc !== undefined && (sc.traceFlags & TraceFlags.SAMPLED) === 0) {
      return { span: null, headers: passThrough };
    }
    const span = this.tracer.startSpan(
      `${SPAN_FANOUT_PREFIX} ${this.topic}`,
      {
        kind: SpanKind.CONSUMER,
        ...(sc === undefined ? {} : { links: [{ context: sc }] }),
        attributes: {
          "messaging.system": "kafka",
          "messaging.destination.name": this.topic,
          "messaging.operation.name": "process",
          "messaging.operation.type": "process",
          "messaging.consumer.group.name": info.groupId,
          "messaging.destination.partition.id": String(record.partition),
          "messaging.kafka.offset": Number(record.offset),
          "messaging.kafka.message.key": info.room,
          "rt.room": info.room,
          "rt.event.type": info.eventType,
          "rt.fanout.recipients": info.recipients,
          ...(info.refused === null ? {} : { "rt.fanout.refused": info.refused }),
        },
      },
      parent,
    );
    const headers: Record<string, string> = {};
    propagation.inject(trace.setSpan(parent, span), headers);
    return { span, headers };
  }

  /** The transaction holding the spans' deliveries committed (error: it failed). */
  static end(spans: readonly Span[], error?: unknown): void {
    for (const span of spans) {
      if (error !== undefined) {
        span.setAttribute("error.type", error instanceof Error ? error.name : "error");
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      }
      span.end();
    }
  }
}
