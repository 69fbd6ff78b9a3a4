/**
 * `rt replay`: read a range of one topic (by time or by offsets, per partition), decode each
 * record with the topic's schema, filter, and write JSON Lines, an Avro container file, or
 * re-publish into a topic. For data teams and operators; see REPLAY_USAGE and docs/DATA.md.
 *
 * The range is fixed when the replay starts (up to the log end at that moment, unless told
 * otherwise), so a replay always ends, even on a busy topic or when re-publishing into the
 * topic it reads. Records a replay re-published carry REPLAYED_HEADER and are skipped. Records
 * that do not decode (corrupt, truncated, an unknown schema fingerprint) are counted and
 * reported on stderr and never stop the replay. Exit codes: 0 done (warnings on stderr), 1 Kafka
 * or output failed, 2 bad arguments, 130 interrupted.
 */
import { open } from "node:fs/promises";
import type { Env } from "../common/env.ts";
import type { InRecord } from "../common/kafka/kafka.ts";
import { createKafka } from "../common/kafka/kafkajs.ts";
import { createRangeReader } from "../common/kafka/kafkajs-range.ts";
import { readKafkaConfig } from "../common/kafka-config.ts";
import { createLogger } from "../common/log.ts";
import { readTopicsConfig } from "../schemas/topics.ts";
import { REPLAY_USAGE, parseReplayArgs, type ReplayArgs } from "./replay-args.ts";
import { planRanges, type RetentionGap } from "./replay-plan.ts";
import { decodeValue, isReplayed, matchesFilters, rowSchema, toRow } from "./replay-records.ts";
import { OutputClosedError, avroSink, jsonlSink, republishSink, type ReplaySink } from "./replay-sinks.ts";

type Outcome = "done" | "interrupted" | "stopped, the output was closed";

/** Undecodable records reported one by one; the rest only in the summary. */
const MAX_RECORD_WARNINGS = 10;
const PROGRESS_INTERVAL_MS = 250;

interface Stats {
  read: number;
  written: number;
  filtered: number;
  replayed: number;
  undecodable: Map<string, number>;
  partitionsDone: number;
  partitions: number;
  missing: bigint;
  missingExact: boolean;
}

export async function runReplay(argv: readonly string[], env: Env = process.env): Promise<number> {
  const topics = readTopicsConfig(env);
  const parsed = parseReplayArgs(argv, topics.names);
  if (!parsed.ok) {
    console.error(`rt replay: ${parsed.message}\n${REPLAY_USAGE}`);
    return 2;
  }
  const args = parsed.args;
  if (args.out !== undefined) {
    // Before any Kafka work: a bad path is a bad argument.
    try {
      await (await open(args.out, "w")).close();
    } catch (e) {
      console.error(`rt replay: bad --out ${JSON.stringify(args.out)}: ${(e as Error).message}`);
      return 2;
    }
  }
  const kafkaConfig = readKafkaConfig(env, "rt-replay");
  const logger = createLogger({ service: "rt-replay", level: "silent" });
  const kafkaOpts = { brokers: kafkaConfig.brokers, clientId: kafkaConfig.clientId, logger, retries: 2 };
  const kafka = createKafka(kafkaOpts);
  const admin = await kafka.admin();
  let sink: ReplaySink | null = null;
  let producerClose: (() => Promise<void>) | null = null;
  try {
    const existing = new Set(await admin.listTopics());
    if (!existing.has(args.topic)) {
      console.error(
        `rt replay: bad --topic: topic ${JSON.stringify(args.topic)} does not exist on the cluster`,
      );
      return 2;
    }
    const offsets = await admin.partitionOffsets(args.topic);
    const plan = planRanges({
      offsets,
      ...(args.partitions === undefined ? {} : { partitions: args.partitions }),
      ...(args.fromOffset === undefined ? {} : { fromOffset: args.fromOffset }),
      ...(args.toOffset === undefined ? {} : { toOffset: args.toOffset }),
      ...(args.fromMs === undefined ? {} : { fromTime: await admin.offsetsForTime(args.topic, args.fromMs) }),
      ...(args.toMs === undefined ? {} : { toTime: await admin.offsetsForTime(args.topic, args.toMs) }),
    });
    if (!plan.ok) {
      console.error(`rt replay: ${plan.message}`);
      return 2;
    }
    for (const gap of plan.gaps) console.error(gapWarning(args.topic, gap));

    if (args.republish !== undefined) {
      const target = args.republish.topic;
      const count = existing.has(target) ? await admin.partitionCount(target) : null;
      if (count === null) {
        console.error(
          `rt replay: bad --republish: topic ${JSON.stringify(target)} does not exist on the cluster`,
        );
        return 2;
      }
      const producer = await kafka.producer();
      producerClose = () => producer.close();
      sink = republishSink(producer, target, count);
    } else if (args.format === "avro") {
      sink = avroSink(args.out, rowSchema(args.role));
    } else {
      sink = jsonlSink(args.out);
    }

    const stats: Stats = {
      read: 0,
      written: 0,
      filtered: 0,
      replayed: 0,
      undecodable: new Map(),
      partitionsDone: 0,
      partitions: plan.ranges.length,
      missing: plan.gaps.reduce((n, g) => n + g.missing, 0n),
      missingExact: plan.gaps.every((g) => g.exact),
    };
    const started = Date.now();
    const progress = process.stderr.isTTY ? startProgress(args.topic, stats, started) : null;
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once("SIGINT", onSigint);
    process.once("SIGTERM", onSigint);
    const out = sink;
    const reader = createRangeReader(kafkaOpts);
    let outcome: Outcome = "done";
    try {
      const r = await reader.read(
        args.topic,
        plan.ranges,
        {
          eachBatch: async (batch) => {
            for (const record of batch.records) await handle(args, record, out, stats);
          },
          onPartitionDone: () => stats.partitionsDone++,
        },
        { signal: abort.signal },
      );
      if (r.aborted) outcome = "interrupted";
    } catch (e) {
      if (!(e instanceof OutputClosedError)) throw e;
      outcome = "stopped, the output was closed";
    } finally {
      process.off("SIGINT", onSigint);
      process.off("SIGTERM", onSigint);
      progress?.stop();
      await reader.close();
    }
    try {
      await sink.close();
    } catch (e) {
      if (!(e instanceof OutputClosedError)) throw e;
      outcome = "stopped, the output was closed";
    }
    console.error(summary(args, stats, sink.destination, Date.now() - started, outcome));
    return outcome === "interrupted" ? 130 : 0;
  } finally {
    await producerClose?.();
    await admin.close();
  }
}

async function handle(args: ReplayArgs, record: InRecord, sink: ReplaySink, stats: Stats): Promise<void> {
  stats.read++;
  if (!args.includeReplayed && isReplayed(record)) {
    stats.replayed++;
    return;
  }
  const decoded = decodeValue(args.role, record.value);
  if (!decoded.ok) {
    const n = stats.undecodable.get(decoded.code) ?? 0;
    stats.undecodable.set(decoded.code, n + 1);
    if ([...stats.undecodable.values()].reduce((a, b) => a + b, 0) <= MAX_RECORD_WARNINGS) {
      console.error(
        `${process.stderr.isTTY ? "\r\x1b[2K" : ""}rt replay: warning: skipped ${record.topic} partition ${record.partition} offset ${record.offset}: ` +
          `${decoded.code}: ${decoded.message}`,
      );
    }
    return;
  }
  const inTime =
    (args.fromMs === undefined || record.timestampMs >= args.fromMs) &&
    (args.toMs === undefined || record.timestampMs < args.toMs);
  const key = record.key === null ? null : record.key.toString("utf8");
  if (!inTime || !matchesFilters(args.role, args.filters, key, decoded.value)) {
    stats.filtered++;
    return;
  }
  await sink.write(record, toRow(record, decoded.value));
  stats.written++;
}

function gapWarning(topic: string, gap: RetentionGap): string {
  const count = gap.exact ? `${gap.missing}` : `up to ${gap.missing}`;
  return (
    `rt replay: warning: ${topic} partition ${gap.partition}: the range starts before the oldest ` +
    `retained record (offset ${gap.logStart}); ${count} records of the range were deleted by retention ` +
    `and are missing`
  );
}

function startProgress(topic: string, stats: Stats, started: number): { stop(): void } {
  const draw = () => {
    const s = Math.max((Date.now() - started) / 1000, 0.001);
    process.stderr.write(
      `\r\x1b[2Kreplay ${topic}: ${stats.read} records read, ${stats.written} written, ` +
        `${stats.partitionsDone}/${stats.partitions} partitions done, ${Math.round(stats.read / s)} records/s`,
    );
  };
  const timer = setInterval(draw, PROGRESS_INTERVAL_MS);
  return {
    stop() {
      clearInterval(timer);
      draw();
      process.stderr.write("\n");
    },
  };
}

/** The last line on stderr, always printed. */
export function summary(
  args: Pick<ReplayArgs, "topic">,
  stats: Stats,
  destination: string,
  elapsedMs: number,
  outcome: Outcome,
): string {
  const undecodable = [...stats.undecodable.values()].reduce((a, b) => a + b, 0);
  const codes = [...stats.undecodable].map(([code, n]) => `${code} ${n}`).join(", ");
  const parts = [
    `${stats.written} written to ${destination}`,
    `${stats.filtered} filtered out`,
    `${stats.replayed} skipped as replayed`,
    `${undecodable} undecodable${undecodable > 0 ? ` (${codes})` : ""}`,
  ];
  if (stats.missing > 0n) {
    parts.push(`${stats.missingExact ? "" : "up to "}${stats.missing} missing (retention)`);
  }
  const rate = Math.round(stats.read / Math.max(elapsedMs / 1000, 0.001));
  return (
    `rt replay ${outcome}: ${args.topic}: ${stats.read} records read from ` +
    `${stats.partitionsDone}/${stats.partitions} partitions in ${(elapsedMs / 1000).toFixed(1)} s ` +
    `(${rate} records/s): ${parts.join(", ")}`
  );
}
