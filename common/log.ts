import { context, isSpanContextValid, trace, type Context } from "@opentelemetry/api";
import {
  pino,
  destination,
  stdTimeFunctions,
  type DestinationStream,
  type Logger,
  type LevelWithSilent,
} from "pino";

export type { Logger };

/**
 * Paths that must never reach a log line: tokens travel in frames, headers and URLs; message
 * payloads (`data`, record values) are the users' business, not the operators'.
 */
export const REDACTED_PATHS = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "password",
  "*.password",
  "secret",
  "*.secret",
  "data",
  "*.data",
  "payload",
  "*.payload",
];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const NO_TRACE: Readonly<Record<string, never>> = Object.freeze({});

/**
 * `trace_id` and `span_id` of the span active in `ctx` (W3C hex, as tracing backends show
 * them), or nothing outside a span. Without a registered context manager (tracing off) the
 * active context is always the empty root: one map lookup per line.
 */
export function traceFields(ctx: Context = context.active()): Readonly<Record<string, string>> {
  const span = trace.getSpan(ctx);
  if (span === undefined) return NO_TRACE;
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return NO_TRACE;
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

/**
 * The one way a service builds its root logger: JSON lines on stdout, tokens and payloads
 * redacted, `service` on every line, `trace_id`/`span_id` on lines written inside a span.
 * Components take a logger and derive children with context (`conn`, `user`, `partition`),
 * never build their own.
 */
export function createLogger(opts: {
  service: string;
  level: LevelWithSilent;
  destination?: NodeJS.WritableStream;
}): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: opts.service, pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => traceFields(),
      // pino's default merge writes the line's fields into the mixin's object: keep the shared
      // empty one untouched (and skip the copy) outside spans.
      mixinMergeStrategy: (fields, mixed) => (mixed === NO_TRACE ? fields : Object.assign(mixed, fields)),
    },
    (opts.destination as DestinationStream | undefined) ?? destination({ sync: true }),
  );
}
