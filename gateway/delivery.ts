/**
 * Live delivery and catch-up share one path: the records of one owned partition, in offset
 * order, go to every session of their recipient that does not have them yet. Each session
 * keeps its own last offset, so records read again (a catch-up seek, a rebalance that keeps
 * the partition) are never delivered twice.
 */
import type { Span } from "@opentelemetry/api";
import type { Batch, InRecord } from "../common/kafka/kafka.ts";
import type { Logger } from "../common/log.ts";
import { tryDecodeDelivery } from "../schemas/codec.ts";
import type { Delivery } from "../schemas/codec.ts";
import type { CatchUp } from "./catchup.ts";
import { EventMessage } from "./event-message.ts";
import type { DeliveryMode, GatewayMetrics } from "./metrics.ts";
import type { Ownership } from "./ownership.ts";
import type { Registry } from "./registry.ts";
import type { ResumeWindow, WindowEntry } from "./resume-window.ts";
import type { Revocations } from "./revocations.ts";
import { CONTROL_HEADER, SystemType } from "../schemas/records.ts";
import type { Session } from "./session.ts";
import { within, type GatewayTracing } from "./tracing.ts";

export interface DeliveryDeps {
  readonly ownership: Ownership;
  readonly registry: Registry<Session>;
  readonly catchUp: CatchUp;
  readonly window: ResumeWindow<DecodedEvent>;
  readonly epoch: string;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly tracing: GatewayTracing;
  readonly revocations: Revocations;
}

/** A record's event frame and timestamp, decoded once for every session that gets it. */
export interface DecodedEvent {
  readonly message: EventMessage;
  readonly ts: number;
}

export interface BatchOutcome {
  readonly records: number;
  readonly delivered: number;
  readonly undecodable: number;
}

/**
 * Delivers one batch. A record at or below the partition's position before the batch is read
 * again (a catch-up seek): it goes only to sessions that lack it, is counted as a replay and
 * gets a `process` span only when someone takes it; a record read for the first time always
 * gets one (with tracing on), so a trace shows an event reached its gateway while its
 * recipient was offline.
 */
export function deliverBatch(batch: Batch, deps: DeliveryDeps): BatchOutcome {
  const { ownership, registry, catchUp, metrics } = deps;
  const tracing = deps.tracing.enabled ? deps.tracing : null;
  const p = batch.partition;
  const first = batch.records[0];
  if (first === undefined || !ownership.owns(p)) return { records: 0, delivered: 0, undecodable: 0 };
  catchUp.batchStarts(p, BigInt(first.offset));
  const before = ownership.position(p) ?? -1n;
  let delivered = 0;
  let undecodable = 0;
  let replayed = 0;
  for (const record of batch.records) {
    const offset = BigInt(record.offset);
    const mode: DeliveryMode = offset <= before ? "replay" : "live";
    if (mode === "replay") replayed += 1;
    ownership.advance(p, offset);
    catchUp.handled(p, offset);
    if (record.value === null || record.key === null) {
      deps.window.observe(p, offset, record, null);
      continue;
    }
    if (record.headers[CONTROL_HEADER] !== undefined) {
      // Not kept: a resume checks revocations itself, and they were noted when this was read.
      deps.window.observe(p, offset, record, null);
      control(record, deps);
      continue;
    }
    const user = record.key.toString("utf8");
    const kept = deps.window.observe(p, offset, record, user);
    // Live records always get their process span; replayed ones only when someone takes them.
    let traced = tracing !== null && mode === "live";
    let span = traced && tracing !== null ? tracing.startProcess(record, deps.epoch, mode) : null;
    // The key is the recipient: most records are for users elsewhere, so look before decoding.
    const sockets = registry.sockets(user);
    let taken = 0;
    if (sockets !== undefined) {
      const applied = catchUp.applied(p);
      let event: DecodedEvent | null | undefined;
      for (const session of sockets) {
        if (session.partition !== p || !session.accept(offset, applied)) continue;
        taken += 1;
        if (tracing !== null && !traced) {
          traced = true;
          span = tracing.startProcess(record, deps.epoch, mode);
        }
        // Decoded once for all of the recipient's sessions (null: undeliverable, counted once).
        if (event === undefined)
          event =
            span === null
              ? decodeEvent(record, session.user, deps)
              : within(span, () => decodeEvent(record, session.user, deps));
        if (event === null) continue;
        if (deliverTo(session, event, record, mode, span, deps)) delivered += 1;
      }
      if (event === null) undecodable += 1;
      if (kept !== null && event !== undefined) kept.event = event;
    }
    if (span !== null) {
      span.setAttribute("rt.recipient.sessions", taken);
      span.end();
    }
  }
  metrics.recordsRead += batch.records.length;
  metrics.recordsReplayed += replayed;
  return { records: batch.records.length, delivered, undecodable };
}

/**
 * A control record: never delivered as an event. `revoke` closes every session of the user whose
 * token was issued at or before the revocation, and remembers it so older tokens are refused.
 * Read again in a catch-up, it closes nothing newer than itself.
 */
function control(record: InRecord, deps: DeliveryDeps): void {
  const decoded = tryDecodeDelivery(record.value!);
  const user = record.key!.toString("utf8");
  if (!decoded.ok || decoded.delivery.recipient !== user || decoded.delivery.type !== SystemType.revoke) {
    deps.metrics.undeliverable.add(decoded.ok ? "bad_control" : decoded.error.code);
    deps.log.warn(
      { partition: record.partition, offset: record.offset },
      "unreadable control record skipped",
    );
    return;
  }
  const at = decoded.delivery.ts;
  deps.revocations.note(user, at);
  let closed = 0;
  for (const session of [...(deps.registry.sockets(user) ?? [])]) {
    if (session.issuedAtMs <= at) {
      session.revoke();
      closed += 1;
    }
  }
  deps.log.info({ user, partition: record.partition, offset: record.offset, closed }, "sessions revoked");
}

/**
 * A resume served from the window: the session's records after its cursor, in order, each in a
 * `process` span (mode replay) when traced. Returns how many were written.
 */
export function deliverFromWindow(
  session: Session,
  entries: readonly WindowEntry<DecodedEvent>[],
  deps: Pick<DeliveryDeps, "epoch" | "log" | "metrics" | "tracing">,
): number {
  const tracing = deps.tracing.enabled ? deps.tracing : null;
  let delivered = 0;
  for (const entry of entries) {
    const span = tracing === null ? null : tracing.startProcess(entry.record, deps.epoch, "replay");
    if (entry.event === undefined)
      entry.event =
        span === null
          ? decodeEvent(entry.record, entry.user, deps)
          : within(span, () => decodeEvent(entry.record, entry.user, deps));
    if (entry.event !== null && deliverTo(session, entry.event, entry.record, "replay", span, deps))
      delivered += 1;
    if (span !== null) {
      span.setAttribute("rt.recipient.sessions", 1);
      span.end();
    }
  }
  return delivered;
}

function cursorOf(deps: Pick<DeliveryDeps, "epoch">, record: InRecord): string {
  return `${deps.epoch}:${record.partition}:${record.offset}`;
}

/** The event frame of a record, or null (logged, counted) when it cannot be delivered. */
function decodeEvent(
  record: InRecord,
  user: string | null,
  deps: Pick<DeliveryDeps, "epoch" | "log" | "metrics">,
): DecodedEvent | null {
  const decoded = tryDecodeDelivery(record.value!);
  // A producer that keyed a record by someone else than its recipient must not leak it.
  const mine = decoded.ok && decoded.delivery.recipient === user;
  const message = mine ? eventMessage(decoded.delivery, cursorOf(deps, record)) : null;
  if (message !== null && decoded.ok) return { message, ts: decoded.delivery.ts };
  const code = decoded.ok ? (mine ? "bad_json_data" : "key_mismatch") : decoded.error.code;
  deps.metrics.undeliverable.add(code);
  deps.log.warn({ partition: record.partition, offset: record.offset, code }, "undeliverable record skipped");
  return null;
}

/** One socket write, inside its `rt.ws.deliver` span when the record is traced. */
function deliverTo(
  session: Session,
  event: DecodedEvent,
  record: InRecord,
  mode: DeliveryMode,
  process: Span | null,
  deps: Pick<DeliveryDeps, "epoch" | "log" | "metrics" | "tracing">,
): boolean {
  const traced = process !== null && process.isRecording();
  if (!traced && !deps.log.isLevelEnabled("debug")) {
    const ok = session.writeEvent(event.message);
    if (ok) deps.metrics.delivered(event.ts, Date.now(), mode);
    return ok;
  }
  const cursor = cursorOf(deps, record);
  const span = traced ? deps.tracing.startDeliver(process, session.id, session.user ?? "", cursor) : null;
  return within(span, () => {
    const ok = session.writeEvent(event.message);
    if (ok) deps.metrics.delivered(event.ts, Date.now(), mode);
    span?.setAttribute("rt.delivery.ok", ok);
    span?.end();
    deps.log.debug({ conn: session.id, user: session.user, cursor, mode, ok }, "event delivered");
    return ok;
  });
}

/** The event frame, built once per record for all of the recipient's sockets. */
export function eventMessage(d: Delivery, cursor: string): EventMessage | null {
  const to = d.room === null ? `user:${d.recipient}` : `room:${d.room}`;
  return EventMessage.of({ cursor, id: d.id, from: d.sender, to, type: d.type, data: d.data, ts: d.ts });
}
