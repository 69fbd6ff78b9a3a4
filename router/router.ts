/**
 * A router: wires config, the token verifier, the Kafka admin port, the placement cache and the
 * uWS server together, and stops them in order. main.ts is the process around it. It starts
 * without Kafka (answering 503 and /readyz not ready) and catches up once Kafka answers.
 */
import { checkRouterClusterInBackground } from "../common/kafka/cluster-check.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import type { Logger } from "../common/log.ts";
import type { Telemetry } from "../common/telemetry.ts";
import { createVerifier, type AuthConfig } from "../gateway/auth.ts";
import { loadNativeUws } from "../gateway/uws.ts";
import type { RouterConfig } from "./config.ts";
import { RouterMetrics } from "./metrics.ts";
import { Placement } from "./placement.ts";
import { startRouterServer, type Publisher } from "./server.ts";
import { loadStaticSite } from "./static.ts";
import { startFanout, type Fanout } from "./fanout.ts";
import { FanoutTracing } from "./fanout-tracing.ts";
import type { Producer } from "../common/kafka/kafka.ts";
import type { PartitionCounts } from "../schemas/publish.ts";
import { epochOf } from "../schemas/cursor.ts";
import { readTopicIdentity } from "../common/kafka/topic-identity.ts";

export interface Router {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  /** Stops listening, answers the requests in flight, closes the Kafka client. Safe to call twice. */
  stop(): Promise<void>;
}

/** Kafka calls fail fast enough that a request waiting on a read is never held long. */
const KAFKA_REQUEST_TIMEOUT_MS = 5_000;
const KAFKA_RETRIES = 2;
/** Longest wait for the first ownership read before announcing the router. */
const FIRST_READ_WAIT_MS = 15_000;
/** How often the deliveries topic's identity (the cursors' epoch) is read again. */
const EPOCH_REFRESH_MS = 10_000;

export async function startRouter(
  config: RouterConfig,
  auth: AuthConfig,
  log: Logger,
  telemetry: Telemetry,
): Promise<Router> {
  const uws = loadNativeUws();
  const verifier = createVerifier(auth);
  const kafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId,
    logger: log,
    requestTimeoutMs: KAFKA_REQUEST_TIMEOUT_MS,
    retries: KAFKA_RETRIES,
  });
  const placement = new Placement(() => kafka.admin(), {
    groupId: config.groupId,
    topic: config.topics.names.deliveries,
    refreshMs: config.refreshMs,
    minRefreshIntervalMs: config.minRefreshIntervalMs,
    topicRefreshMs: config.topicRefreshMs,
    maxStaleMs: config.maxStaleMs,
    lookupWaitMs: config.lookupWaitMs,
    holdMs: config.holdMs,
    log: log.child({ component: "placement" }),
  });
  // Kafka may be down when the router starts: the publish API and the fanout start once it answers.
  let producer: Producer | null = null;
  let counts: PartitionCounts | null = null;
  /** The deliveries log's epoch (schemas/cursor.ts), read with the counts and refreshed. */
  let epoch = "";
  const readEpoch = async (): Promise<string> => {
    const r = await readTopicIdentity(config.kafka.brokers, names.deliveries, {
      timeoutMs: KAFKA_REQUEST_TIMEOUT_MS,
      clientId: config.kafka.clientId,
    });
    if (!r.exists) throw new Error(`topic ${names.deliveries} does not exist yet`);
    return epochOf(r.identity.partitions, r.identity.topicId);
  };
  const epochTimer = setInterval(() => {
    if (epoch === "") return;
    readEpoch().then(
      (e) => (epoch = e),
      (e: unknown) => log.debug({ err: e }, "reading the deliveries topic's identity failed"),
    );
  }, EPOCH_REFRESH_MS);
  epochTimer.unref();
  let fanout: Fanout | null = null;
  let stopped = false;
  const names = config.topics.names;
  const publisher: Publisher = {
    counts: () => counts,
    epoch: () => epoch,
    async write(record) {
      if (producer === null) throw new Error("no producer yet");
      const topic = names[record.role];
      const [pos] = await producer.send(topic, [
        {
          key: record.key,
          value: record.value,
          partition: record.partition,
          headers: record.headers,
          timestampMs: record.timestampMs,
        },
      ]);
      return { topic, partition: pos!.partition, offset: pos!.offset };
    },
  };
  const connectKafka = async (): Promise<void> => {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        const admin = await kafka.admin();
        try {
          const read = async (topic: string, fallback: number) =>
            (await admin.partitionCount(topic)) ?? fallback;
          counts = {
            deliveries: await read(names.deliveries, config.topics.deliveriesPartitions),
            rooms: await read(names.roomEvents, config.topics.roomPartitions),
            channels: await read(names.channels, config.topics.channelsPartitions),
          };
        } finally {
          await admin.close();
        }
        epoch = await readEpoch();
        producer ??= await kafka.producer();
        if (stopped) return;
        fanout = await startFanout({
          kafka,
          names,
          groupId: config.fanoutGroupId,
          routerId: config.routerId,
          deliveriesPartitions: counts.deliveries,
          roomPartitions: counts.rooms,
          limits: { maxRoomMembers: config.maxRoomMembers },
          maxTxnRecords: config.fanoutMaxTxnRecords,
          sessionTimeoutMs: config.fanoutSessionTimeoutMs,
          producer,
          tracing: new FanoutTracing(
            telemetry.tracing ? telemetry.tracer : null,
            names.roomEvents,
            telemetry.followsParent,
          ),
          log: log.child({ component: "fanout" }),
        });
        if (stopped) await fanout.close();
        return;
      } catch (e) {
        log.warn({ err: e, attempt }, "starting the publish API and fanout failed; retrying");
        await new Promise((r) => setTimeout(r, Math.min(5_000, 500 * 2 ** attempt)));
      }
    }
  };
  let server;
  try {
    server = await startRouterServer(uws, {
      config,
      verifier,
      placement,
      log,
      metrics: new RouterMetrics(
        telemetry.meter,
        () => placement.status(),
        () => fanout?.stats() ?? null,
      ),
      metricsText: () => telemetry.metricsText(),
      tracer: telemetry.tracing ? telemetry.tracer : null,
      publisher,
      fanout: () => fanout?.stats() ?? null,
      site: config.demoDir === null ? null : loadStaticSite(config.demoDir, "/demo"),
    });
  } catch (e) {
    verifier.close();
    throw e;
  }
  placement.start();
  const kafkaStarted = connectKafka();
  checkRouterClusterInBackground(() => kafka.admin(), config, log);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    placement.firstAttempt(),
    new Promise<void>((done) => (timer = setTimeout(done, FIRST_READ_WAIT_MS))),
  ]);
  clearTimeout(timer);
  const notReady = placement.notReadyReason();
  const url = `http://${config.host}:${server.port}`;
  log.info(
    {
      url,
      port: server.port,
      group: config.groupId,
      topic: config.topics.names.deliveries,
      ...placement.status(),
    },
    notReady === null ? "router listening" : `router listening, not ready yet: ${notReady}`,
  );

  let stopping: Promise<void> | null = null;
  const stop = async () => {
    server.stopListening();
    // Held requests are answered now (503 with a retry hint, their clients try another router);
    // the others wait at most lookupWaitMs on Kafka: let them have their answers.
    placement.releaseHeld();
    await server.idle();
    stopped = true;
    clearInterval(epochTimer);
    await kafkaStarted;
    await fanout?.close();
    await producer?.close();
    await placement.close();
    verifier.close();
  };
  return { url, port: server.port, stop: () => (stopping ??= stop()) };
}
