/**
 * The churn run's connect phase: starts the clients at the connect rate (an open-loop schedule,
 * like the sends) and waits until every one has been welcomed, the run is interrupted, or the
 * phase's deadline passes. One progress line a second.
 */
import type { Fleet } from "./churn-fleet.ts";
import type { SessionLog } from "./churn-sessions.ts";
import { Pacer } from "./pacer.ts";

const TICK_MS = 10;
/** After the last client started, how long the connect phase may go on. */
export const CONNECT_SLACK_S = 60;

export interface ConnectInput {
  readonly clients: number;
  readonly ratePerS: number;
  readonly fleet: Fleet;
  readonly sessions: SessionLog;
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
  /** Router answers by status since the last call. */
  readonly takeRouter: () => Record<string, number>;
  readonly now: () => number;
}

export interface ConnectOutcome {
  /** Why the phase failed; null when every client was welcomed. */
  readonly aborted: string | null;
  /** From the first start to the last first welcome (or to the end of the phase). */
  readonly wallMs: number;
}

const list = (r: Record<string, number>, none: string): string =>
  Object.entries(r)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ") || none;

export function connectAll(i: ConnectInput): Promise<ConnectOutcome> {
  const { fleet, sessions, now } = i;
  const start = now();
  const spanMs = Math.ceil((i.clients / i.ratePerS) * 1000);
  // No backlog limit: a client the schedule skipped would never connect.
  const starts = new Pacer({
    ratePerS: i.ratePerS,
    startMs: start,
    endMs: start + spanMs,
    maxBacklogMs: 1e12,
  });
  const deadline = start + spanMs + CONNECT_SLACK_S * 1000;
  let second = 0;
  return new Promise((done) => {
    const timer = setInterval(() => {
      const t = now();
      const due = starts.due(t).send;
      for (let k = 0; k < due && fleet.started < i.clients; k++) fleet.start(fleet.started);
      for (let n = 0; n < 100 && t >= start + (second + 1) * 1000; n++) {
        second++;
        i.log(
          `[${String(second).padStart(4)}s connect]  started ${fleet.started}/${i.clients}  ` +
            `welcomed ${sessions.connected}  sockets ${fleet.liveSockets}  router ${list(i.takeRouter(), "-")}  ` +
            `socket errors ${list(fleet.socketErrors.take(), "0")}`,
        );
      }
      let aborted: string | null | undefined;
      if (sessions.connected === i.clients) aborted = null;
      else if (i.signal.aborted) aborted = "interrupted (SIGINT) while connecting";
      else if (t > deadline) {
        aborted =
          `only ${sessions.connected} of ${i.clients} clients were welcomed within ` +
          `${Math.round((deadline - start) / 1000)} s`;
      }
      if (aborted !== undefined) {
        clearInterval(timer);
        done({ aborted, wallMs: Math.round(t - start) });
      }
    }, TICK_MS);
  });
}
