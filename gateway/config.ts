/**
 * The gateway's configuration: one frozen object built from RT_* variables in main.ts.
 * Units are in the names. Every limit the gateway enforces is here.
 */
import { hostname } from "node:os";
import { readEnum, readInt, readList, readString, readUrl, ConfigError, type Env } from "../common/env.ts";
import { readKafkaConfig, type KafkaConfig } from "../common/kafka-config.ts";
import { LOG_LEVELS } from "../common/log.ts";
import { readTopicsConfig, type TopicsConfig } from "../schemas/topics.ts";
import { canonicalOrigin, type OriginPolicy } from "./admission.ts";

export interface GatewayLimits {
  readonly maxFrameBytes: number;
  readonly maxDataDepth: number;
  readonly maxTokenChars: number;
  readonly maxBufferedBytes: number;
  readonly sendsPerSecond: number;
  readonly sendsBurst: number;
  /** Writes (send, join, leave) per second of one user across their connections on this gateway. */
  readonly userSendsPerSecond: number;
  readonly userSendsBurst: number;
  /** ping, pong, auth, subscribe and unsubscribe frames per second per connection (burst: twice that). */
  readonly controlFramesPerSecond: number;
  readonly maxConnectionsPerUser: number;
  readonly maxConnections: number;
  /** Live channels one session may subscribe to (broadcast not counted). */
  readonly maxChannelsPerSession: number;
  /** Messages per second into one room through this gateway (a token bucket per room). */
  readonly roomSendsPerSecond: number;
}

export interface GatewayConfig {
  readonly nodeId: string;
  readonly host: string;
  /** 0: any free port (tests); the public URL then uses the bound port. */
  readonly port: number;
  /** What clients are redirected to; `{port}` is replaced by the bound port. */
  readonly publicUrl: string;
  readonly groupId: string;
  readonly kafka: KafkaConfig;
  readonly topics: TopicsConfig;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly sessionTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly helloTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly produceLingerMs: number;
  readonly maxQueuedSends: number;
  /** Bytes per produce request; must stay under the broker's message.max.bytes (1 MiB by default). */
  readonly produceMaxBatchBytes: number;
  readonly shutdownGraceMs: number;
  readonly reconnectHintMaxMs: number;
  /** Most records after a cursor a resume may read; past it: recovered false. */
  readonly resumeScanMax: number;
  /** Oldest event a resume may deliver; older: recovered false. */
  readonly resumeMaxAgeMs: number;
  /** A resuming session whose catch-up has not started by then is closed (server_error). */
  readonly resumeTimeoutMs: number;
  /** Memory for the recent records resumes are served from without a seek (0: no window). */
  readonly resumeWindowBytes: number;
  /** How often delivery progress is committed to the group (what a new owner starts from). */
  readonly commitIntervalMs: number;
  /** How long a revocation read from the log keeps refusing older tokens on this gateway. */
  readonly revokeRememberMs: number;
  /**
   * How often Kafka is probed (deliveries topic metadata, also the probe's timeout, at least 1 s):
   * not ready while it fails; restart when the topic was recreated (kafka-health.ts).
   */
  readonly kafkaProbeIntervalMs: number;
  readonly limits: GatewayLimits;
  readonly admission: AdmissionConfig;
}

export function readGatewayConfig(env: Env): GatewayConfig {
  const topics = readTopicsConfig(env);
  const port = readInt(env, "RT_GATEWAY_PORT", 8081, { min: 0, max: 65535 });
  const host = readString(env, "RT_GATEWAY_HOST", "127.0.0.1");
  const publicUrl = readUrl(env, "RT_GATEWAY_PUBLIC_URL", ["ws:", "wss:"]) ?? `ws://${host}:{port}/v1/ws`;
  const pingIntervalMs = readInt(env, "RT_PING_INTERVAL_MS", 30_000, { min: 4_000, max: 600_000 });
  const sessionTimeoutMs = readInt(env, "RT_GATEWAY_SESSION_TIMEOUT_MS", 10_000, {
    min: 1_000,
    max: 300_000,
  });
  const sendsPerSecond = readInt(env, "RT_SENDS_PER_S", 50, { min: 1, max: 100_000 });
  const userSendsPerSecond = readInt(env, "RT_USER_SENDS_PER_S", 2 * sendsPerSecond, {
    min: 1,
    max: 1_000_000,
  });
  const limits: GatewayLimits = Object.freeze({
    maxFrameBytes: readInt(env, "RT_MAX_FRAME_BYTES", 64 * 1024, { min: 1024, max: 512 * 1024 }),
    maxDataDepth: readInt(env, "RT_MAX_DATA_DEPTH", 32, { min: 1, max: 256 }),
    maxTokenChars: 8192,
    maxBufferedBytes: readInt(env, "RT_MAX_BUFFERED_BYTES", 1024 * 1024, { min: 16 * 1024, max: 1024 ** 3 }),
    sendsPerSecond,
    sendsBurst: readInt(env, "RT_SENDS_BURST", sendsPerSecond * 2, { min: 1, max: 1_000_000 }),
    userSendsPerSecond,
    userSendsBurst: readInt(env, "RT_USER_SENDS_BURST", userSendsPerSecond * 2, { min: 1, max: 1_000_000 }),
    controlFramesPerSecond: readInt(env, "RT_CONTROL_FRAMES_PER_S", 10, { min: 1, max: 100_000 }),
    maxConnectionsPerUser: readInt(env, "RT_MAX_CONNECTIONS_PER_USER", 8, { min: 1, max: 10_000 }),
    maxConnections: readInt(env, "RT_MAX_CONNECTIONS", 100_000, { min: 1, max: 10_000_000 }),
    maxChannelsPerSession: readInt(env, "RT_MAX_CHANNELS_PER_SESSION", 64, { min: 1, max: 10_000 }),
    roomSendsPerSecond: readInt(env, "RT_ROOM_SENDS_PER_S", 100, { min: 1, max: 1_000_000 }),
  });
  const config: GatewayConfig = {
    nodeId: readString(env, "RT_GATEWAY_NODE_ID", `${hostname()}-${process.pid}`),
    host,
    port,
    publicUrl,
    groupId: readString(env, "RT_GATEWAY_GROUP", `${topics.prefix}rt-gateways`),
    kafka: readKafkaConfig(env, "rt-gateway"),
    topics,
    logLevel: readEnum(env, "RT_LOG_LEVEL", LOG_LEVELS, "info"),
    sessionTimeoutMs,
    pingIntervalMs,
    helloTimeoutMs: readInt(env, "RT_HELLO_TIMEOUT_MS", 5_000, { min: 100, max: 120_000 }),
    sendTimeoutMs: readInt(env, "RT_SEND_TIMEOUT_MS", 10_000, { min: 100, max: 300_000 }),
    produceLingerMs: readInt(env, "RT_PRODUCE_LINGER_MS", 2, { min: 0, max: 1_000 }),
    maxQueuedSends: readInt(env, "RT_MAX_QUEUED_SENDS", 10_000, { min: 1, max: 10_000_000 }),
    produceMaxBatchBytes: readInt(env, "RT_PRODUCE_MAX_BATCH_BYTES", 512 * 1024, {
      min: 64 * 1024,
      max: 64 * 1024 * 1024,
    }),
    shutdownGraceMs: readInt(env, "RT_SHUTDOWN_GRACE_MS", 20_000, { min: 0, max: 600_000 }),
    reconnectHintMaxMs: readInt(env, "RT_RECONNECT_HINT_MAX_MS", 5_000, { min: 0, max: 600_000 }),
    resumeScanMax: readInt(env, "RT_RESUME_SCAN_MAX", 100_000, { min: 0, max: 100_000_000 }),
    resumeMaxAgeMs: readInt(env, "RT_RESUME_MAX_AGE_MS", 24 * 3_600_000, {
      min: 1_000,
      max: 3650 * 24 * 3_600_000,
    }),
    resumeTimeoutMs: readInt(env, "RT_RESUME_TIMEOUT_MS", 30_000, { min: 1_000, max: 600_000 }),
    resumeWindowBytes: readInt(env, "RT_RESUME_WINDOW_MB", 64, { min: 0, max: 65_536 }) * 1024 * 1024,
    commitIntervalMs: readInt(env, "RT_COMMIT_INTERVAL_MS", 1_000, { min: 50, max: 60_000 }),
    revokeRememberMs: readInt(env, "RT_REVOKE_REMEMBER_MS", 24 * 3_600_000, {
      min: 60_000,
      max: 30 * 24 * 3_600_000,
    }),
    kafkaProbeIntervalMs: readInt(env, "RT_KAFKA_PROBE_INTERVAL_MS", 2_000, { min: 100, max: 60_000 }),
    limits,
    admission: readAdmissionConfig(env),
  };
  // One frame becomes one Kafka record (plus the Avro envelope); it must fit in a batch.
  if (config.produceMaxBatchBytes < limits.maxFrameBytes + 4096) {
    throw new ConfigError(
      "RT_PRODUCE_MAX_BATCH_BYTES",
      `at least RT_MAX_FRAME_BYTES + 4096 (${limits.maxFrameBytes + 4096})`,
      String(config.produceMaxBatchBytes),
    );
  }
  // The drain waits for pending sends (bounded by the send timeout) before closing sockets.
  if (config.shutdownGraceMs < config.sendTimeoutMs + 5_000) {
    throw new ConfigError(
      "RT_SHUTDOWN_GRACE_MS",
      `at least RT_SEND_TIMEOUT_MS + 5000 (${config.sendTimeoutMs + 5_000})`,
      String(config.shutdownGraceMs),
    );
  }
  return Object.freeze(config);
}

// ---- Connection admission: checked on the upgrade request, before the gateway does any work for
// the socket (docs/SECURITY.md says what each one defends against). ----

export interface AdmissionConfig {
  /** Browser origins allowed to open a WebSocket (RT_GATEWAY_ALLOWED_ORIGINS); `*`: any origin. */
  readonly allowedOrigins: OriginPolicy;
  /** Open sockets per client IPv4 address or IPv6 /64, live or not (RT_MAX_CONNECTIONS_PER_IP). */
  readonly maxConnectionsPerIp: number;
  /**
   * Sockets not live yet: waiting for hello, having their token checked, being admitted
   * (RT_MAX_UNAUTHENTICATED). Each may stay up to RT_HELLO_TIMEOUT_MS.
   */
  readonly maxUnauthenticated: number;
}

/** `*` alone, or a comma list of origins as browsers send them (`https://app.example.com`). */
function readAllowedOrigins(env: Env): OriginPolicy {
  const name = "RT_GATEWAY_ALLOWED_ORIGINS";
  const items = readList(env, name);
  if (items === undefined) return "*";
  const got = readString(env, name);
  const expected =
    "`*` or a comma list of origins like https://app.example.com (lowercase scheme and host, optional port, no path)";
  if (items.includes("*")) {
    if (items.length > 1) throw new ConfigError(name, expected, got);
    return "*";
  }
  for (const item of items)
    if (canonicalOrigin(item) === undefined) throw new ConfigError(name, expected, got);
  return Object.freeze([...new Set(items)]);
}

export function readAdmissionConfig(env: Env): AdmissionConfig {
  return Object.freeze({
    allowedOrigins: readAllowedOrigins(env),
    maxConnectionsPerIp: readInt(env, "RT_MAX_CONNECTIONS_PER_IP", 1_000, { min: 1, max: 10_000_000 }),
    maxUnauthenticated: readInt(env, "RT_MAX_UNAUTHENTICATED", 10_000, { min: 1, max: 10_000_000 }),
  });
}
