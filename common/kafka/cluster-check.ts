/**
 * The start-up check of a Kafka cluster against what the backbone's guarantees need. A
 * gateway runs it right after creating its topics; a router runs it once Kafka answers.
 *
 * `checkCluster` is pure: it takes what was read from Kafka (ClusterFacts) and what the
 * configuration expects, and returns findings. Each finding's severity comes from one table
 * (CLUSTER_CHECKS): an "error" is a setting under which the design cannot keep its promises
 * whatever happens next (acknowledged events could be dropped, or every send would fail), so a
 * gateway refuses to start; a "warn" is a state that works but degrades (a broker down, idle
 * gateways), so it is logged and the gateway starts. `runClusterCheck` is the I/O shell.
 */
import type { Logger } from "../log.ts";
import { topicSpecs, type TopicSpec, type TopicsConfig } from "../../schemas/topics.ts";
import { KafkaError } from "./errors.ts";
import type { Admin, TopicDescription } from "./kafka.ts";

export type Severity = "error" | "warn";

/** Every check, with its severity. docs/OPERATIONS.md ("Start-up cluster check") explains each. */
export const CLUSTER_CHECKS = {
  /** A log topic compacted (drops all but the last event per key) or the membership topic not compacted. */
  cleanup_policy: "error",
  /** Fewer replicas than min.insync.replicas: every acks=all write fails, forever. */
  replication_below_min_isr: "error",
  /** An out-of-sync replica may become leader: acknowledged events can vanish. */
  unclean_leader_election: "error",
  /** A produce batch the gateway may build is larger than the topic accepts. */
  message_too_large: "error",
  /** The brokers refuse the gateway's session timeout: it could never join its group. */
  session_timeout_out_of_range: "error",
  /** Replicas on nodes the cluster does not list: brokers down, or fewer brokers than replicas. */
  brokers_missing: "warn",
  /** Fewer in-sync replicas than min.insync.replicas right now: sends to those partitions fail. */
  below_min_isr_now: "warn",
  /** Partitions without a leader right now. */
  no_leader: "warn",
  /** min.insync.replicas of 1 with several replicas: an ack may rest on a single broker. */
  min_isr_too_low: "warn",
  /** min.insync.replicas equal to the replication factor: any broker loss stops sends. */
  min_isr_equals_replication: "warn",
  /** One replica on a cluster of several brokers: losing that broker loses the partition. */
  single_replica: "warn",
  /** The topic's replication factor is not RT_TOPIC_REPLICATION_FACTOR (it applies only at creation). */
  replication_differs: "warn",
  /** More gateways than partitions of the deliveries topic: the extra ones stay idle. */
  partitions_fewer_than_gateways: "warn",
  /** Retention of the deliveries topic shorter than the resume window. */
  retention_below_resume_age: "warn",
} as const satisfies Record<string, Severity>;

export type CheckCode = keyof typeof CLUSTER_CHECKS;

export interface Finding {
  readonly code: CheckCode;
  readonly severity: Severity;
  /** The topic concerned, if any. */
  readonly topic?: string;
  readonly message: string;
}

/** What was read from Kafka. */
export interface ClusterFacts {
  /** Node ids of the brokers the cluster lists now (registered and not fenced). */
  readonly brokers: readonly number[];
  /** The expected topics that exist (ensureTopics has created the missing ones). */
  readonly topics: readonly TopicDescription[];
  /** One broker's effective configuration (group session bounds); null when not read. */
  readonly brokerConfigs: Readonly<Record<string, string>> | null;
  /** Members of the gateways' group before this gateway joins; null when not read. */
  readonly groupMembers: number | null;
}

/** What the configuration expects. */
export interface ClusterExpectations {
  /** The design's topics as configured (schemas/topics.ts topicSpecs). */
  readonly specs: readonly TopicSpec[];
  /** RT_TOPIC_REPLICATION_FACTOR; -1: the brokers' default. */
  readonly replicationFactor: number;
  /** The per-user log; partitions of it are the unit of gateway ownership. */
  readonly deliveriesTopic: string;
  /** Gateways only: this member joins the group, so it counts as one more member. */
  readonly joiningGroup?: boolean;
  readonly sessionTimeoutMs?: number;
  /** Largest produce request the gateway builds (RT_PRODUCE_MAX_BATCH_BYTES). */
  readonly maxBatchBytes?: number;
  /** Oldest event a resume delivers (RT_RESUME_MAX_AGE_MS). */
  readonly resumeMaxAgeMs?: number;
}

const DOCS = "docs/OPERATIONS.md#start-up-cluster-check";

function intOf(configs: Readonly<Record<string, string>>, name: string): number | null {
  const v = configs[name];
  if (v === undefined || !/^-?\d+$/.test(v)) return null;
  return Number(v);
}

function alter(topic: string, setting: string): string {
  return `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${topic} --add-config ${setting}`;
}

function ms(v: number): string {
  if (v % 86_400_000 === 0) return `${v / 86_400_000} d`;
  if (v % 3_600_000 === 0) return `${v / 3_600_000} h`;
  return `${v} ms`;
}

function listed(ids: readonly number[], max = 8): string {
  return ids.length <= max ? ids.join(", ") : `${ids.slice(0, max).join(", ")} and ${ids.length - max} more`;
}

export function checkCluster(facts: ClusterFacts, expect: ClusterExpectations): Finding[] {
  const out: Finding[] = [];
  const add = (code: CheckCode, message: string, topic?: string) =>
    out.push({ code, severity: CLUSTER_CHECKS[code], message, ...(topic === undefined ? {} : { topic }) });
  const live = new Set(facts.brokers);

  for (const t of facts.topics) {
    const spec = expect.specs.find((s) => s.name === t.topic);
    if (spec === undefined) continue;
    const name = t.topic;
    const policy = (t.configs["cleanup.policy"] ?? "delete").split(",").map((p) => p.trim());
    const wantsCompact = (spec.config["cleanup.policy"] ?? "delete").includes("compact");
    if (wantsCompact && !policy.includes("compact")) {
      add(
        "cleanup_policy",
        `${name} has cleanup.policy=${policy.join(",")}, it must be compact: membership facts would be ` +
          `deleted by retention and rooms would lose members. Fix: ${alter(name, "cleanup.policy=compact")}`,
        name,
      );
    } else if (!wantsCompact && policy.includes("compact")) {
      add(
        "cleanup_policy",
        `${name} has cleanup.policy=${policy.join(",")}, it must be delete: compaction keeps only the last ` +
          `record per key and silently drops the rest (a user's inbox, a room's history). ` +
          `Fix: ${alter(name, "cleanup.policy=delete")}`,
        name,
      );
    }

    const rf = Math.min(...t.partitions.map((p) => p.replicas.length));
    const minIsr = intOf(t.configs, "min.insync.replicas") ?? 1;
    if (t.partitions.length > 0) {
      if (rf < minIsr) {
        add(
          "replication_below_min_isr",
          `${name} has ${rf} replica(s) per partition but min.insync.replicas=${minIsr}: every send ` +
            `(acks=all) would fail. Lower min.insync.replicas to ${Math.max(1, rf - 1)} or recreate the topic with ` +
            `more replicas. Fix: ${alter(name, `min.insync.replicas=${Math.max(1, Math.min(2, rf - 1))}`)}`,
          name,
        );
      } else if (rf > 1 && minIsr === rf) {
        add(
          "min_isr_equals_replication",
          `${name} has min.insync.replicas=${minIsr} with ${rf} replicas: losing any one broker stops all ` +
            `sends to its partitions; the design uses ${rf} replicas with min.insync.replicas=${rf - 1}`,
          name,
        );
      } else if (rf > 1 && minIsr < 2) {
        add(
          "min_isr_too_low",
          `${name} has ${rf} replicas but min.insync.replicas=${minIsr}: an acknowledged send may be on one ` +
            `broker only, and lost with it. Fix: ${alter(name, "min.insync.replicas=2")}`,
          name,
        );
      }
      if (rf === 1 && facts.brokers.length >= 3) {
        add(
          "single_replica",
          `${name} has 1 replica on a cluster of ${facts.brokers.length} brokers: losing that broker loses ` +
            `its partitions' events. Create the topics with RT_TOPIC_REPLICATION_FACTOR=3`,
          name,
        );
      }
      if (expect.replicationFactor > 0 && rf !== expect.replicationFactor) {
        add(
          "replication_differs",
          `${name} has ${rf} replica(s) per partition, RT_TOPIC_REPLICATION_FACTOR says ` +
            `${expect.replicationFactor}; the variable applies only when a topic is created ` +
            `(change an existing topic with kafka-reassign-partitions.sh)`,
          name,
        );
      }
    }

    if ((t.configs["unclean.leader.election.enable"] ?? "false") === "true") {
      add(
        "unclean_leader_election",
        `${name} has unclean.leader.election.enable=true: a replica that missed acknowledged events ` +
          `may become leader and those events are gone. Fix: ${alter(name, "unclean.leader.election.enable=false")}`,
        name,
      );
    }

    const maxMessage = intOf(t.configs, "max.message.bytes");
    if (name === expect.deliveriesTopic && expect.maxBatchBytes !== undefined && maxMessage !== null) {
      if (maxMessage < expect.maxBatchBytes) {
        add(
          "message_too_large",
          `${name} accepts batches up to max.message.bytes=${maxMessage}, below RT_PRODUCE_MAX_BATCH_BYTES=` +
            `${expect.maxBatchBytes}: full batches of sends would be refused. Lower RT_PRODUCE_MAX_BATCH_BYTES ` +
            `or ${alter(name, `max.message.bytes=${expect.maxBatchBytes + 65_536}`)}`,
          name,
        );
      }
    }

    const retention = intOf(t.configs, "retention.ms");
    if (
      name === expect.deliveriesTopic &&
      expect.resumeMaxAgeMs !== undefined &&
      retention !== null &&
      retention >= 0 &&
      retention < expect.resumeMaxAgeMs
    ) {
      add(
        "retention_below_resume_age",
        `${name} keeps events for ${ms(retention)} (retention.ms), less than RT_RESUME_MAX_AGE_MS=` +
          `${ms(expect.resumeMaxAgeMs)}: clients away longer than the retention resume with recovered: false ` +
          `(retention). Raise retention.ms or lower RT_RESUME_MAX_AGE_MS`,
        name,
      );
    }

    const missing = new Set<number>();
    const noLeader: number[] = [];
    const underMinIsr: number[] = [];
    for (const p of t.partitions) {
      for (const r of p.replicas) if (!live.has(r)) missing.add(r);
      if (p.leader < 0 || !live.has(p.leader)) noLeader.push(p.partition);
      else if (p.isr.filter((r) => live.has(r)).length < minIsr) underMinIsr.push(p.partition);
    }
    if (missing.size > 0) {
      add(
        "brokers_missing",
        `${name} has replicas on broker(s) ${listed([...missing].sort((a, b) => a - b))}, which the cluster ` +
          `does not list (its brokers: ${listed([...live].sort((a, b) => a - b)) || "none"}): they are down, ` +
          `or the cluster has fewer brokers than the topic has replicas. Its partitions are under-replicated`,
        name,
      );
    }
    if (noLeader.length > 0) {
      add(
        "no_leader",
        `${name} partition(s) ${listed(noLeader)} have no leader: sends to and delivery from them wait until a replica is back`,
        name,
      );
    }
    if (underMinIsr.length > 0) {
      add(
        "below_min_isr_now",
        `${name} partition(s) ${listed(underMinIsr)} have fewer in-sync replicas than min.insync.replicas=` +
          `${minIsr}: sends to them get error acks until enough brokers are back`,
        name,
      );
    }
  }

  const deliveries = facts.topics.find((t) => t.topic === expect.deliveriesTopic);
  if (deliveries !== undefined && facts.groupMembers !== null) {
    const gateways = facts.groupMembers + (expect.joiningGroup === true ? 1 : 0);
    const partitions = deliveries.partitions.length;
    if (gateways > partitions) {
      add(
        "partitions_fewer_than_gateways",
        `${gateways} gateways for ${partitions} partitions of ${expect.deliveriesTopic}: a partition is the unit ` +
          `of ownership, so ${gateways - partitions} gateway(s) stay idle (not ready) until another leaves. ` +
          `Run at most ${partitions} gateways, or plan more partitions (docs/OPERATIONS.md#topics-and-partitions). ` +
          `A gateway that crashed moments ago still counts until its session times out`,
        expect.deliveriesTopic,
      );
    }
  }

  if (facts.brokerConfigs !== null && expect.sessionTimeoutMs !== undefined) {
    const min = intOf(facts.brokerConfigs, "group.min.session.timeout.ms");
    const max = intOf(facts.brokerConfigs, "group.max.session.timeout.ms");
    const v = expect.sessionTimeoutMs;
    if ((min !== null && v < min) || (max !== null && v > max)) {
      add(
        "session_timeout_out_of_range",
        `RT_GATEWAY_SESSION_TIMEOUT_MS=${v} is outside what the brokers allow ` +
          `(group.min.session.timeout.ms=${min ?? "?"}, group.max.session.timeout.ms=${max ?? "?"}): ` +
          `the gateway could never join its group. Set RT_GATEWAY_SESSION_TIMEOUT_MS within that range`,
      );
    }
  }
  return out;
}

/** Reads what `checkCluster` needs: one cluster description, the topics, a broker's configs, the group. */
export async function readClusterFacts(
  admin: Admin,
  opts: { readonly topics: readonly string[]; readonly groupId?: string },
): Promise<ClusterFacts> {
  const cluster = await admin.describeCluster();
  const brokers = cluster.brokers.map((b) => b.nodeId);
  const topics = await admin.describeTopics(opts.topics);
  const first = brokers[0];
  const brokerConfigs = first === undefined ? null : await admin.describeBrokerConfigs(first);
  const groupMembers =
    opts.groupId === undefined ? null : (await admin.describeGroup(opts.groupId)).members.length;
  return { brokers, topics, brokerConfigs, groupMembers };
}

/** The message of a refused start: every error finding, numbered, and where they are explained. */
export function refusalMessage(errors: readonly Finding[]): string {
  const items = errors.map((f, i) => `(${i + 1}) ${f.message}`).join(" ");
  return `the Kafka cluster does not fit the backbone's guarantees: ${items} (see ${DOCS})`;
}

/**
 * Reads the facts, logs every finding, and with `refuse` throws a non-retriable KafkaError
 * (cluster_misconfigured) naming every "error" finding. Returns the findings.
 */
export async function runClusterCheck(
  admin: Admin,
  expect: ClusterExpectations,
  opts: { readonly log: Logger; readonly groupId?: string; readonly refuse: boolean },
): Promise<Finding[]> {
  const facts = await readClusterFacts(admin, {
    topics: expect.specs.map((s) => s.name),
    ...(opts.groupId === undefined ? {} : { groupId: opts.groupId }),
  });
  const findings = checkCluster(facts, expect);
  const log = opts.log.child({ component: "cluster-check" });
  for (const f of findings) {
    const fields = { check: f.code, ...(f.topic === undefined ? {} : { topic: f.topic }) };
    if (f.severity === "error") log.error(fields, f.message);
    else log.warn(fields, f.message);
  }
  const errors = findings.filter((f) => f.severity === "error");
  if (opts.refuse && errors.length > 0) {
    throw new KafkaError("cluster_misconfigured", refusalMessage(errors), { retriable: false });
  }
  return findings;
}

/** What a gateway's configuration says about the cluster (a GatewayConfig fits). */
export interface GatewayClusterConfig {
  readonly topics: TopicsConfig;
  readonly groupId: string;
  readonly sessionTimeoutMs: number;
  readonly produceMaxBatchBytes: number;
  readonly resumeMaxAgeMs: number;
}

/** A gateway's start-up check: logs warnings, refuses to start on an "error" finding. */
export function checkGatewayCluster(
  admin: Admin,
  config: GatewayClusterConfig,
  log: Logger,
): Promise<Finding[]> {
  return runClusterCheck(
    admin,
    {
      specs: topicSpecs(config.topics),
      replicationFactor: config.topics.replicationFactor,
      deliveriesTopic: config.topics.names.deliveries,
      joiningGroup: true,
      sessionTimeoutMs: config.sessionTimeoutMs,
      maxBatchBytes: config.produceMaxBatchBytes,
      resumeMaxAgeMs: config.resumeMaxAgeMs,
    },
    { log, groupId: config.groupId, refuse: true },
  );
}

/**
 * A router's check: the router starts without Kafka, so this runs in the background, retrying
 * every `retryMs` until one check completes, and only logs (a router writes nothing). Returns
 * the function that stops it.
 */
export function checkRouterClusterInBackground(
  openAdmin: () => Promise<Admin>,
  config: { readonly topics: TopicsConfig; readonly groupId: string },
  log: Logger,
  retryMs = 10_000,
): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const attempt = async () => {
    if (stopped) return;
    let admin: Admin | null = null;
    try {
      admin = await openAdmin();
      if (stopped) return;
      await runClusterCheck(
        admin,
        {
          specs: topicSpecs(config.topics),
          replicationFactor: config.topics.replicationFactor,
          deliveriesTopic: config.topics.names.deliveries,
        },
        { log, groupId: config.groupId, refuse: false },
      );
    } catch {
      // Kafka not reachable yet (the router reports that on /readyz): try again later.
      if (!stopped) {
        timer = setTimeout(() => void attempt(), retryMs);
        timer.unref();
      }
    } finally {
      await admin?.close().catch(() => {});
    }
  };
  void attempt();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
