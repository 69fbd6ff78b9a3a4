/**
 * Live delivery and catch-up share one path: the records of one owned partition, in offset
 * order, go to every session of their recipient that does not have them yet. Each session
 * keeps its own last offset, so records read again (a catch-up seek, a rebalance that keeps
 * the partition) are never delivered twice.
 */
import type { Batch } from "../common/kafka/kafka.ts";
import type { Logger } from "../common/log.ts";
import { tryDecodeDelivery, type Delivery } from "../schemas/codec.ts";
import type { CatchUp } from "./catchup.ts";
import type { Ownership } from "./ownership.ts";
import type { Registry } from "./registry.ts";
import type { Session } from "./session.ts";

export interface DeliveryDeps {
  readonly ownership: Ownership;
  readonly registry: Registry<Session>;
  readonly catchUp: CatchUp;
  readonly epoch: string;
  readonly log: Logger;
}

export interface BatchOutcome {
  readonly records: number;
  readonly delivered: number;
  readonly undecodable: number;
}

export function deliverBatch(batch: Batch, deps: DeliveryDeps): BatchOutcome {
  const { ownership, registry, catchUp } = deps;
  const p = batch.partition;
  const first = batch.records[0];
  if (first === undefined || !ownership.owns(p)) return { records: 0, delivered: 0, undecodable: 0 };
  catchUp.batchStarts(p, BigInt(first.offset));
  let delivered = 0;
  let undecodable = 0;
  for (const record of batch.records) {
    const offset = BigInt(record.offset);
    ownership.advance(p, offset);
    catchUp.handled(p, offset);
    // The key is the recipient: most records are for users elsewhere, so look before decoding.
    if (record.value === null || record.key === null) continue;
    const sockets = registry.sockets(record.key.toString("utf8"));
    if (sockets === undefined) continue;
    const applied = catchUp.applied(p);
    let text: string | null | undefined;
    for (const session of sockets) {
      if (session.partition !== p || !session.accept(offset, applied)) continue;
      if (text === undefined) {
        const decoded = tryDecodeDelivery(record.value);
        // A producer that keyed a record by someone else than its recipient must not leak it.
        const mine = decoded.ok && decoded.delivery.recipient === session.user;
        text = mine ? eventText(decoded.delivery, `${deps.epoch}:${p}:${record.offset}`) : null;
        if (text === null) {
          undecodable += 1;
          deps.log.warn(
            {
              partition: p,
              offset: record.offset,
              code: decoded.ok ? (mine ? "bad_json_data" : "key_mismatch") : decoded.error.code,
            },
            "undeliverable record skipped",
          );
        }
      }
      if (text !== null && session.writeText(text)) delivered += 1;
    }
  }
  return { records: batch.records.length, delivered, undecodable };
}

/** The event frame, built once per record for all of the recipient's sockets. */
export function eventText(d: Delivery, cursor: string): string | null {
  // `data` is JSON text; backends may produce directly, so check it before splicing it in.
  try {
    JSON.parse(d.data);
  } catch {
    return null;
  }
  const to = d.room === null ? `user:${d.recipient}` : `room:${d.room}`;
  return (
    `{"op":"event","cursor":${JSON.stringify(cursor)},"id":${JSON.stringify(d.id)},` +
    `"from":${JSON.stringify(d.sender)},"to":${JSON.stringify(to)},"type":${JSON.stringify(d.type)},` +
    `"data":${d.data},"ts":${d.ts}}`
  );
}
