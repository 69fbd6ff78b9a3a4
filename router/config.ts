/**
 * The router's configuration: one frozen object built from RT_* variables in main.ts. Units are
 * in the names. Kafka, topic and auth settings are the shared readers, so a router and the
 * gateways of one cluster read the same variables the same way.
 */
import { hostname } from "node:os";
import { ConfigError, readEnum, readInt, readList, readString, type Env } from "../common/env.ts";
import { readKafkaConfig, type KafkaConfig } from "../common/kafka-config.ts";
import { LOG_LEVELS } from "../common/log.ts";
import { readTopicsConfig, type TopicsConfig } from "../schemas/topics.ts";

/** Which browser origins may call /v1/connect: any (`*`), a list, or none (no CORS headers). */
export type CorsOrigins = "*" | readonly string[] | null;

export interface RouterConfig {
  readonly host: string;
  /** 0: any free port (tests). */
  readonly port: number;
  /** The gateways' consumer group, whose assignment says who owns which partition. */
  readonly groupId: string;
  readonly kafka: KafkaConfig;
  readonly topics: TopicsConfig;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly corsOrigins: CorsOrigins;
  /** Periodic re-read of the group's assignment. */
  readonly refreshMs: number;
  /** Least time between two reads of the group, however many requests ask for one. */
  readonly minRefreshIntervalMs: number;
  /** Periodic re-read of the deliveries topic's partition count. */
  readonly topicRefreshMs: number;
  /** How long the last good ownership may be served while Kafka does not answer. */
  readonly maxStaleMs: number;
  /** How long a request that found no owner waits for a fresh read before answering 503. */
  readonly lookupWaitMs: number;
  /** How long a request for a partition that is about to move is held for its new owner. */
  readonly holdMs: number;
  /** SIGTERM deadline: past it the process exits 1. */
  readonly shutdownGraceMs: number;
  /** This router's stable name: its transactional id, so a restart fences its open transaction. */
  readonly routerId: string;
  /** The routers' consumer group on rt.room-events. */
  readonly fanoutGroupId: string;
  readonly maxRoomMembers: number;
  /** Deliveries per fanout transaction (a batch fanning out more is split). */
  readonly fanoutMaxTxnRecords: number;
  readonly fanoutSessionTimeoutMs: number;
  /** Largest POST /v1/publish or /v1/revoke body. */
  readonly maxBodyBytes: number;
  /** Largest `data` depth in a publish body (as the gateways' RT_MAX_DATA_DEPTH). */
  readonly maxDataDepth: number;
  /** A folder whose files are served under /demo (the demo page `npm start` builds); null: none. */
  readonly demoDir: string | null;
}

/** `*` alone, or a comma list of origins (`scheme://host[:port]`, as browsers send them). */
function readCorsOrigins(env: Env): CorsOrigins {
  const name = "RT_ROUTER_CORS_ORIGINS";
  const items = readList(env, name);
  if (items === undefined) return null;
  const got = readString(env, name);
  const expected =
    "`*` or a comma list of origins like https://app.example.com (scheme, host, optional port)";
  if (items.includes("*")) {
    if (items.length > 1) throw new ConfigError(name, expected, got);
    return "*";
  }
  for (const item of items) {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      throw new ConfigError(name, expected, got);
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== item) {
      throw new ConfigError(name, expected, got);
    }
  }
  return Object.freeze([...new Set(items)]);
}

/** RT_ROUTER_ID: letters, digits and `._-`; default: the host name and the configured port. */
function readRouterId(env: Env): string {
  // Port 0 (tests) says nothing about the instance: the pid does.
  const port = env["RT_ROUTER_PORT"] ?? "8080";
  const instance = port === "0" ? `pid${process.pid}` : port;
  const fallback = `${hostname()}-${instance}`.replace(/[^A-Za-z0-9._-]/g, "-");
  const id = readString(env, "RT_ROUTER_ID", fallback);
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(id)) {
    throw new ConfigError("RT_ROUTER_ID", "1-100 chars of [A-Za-z0-9._-]", id);
  }
  return id;
}

export function readRouterConfig(env: Env): RouterConfig {
  const topics = readTopicsConfig(env);
  const refreshMs = readInt(env, "RT_ROUTER_REFRESH_MS", 1_000, { min: 100, max: 60_000 });
  const maxStaleMs = readInt(env, "RT_ROUTER_MAX_STALE_MS", 30_000, { min: 1_000, max: 3_600_000 });
  if (maxStaleMs < 2 * refreshMs) {
    throw new ConfigError(
      "RT_ROUTER_MAX_STALE_MS",
      `at least twice RT_ROUTER_REFRESH_MS (${2 * refreshMs})`,
      String(maxStaleMs),
    );
  }
  return Object.freeze({
    host: readString(env, "RT_ROUTER_HOST", "127.0.0.1"),
    port: readInt(env, "RT_ROUTER_PORT", 8080, { min: 0, max: 65535 }),
    groupId: readString(env, "RT_GATEWAY_GROUP", `${topics.prefix}rt-gateways`),
    kafka: readKafkaConfig(env, "rt-router"),
    topics,
    logLevel: readEnum(env, "RT_LOG_LEVEL", LOG_LEVELS, "info"),
    corsOrigins: readCorsOrigins(env),
    refreshMs,
    minRefreshIntervalMs: 100,
    topicRefreshMs: 30_000,
    maxStaleMs,
    lookupWaitMs: 1_000,
    holdMs: readInt(env, "RT_ROUTER_HOLD_MS", 5_000, { min: 0, max: 30_000 }),
    shutdownGraceMs: readInt(env, "RT_SHUTDOWN_GRACE_MS", 10_000, { min: 0, max: 600_000 }),
    routerId: readRouterId(env),
    fanoutGroupId: `${topics.prefix}rt-router`,
    maxRoomMembers: readInt(env, "RT_MAX_ROOM_MEMBERS", 10_000, { min: 1, max: 10_000_000 }),
    fanoutMaxTxnRecords: readInt(env, "RT_FANOUT_MAX_TXN_RECORDS", 20_000, { min: 100, max: 1_000_000 }),
    fanoutSessionTimeoutMs: readInt(env, "RT_ROUTER_SESSION_TIMEOUT_MS", 10_000, {
      min: 3_000,
      max: 300_000,
    }),
    maxBodyBytes: readInt(env, "RT_MAX_PUBLISH_BYTES", 64 * 1024, { min: 1024, max: 512 * 1024 }),
    maxDataDepth: readInt(env, "RT_MAX_DATA_DEPTH", 32, { min: 1, max: 256 }),
    demoDir: readString(env, "RT_ROUTER_DEMO_DIR") ?? null,
  });
}
