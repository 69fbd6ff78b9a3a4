import type { TopicSpec } from "../../schemas/topics.ts";
import { KafkaError } from "./errors.ts";
import type { Admin, EnsureOutcome } from "./kafka.ts";

/**
 * Creates the missing topics of `specs` and checks the existing ones. Throws a
 * non-retriable KafkaError (code topic_mismatch) naming every topic whose partition count
 * differs: partitions decide which user lives where, so a service must not run on them.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<EnsureOutcome[]> {
  const outcomes = await admin.ensureTopics(specs);
  const bad = outcomes.flatMap((o) =>
    o.action === "mismatch"
      ? [`${o.topic} has ${o.partitions} partitions, the configuration says ${o.expectedPartitions}`]
      : [],
  );
  if (bad.length > 0) {
    throw new KafkaError(
      "topic_mismatch",
      `${bad.join("; ")}. Partition counts are never changed automatically (it would move users): ` +
        "set the configuration to the existing count, or recreate the topic (its data is lost)",
      { retriable: false },
    );
  }
  return outcomes;
}
