/**
 * A gateway: wires config, auth, the Kafka port, ownership, live delivery and the uWS
 * server together, and drains on stop. main.ts is the process around it; tests start
 * gateways as real processes through main.ts.
 */
import { checkGatewayCluster } from "../common/kafka/cluster-check.ts";
import { ensureTopics } from "../common/kafka/ensure-topics.ts";
import { KafkaError, kafkaUnavailable } from "../common/kafka/errors.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { stickyAssigner } from "../common/kafka/sticky-assigner.ts";
import type { Logger } from "../common/log.ts";
import type { Telemetry } from "../common/telemetry.ts";
import { topicSpecs } from "../schemas/topics.ts";
import { epochOf } from "../schemas/cursor.ts";
import { readTopicIdentity, type TopicIdentity } from "../common/kafka/topic-identity.ts";
import { createVerifier, type AuthConfig } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import { CatchUp } from "./catchup.ts";
import { deliverBatch, type DecodedEvent } from "./delivery.ts";
import { ResumeWindow } from "./resume-window.ts";
import { LogBounds } from "./log-bounds.ts";
import { KafkaHealth } from "./kafka-health.ts";
import { GatewayMetrics, type GatewayGauges } from "./metrics.ts";
import { Ownership } from "./ownership.ts";
import { Registry } from "./registry.ts";
import { Revocations } from "./revocations.ts";
import { RoomRates } from "./room-rates.ts";
import { UserRates } from "./user-rates.ts";
import { startChannelFeed } from "./channel-feed.ts";
import { createSendBatcher } from "./send-batcher.ts";
import { startServer } from "./server.ts";
import { jitter, type Session, type SessionDeps } from "./session.ts";
import { GatewayTracing } from "./tracing.ts";
import { loadNativeUws } from "./uws.ts";

export interface Gateway {
  readonly url: string;
  readonly port: number;
  /** Drains: refuses new work, settles pending sends, closes sockets with "restart", leaves the group. */
  stop(): Promise<void>;
  /**
   * Resolves (once) with why, when the deliveries topic turns out to have been deleted and created
   * again, or repartitioned: everything this gateway holds is about the old log. The process then
   * stops this gateway and starts a new one on the same port (main.ts). Never resolves otherwise.
   */
  readonly replaced: Promise<string>;
}

/**
 * Metrics outlive one gateway in a process (a gateway restarted after its topic was recreated
 * keeps counting on the same instruments): one set per meter, whose gauges read the current one.
 */
const metricsByMeter = new WeakMap<
  object,
  { metrics: GatewayMetrics; gauges: { current: GatewayGauges | null } }
>();

/**
 * The deliveries topic's identity, read right after ensureTopics: a topic created a moment ago may
 * not be in the metadata of the broker asked yet.
 */
async function initialIdentity(
  brokers: readonly string[],
  topic: string,
  timeoutMs: number,
): Promise<TopicIdentity> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await readTopicIdentity(brokers, topic, { timeoutMs, clientId: "rt-gateway-probe" });
    if (r.exists) return r.identity;
    if (Date.now() > deadline)
      throw kafkaUnavailable(`topic ${topic} is not in the metadata 30 s after it was ensured`);
    await new Promise((done) => setTimeout(done, 200));
  }
}

export { epochOf } from "../schemas/cursor.ts";

export async function startGateway(
  config: GatewayConfig,
  auth: AuthConfig,
  log: Logger,
  telemetry: Telemetry,
): Promise<Gateway> {
  // What a start that fails half way has opened, closed again in reverse: a gateway restarted in
  // its process (main.ts) may take several attempts.
  const opened: (() => unknown)[] = [];
  try {
    return await start(config, auth, log, telemetry, opened);
  } catch (e) {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch {
        // Closing what a failed start opened: the start's own error is the one to report.
      }
    }
    throw e;
  }
}

async function start(
  config: GatewayConfig,
  auth: AuthConfig,
  log: Logger,
  telemetry: Telemetry,
  opened: (() => unknown)[],
): Promise<Gateway> {
  const uws = loadNativeUws();
  const verifier = createVerifier(auth);
  opened.push(() => verifier.close());
  const topic = config.topics.names.deliveries;
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: config.kafka.clientId, logger: log });
  const admin = await kafka.admin();
  opened.push(() => admin.close());
  const outcomes = await ensureTopics(admin, topicSpecs(config.topics));
  await checkGatewayCluster(admin, config, log);
  // The topics' real partition counts (an existing topic may differ from the configured count).
  const countOf = (name: string, configured: number) =>
    outcomes.find((o) => o.topic === name)?.partitions || configured;
  const { names } = config.topics;
  const partitionCount = countOf(topic, config.topics.deliveriesPartitions);
  const roomPartitionCount = countOf(names.roomEvents, config.topics.roomPartitions);
  const channelPartitionCount = countOf(names.channels, config.topics.channelsPartitions);
  const revocations = new Revocations(config.revokeRememberMs, 1_000_000);
  const probeTimeoutMs = Math.max(1_000, config.kafkaProbeIntervalMs);
  // Users are placed by the count read above: the epoch names it, and a probe that sees another
  // count (the topic changed while this gateway started) restarts the gateway.
  const identity = {
    ...(await initialIdentity(config.kafka.brokers, topic, probeTimeoutMs)),
    partitions: partitionCount,
  };
  const epoch = epochOf(partitionCount, identity.topicId);
  const producer = await kafka.producer();
  opened.push(() => producer.close());
  let shared = metricsByMeter.get(telemetry.meter);
  if (shared === undefined) {
    // The gauges are filled in below, once what they read exists.
    const g: { current: GatewayGauges | null } = { current: null };
    const metrics = new GatewayMetrics(telemetry.meter, topic, config.groupId, {
      connections: () => g.current?.connections() ?? { open: 0, live: 0 },
      users: () => g.current?.users() ?? 0,
      ownedPartitions: () => g.current?.ownedPartitions() ?? 0,
      lag: () => g.current?.lag() ?? [],
      sendQueue: () => g.current?.sendQueue() ?? { queued: 0, inFlight: 0 },
      catchUp: () => g.current?.catchUp() ?? { scans: 0 },
      resumeWindow: () => g.current?.resumeWindow() ?? { records: 0, bytes: 0 },
    });
    shared = { metrics, gauges: g };
    metricsByMeter.set(telemetry.meter, shared);
  }
  const { metrics } = shared;
  const gaugeSlot = shared.gauges;
  let onReplaced: (reason: string) => void = () => {};
  const replaced = new Promise<string>((done) => (onReplaced = done));
  let topicReplaced = false;
  const health = new KafkaHealth({
    topic,
    initial: identity,
    intervalMs: config.kafkaProbeIntervalMs,
    probe: () =>
      readTopicIdentity(config.kafka.brokers, topic, {
        timeoutMs: probeTimeoutMs,
        clientId: "rt-gateway-probe",
      }),
    onReplaced: (reason) => {
      // From now on nothing this gateway knows about positions may reach the group's commits.
      topicReplaced = true;
      log.warn({ reason, epoch }, "the deliveries topic was replaced: restarting the gateway");
      onReplaced(reason);
    },
    log: log.child({ component: "kafka-health" }),
  });
  const tracing = new GatewayTracing(
    telemetry.tracer,
    telemetry.tracing,
    topic,
    config.groupId,
    telemetry.followsParent,
  );
  const batcher = createSendBatcher({
    send: async (t, records) => {
      const started = performance.now();
      try {
        const positions = await producer.send(t, records);
        metrics.producedBatch(records.length, performance.now() - started, undefined);
        return positions;
      } catch (e) {
        const type = e instanceof KafkaError ? (e.retriable ? "unavailable" : "rejected") : "error";
        metrics.producedBatch(records.length, performance.now() - started, type);
        throw e;
      }
    },
    lingerMs: config.produceLingerMs,
    maxQueuedRecords: config.maxQueuedSends,
    maxBatchBytes: config.produceMaxBatchBytes,
    timeoutMs: config.sendTimeoutMs,
  });
  const ownership = new Ownership(admin, config.groupId, topic, log.child({ component: "ownership" }), epoch);
  const registry = new Registry<Session>(config.limits.maxConnectionsPerUser);
  let draining = false;
  let consumerFailed: Error | null = null;
  // The consumer exists only once the server listens (its metadata carries the URL); seeks
  // requested before that have nothing to move.
  let seek: (partition: number, offset: bigint) => void = () => {};
  const catchUp = new CatchUp((p, offset) => seek(p, offset));
  const window = new ResumeWindow<DecodedEvent>(config.resumeWindowBytes);
  const counters = { eventsDelivered: 0, recordsRead: 0, undecodable: 0 };
  /** Per owned partition, the high watermark of its last batch: the consumer lag's reference. */
  const highWatermarks = new Map<number, bigint>();
  const sessionDeps: SessionDeps = {
    logBounds: new LogBounds(admin, topic, config.resumeMaxAgeMs),
    catchUp,
    window,
    metrics,
    tracing,
    config,
    verifier,
    ownership,
    registry,
    batcher,
    partitionCount,
    partitionCounts: {
      deliveries: partitionCount,
      rooms: roomPartitionCount,
      channels: channelPartitionCount,
    },
    revocations,
    roomRates: new RoomRates(config.limits.roomSendsPerSecond),
    userRates: new UserRates(config.limits.userSendsPerSecond, config.limits.userSendsBurst),
    epoch,
    log,
    draining: () => draining,
  };
  const server = await startServer(uws, {
    config,
    verifier,
    log,
    metrics,
    metricsText: () => telemetry.metricsText(),
    sessionDeps: () => sessionDeps,
    draining: () => draining,
    stats: () => ({
      connections: registry.connections,
      users: registry.userCount,
      owned: [...ownership.owned].sort((a, b) => a - b),
      resumes: metrics.resumes.toObject(),
      catchUp: catchUp.stats(),
      resumeWindow: { ...window.stats(), hits: metrics.windowResumes },
      ...counters,
      sends: batcher.stats(),
    }),
    notReadyReason: () => {
      if (draining) return "draining";
      if (consumerFailed !== null) return `kafka consumer stopped: ${consumerFailed.message}`;
      if (health.notReadyReason !== null) return health.notReadyReason;
      if (ownership.owned.size === 0) return "owns no partitions of the deliveries topic";
      return null;
    },
  });
  opened.push(() => server.stopListening());

  const url = config.publicUrl.replace("{port}", String(server.port));
  const consumer = kafka.consumer({
    groupId: config.groupId,
    topics: [topic],
    fromBeginning: false,
    sessionTimeoutMs: config.sessionTimeoutMs,
    // A gateway that dies is noticed when its session expires; the survivors then learn of the
    // rebalance at their next heartbeat. Heartbeating twice a second (not every third of the
    // session) takes up to three seconds off how long a crashed gateway's users wait, for one
    // small request to the coordinator per half second.
    heartbeatIntervalMs: Math.max(100, Math.min(500, Math.floor(config.sessionTimeoutMs / 3))),
    assigners: [stickyAssigner({ url: () => url, owned: () => [...ownership.owned] })],
    // KafkaJS's auto-commit is one coordinator round trip after every batch, which puts
    // tens of milliseconds on delivery latency; progress is committed on a timer instead.
    autoCommit: false,
  });
  seek = (p, offset) => consumer.seek(topic, p, String(offset));
  gaugeSlot.current = {
    connections: () => ({ open: server.connections(), live: registry.connections }),
    users: () => registry.userCount,
    ownedPartitions: () => ownership.owned.size,
    *lag() {
      for (const p of ownership.owned) {
        const hw = highWatermarks.get(p);
        const position = ownership.position(p);
        if (hw === undefined || position === undefined) continue;
        const lag = hw - (position + 1n);
        yield { partition: p, records: Number(lag > 0n ? lag : 0n) };
      }
    },
    sendQueue: () => {
      const s = batcher.stats();
      return { queued: s.queuedRecords, inFlight: s.inFlightRecords };
    },
    catchUp: () => catchUp.stats(),
    resumeWindow: () => window.stats(),
  };
  const deliveryDeps = {
    ownership,
    registry,
    catchUp,
    window,
    epoch,
    log: log.child({ component: "delivery" }),
    metrics,
    tracing,
    revocations,
  };
  opened.push(() => consumer.close());
  await consumer.run({
    eachBatch: async (batch) => {
      if (ownership.owns(batch.partition)) highWatermarks.set(batch.partition, BigInt(batch.highWatermark));
      const r = deliverBatch(batch, deliveryDeps);
      counters.recordsRead += r.records;
      counters.eventsDelivered += r.delivered;
      counters.undecodable += r.undecodable;
    },
    // Batches of only transaction markers (room fanout writes in transactions) or aborted
    // records never reach eachBatch: they are read all the same, or lag never gets to 0.
    onBatchEnd: (_topic, p, lastOffset, highWatermark) => {
      if (!ownership.owns(p)) return;
      ownership.advance(p, BigInt(lastOffset));
      highWatermarks.set(p, BigInt(highWatermark));
    },
    onAssignment: (assignment) => {
      const { gained, lost } = ownership.assign(assignment[topic] ?? []);
      metrics.rebalances += 1;
      for (const p of lost) {
        catchUp.forget(p);
        window.forget(p);
        highWatermarks.delete(p);
      }
      log.info({ owned: [...ownership.owned].sort((a, b) => a - b), gained, lost }, "partitions assigned");
      if (lost.length === 0) return;
      const moved = new Set(lost);
      for (const session of server.sessions()) {
        if (moved.has(session.partition)) session.close("moved");
      }
    },
    onCrash: (e) => {
      consumerFailed = e;
      log.error({ err: e }, "kafka consumer stopped for good");
    },
  });
  // Live channels: every gateway reads all of rt.channels from its live end, in a group of its own.
  const channelFeed = await startChannelFeed(kafka, {
    topic: names.channels,
    groupId: `${config.groupId}.channels.${config.nodeId}.${Date.now().toString(36)}`,
    publish: (t, message) => server.publish(t, message),
    metrics,
    log: log.child({ component: "channels" }),
  });
  log.info(
    { url, port: server.port, partitions: partitionCount, group: config.groupId },
    "gateway listening",
  );
  health.start();

  const committed = new Map<number, bigint>();
  const commitProgress = async () => {
    if (topicReplaced) return;
    for (const p of ownership.owned) {
      const position = ownership.position(p);
      if (position === undefined || position < 0n || position <= (committed.get(p) ?? -1n)) continue;
      try {
        await consumer.commit(topic, p, String(position + 1n), epoch);
        committed.set(p, position);
      } catch (e) {
        log.debug({ err: e, partition: p }, "commit skipped");
      }
    }
    for (const p of committed.keys()) if (!ownership.owns(p)) committed.delete(p);
  };
  let committing: Promise<void> = Promise.resolve();
  const commitTimer = setInterval(() => {
    committing = committing.then(commitProgress);
  }, config.commitIntervalMs);

  let stopping: Promise<void> | null = null;
  const drain = async () => {
    draining = true;
    health.close();
    server.stopListening();
    // Sends already accepted are settled (acked or failed) before their sockets close.
    await batcher.close();
    // A send that timed out may still be in flight; it must land (or fail) before clients are
    // told to reconnect, or it could be written after their newer sends through another gateway.
    // The process's shutdown grace bounds this wait.
    while (batcher.stats().inFlightBatches > 0) await new Promise((r) => setTimeout(r, 20));
    clearInterval(commitTimer);
    await committing.then(commitProgress);
    // Leave the group first: the partitions move now, so clients told to reconnect below find
    // the new owners through the router instead of this gateway.
    await consumer.close();
    await channelFeed.close();
    for (const session of [...server.sessions()]) session.close("restart", jitter(config.reconnectHintMaxMs));
    await producer.close();
    await admin.close();
    verifier.close();
  };
  return {
    url,
    port: server.port,
    stop: () => (stopping ??= drain()),
    replaced,
  };
}
