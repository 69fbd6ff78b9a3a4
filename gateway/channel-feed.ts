/**
 * Live channels, fanout on read: the gateway reads every partition of rt.channels from its live
 * end, in a consumer group of its own, and hands each event to the server's native publish for
 * the channel's local subscribers (`*`: every live session). At most once: nothing is committed or
 * replayed, and a socket past its backpressure cap skips the event.
 */
import type { Kafka } from "../common/kafka/kafka.ts";
import type { Logger } from "../common/log.ts";
import { channelEventCodec, type ChannelEvent } from "../schemas/records.ts";
import { EventMessage, type FrameEncoding } from "./event-message.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { channelTopic } from "./session.ts";

export interface ChannelFeedOptions {
  readonly topic: string;
  readonly groupId: string;
  /**
   * Publishes a message to the server topic; returns how many sockets it reached. `message` is
   * called only when the topic has subscribers.
   */
  readonly publish: (topic: string, message: () => string | Uint8Array) => number;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
}

export interface ChannelFeed {
  /** Leaves the group. Safe to call twice. */
  close(): Promise<void>;
}

/** The event frame of a channel event: no cursor, live channels are not resumable. */
export function channelEventMessage(e: ChannelEvent): EventMessage | null {
  return EventMessage.of({
    id: e.id,
    from: e.sender,
    to: `channel:${e.channel}`,
    type: e.type,
    data: e.data,
    ts: e.ts,
  });
}

const ENCODINGS: readonly FrameEncoding[] = ["json", "avro"];

export async function startChannelFeed(kafka: Kafka, opts: ChannelFeedOptions): Promise<ChannelFeed> {
  const { metrics, log } = opts;
  const consumer = kafka.consumer({
    groupId: opts.groupId,
    topics: [opts.topic],
    fromBeginning: false,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 3_000,
    autoCommit: false,
  });
  await consumer.run({
    eachBatch: async (batch) => {
      for (const record of batch.records) {
        if (record.value === null) continue;
        const decoded = channelEventCodec.tryDecode(record.value);
        const message = decoded.ok ? channelEventMessage(decoded.value) : null;
        if (!decoded.ok || message === null) {
          metrics.undeliverable.add(decoded.ok ? "bad_json_data" : decoded.error.code);
          log.warn(
            { partition: record.partition, offset: record.offset },
            "unreadable channel event skipped",
          );
          continue;
        }
        metrics.channelEvents += 1;
        // Each encoding's sockets subscribe to their own server topic of the channel.
        for (const encoding of ENCODINGS) {
          const topic = channelTopic(decoded.value.channel, encoding);
          metrics.channelDeliveries += opts.publish(topic, () => message.in(encoding));
        }
      }
    },
    onCrash: (e) => log.error({ err: e }, "channel consumer stopped for good"),
  });
  return { close: () => consumer.close() };
}
