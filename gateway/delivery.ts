/**
 * Live delivery: the records of one owned partition, in offset order, to every live socket
 * of each recipient on this gateway. Records at or below the partition's position were
 * handled already (Kafka redelivers from the committed offset after a rebalance) and are
 * skipped, so a kept partition never delivers twice.
 */
import type { Batch } from "../common/kafka/kafka.ts";
import type { Logger } from "../common/log.ts";
import { tryDecodeDelivery, type Delivery } from "../schemas/codec.ts";
import type { Ownership } from "./ownership.ts";
import type { Registry } from "./registry.ts";
import type { Session } from "./session.ts";

export interface DeliveryDeps {
  readonly ownership: Ownership;
  readonly registry: Registry<Session>;
  readonly epoch: string;
  readonly log: Logger;
}

export interface BatchOutcome {
  readonly delivered: number;
  readonly skipped: number;
  readonly undecodable: number;
}

export function deliverBatch(batch: Batch, deps: DeliveryDeps): BatchOutcome {
  const { ownership, registry } = deps;
  const p = batch.partition;
  let delivered = 0;
  let skipped = 0;
  let undecodable = 0;
  for (const record of batch.records) {
    if (!ownership.owns(p)) break;
    const offset = BigInt(record.offset);
    const position = ownership.position(p) ?? -1n;
    if (offset <= position) {
      skipped += 1;
      continue;
    }
    ownership.advance(p, offset);
    if (record.value === null) continue;
    const decoded = tryDecodeDelivery(record.value);
    if (!decoded.ok) {
      undecodable += 1;
      deps.log.warn(
        { partition: p, offset: record.offset, code: decoded.error.code },
        "undecodable delivery skipped",
      );
      continue;
    }
    const sockets = registry.sockets(decoded.delivery.recipient);
    if (sockets === undefined) continue;
    const text = eventText(decoded.delivery, `${deps.epoch}:${p}:${record.offset}`);
    if (text === null) {
      undecodable += 1;
      deps.log.warn({ partition: p, offset: record.offset }, "delivery with invalid JSON data skipped");
      continue;
    }
    for (const session of sockets) {
      if (session.live && session.partition === p && session.writeText(text)) delivered += 1;
    }
  }
  return { delivered, skipped, undecodable };
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
