/**
 * The design's topics: names (behind RT_TOPIC_PREFIX, so tests and clusters can share a
 * broker), partition counts, cleanup policies and retention. `rt topics ensure` and the
 * services create them from `topicSpecs`.
 */
import { readInt, readTopicPrefix, type Env } from "../common/env.ts";

export const TOPIC_BASENAMES = {
  deliveries: "rt.deliveries",
  roomEvents: "rt.room-events",
  roomMembers: "rt.room-members",
  channels: "rt.channels",
} as const;

export type TopicRole = keyof typeof TOPIC_BASENAMES;
export type TopicNames = { readonly [K in TopicRole]: string };

export function topicNames(prefix: string): TopicNames {
  return {
    deliveries: prefix + TOPIC_BASENAMES.deliveries,
    roomEvents: prefix + TOPIC_BASENAMES.roomEvents,
    roomMembers: prefix + TOPIC_BASENAMES.roomMembers,
    channels: prefix + TOPIC_BASENAMES.channels,
  };
}

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** -1: the broker's default.replication.factor. */
  readonly replicationFactor: number;
  /** Topic-level configs, e.g. cleanup.policy, retention.ms. */
  readonly config: Readonly<Record<string, string>>;
}

export interface TopicsConfig {
  readonly prefix: string;
  readonly names: TopicNames;
  readonly deliveriesPartitions: number;
  readonly deliveriesRetentionMs: number;
  readonly roomPartitions: number;
  readonly roomEventsRetentionMs: number;
  readonly channelsPartitions: number;
  readonly channelsRetentionMs: number;
  readonly replicationFactor: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export function readTopicsConfig(env: Env): TopicsConfig {
  const prefix = readTopicPrefix(env, "RT_TOPIC_PREFIX", "");
  const maxRetention = 3650 * DAY_MS;
  return Object.freeze({
    prefix,
    names: Object.freeze(topicNames(prefix)),
    deliveriesPartitions: readInt(env, "RT_DELIVERIES_PARTITIONS", 12, { min: 1, max: 10_000 }),
    deliveriesRetentionMs: readInt(env, "RT_DELIVERIES_RETENTION_MS", 7 * DAY_MS, {
      min: 60_000,
      max: maxRetention,
    }),
    roomPartitions: readInt(env, "RT_ROOM_PARTITIONS", 12, { min: 1, max: 10_000 }),
    roomEventsRetentionMs: readInt(env, "RT_ROOM_EVENTS_RETENTION_MS", 1 * DAY_MS, {
      min: 60_000,
      max: maxRetention,
    }),
    channelsPartitions: readInt(env, "RT_CHANNELS_PARTITIONS", 3, { min: 1, max: 1_000 }),
    channelsRetentionMs: readInt(env, "RT_CHANNELS_RETENTION_MS", 1 * HOUR_MS, {
      min: 60_000,
      max: maxRetention,
    }),
    replicationFactor: readInt(env, "RT_TOPIC_REPLICATION_FACTOR", -1, { min: -1, max: 16 }),
  });
}

/**
 * The four topics of the design. rt.room-members is compacted and has the same partition
 * count as rt.room-events, so a room's events and its membership facts share a partition
 * number (the router consumes both for the same partitions).
 */
export function topicSpecs(c: TopicsConfig): TopicSpec[] {
  const rf = c.replicationFactor;
  return [
    {
      name: c.names.deliveries,
      partitions: c.deliveriesPartitions,
      replicationFactor: rf,
      config: { "cleanup.policy": "delete", "retention.ms": String(c.deliveriesRetentionMs) },
    },
    {
      name: c.names.roomEvents,
      partitions: c.roomPartitions,
      replicationFactor: rf,
      config: { "cleanup.policy": "delete", "retention.ms": String(c.roomEventsRetentionMs) },
    },
    {
      name: c.names.roomMembers,
      partitions: c.roomPartitions,
      replicationFactor: rf,
      config: { "cleanup.policy": "compact", "min.compaction.lag.ms": "0" },
    },
    {
      name: c.names.channels,
      partitions: c.channelsPartitions,
      replicationFactor: rf,
      config: { "cleanup.policy": "delete", "retention.ms": String(c.channelsRetentionMs) },
    },
  ];
}
