import {
  pino,
  destination,
  stdTimeFunctions,
  type DestinationStream,
  type Logger,
  type LevelWithSilent,
} from "pino";

export type { Logger };

/** Paths that must never reach a log line: tokens travel in frames, headers and URLs. */
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
];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * The one way a service builds its root logger: JSON lines on stdout, tokens redacted,
 * `service` on every line. Components take a logger and derive children with context
 * (`conn`, `user`, `partition`), never build their own.
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
    },
    (opts.destination as DestinationStream | undefined) ?? destination({ sync: true }),
  );
}
