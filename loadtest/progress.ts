/** The once-a-second progress line on stderr: what the last second did, and the p99 so far. */
import type { Phase } from "./report.ts";
import type { Interval } from "./tracker.ts";

export interface ProgressInput {
  readonly second: number;
  readonly phase: Phase;
  readonly interval: Interval;
  /** p99 end-to-end of measured messages so far, microseconds; null before measuring. */
  readonly measuredP99Us: number | null;
  readonly failures: number;
  readonly unexpectedCloses: number;
  readonly pendingAcks: number;
  readonly pendingDeliveries: number;
}

const ms = (us: number): string => (us / 1000).toFixed(1);

export function progressLine(p: ProgressInput): string {
  const i = p.interval;
  const parts = [
    `[${String(p.second).padStart(4)}s ${p.phase.padEnd(7)}]`,
    `sent/s ${i.sent}`,
    `acked/s ${i.ackedOk}`,
    `delivered/s ${i.delivered}`,
    `p99 ${i.latencyUs.count === 0 ? "-" : ms(i.latencyUs.p99)} ms` +
      (p.measuredP99Us === null ? "" : ` (run ${ms(p.measuredP99Us)} ms)`),
    `failed ${p.failures}`,
    `closed ${p.unexpectedCloses}`,
    `pending acks ${p.pendingAcks} deliveries ${p.pendingDeliveries}`,
  ];
  return parts.join("  ");
}
