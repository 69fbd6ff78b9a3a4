/**
 * Whether Kafka can serve this gateway right now, and whether the deliveries topic is still the
 * incarnation the gateway started with. A probe asks a bootstrap broker for the topic's metadata
 * (Metadata v10, with its topic ID) every interval, bounded by a timeout:
 *
 * - no answer (broker down, network stalled), topic missing, or a partition without a leader:
 *   not ready (GET /readyz 503) until a probe succeeds again;
 * - another topic ID or partition count: the topic was deleted and created again (or
 *   repartitioned), so every cursor and every position the gateway holds belongs to the old log.
 *   `onReplaced` runs once; the gateway then restarts itself with the new epoch (main.ts).
 *
 * `probeVerdict` is the pure decision; `KafkaHealth` is the timer around it.
 */
import type { TopicIdentity, TopicLookup } from "../common/kafka/topic-identity.ts";
import type { Logger } from "../common/log.ts";

export type ProbeVerdict =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason: string; readonly replaced: boolean };

/** What one probe outcome (a lookup, or the error it failed with) means for a gateway started on `initial`. */
export function probeVerdict(
  topic: string,
  initial: TopicIdentity,
  outcome: TopicLookup | Error,
): ProbeVerdict {
  if (outcome instanceof Error)
    return { ready: false, reason: `Kafka unreachable: ${outcome.message}`, replaced: false };
  if (!outcome.exists) return { ready: false, reason: `topic ${topic} does not exist`, replaced: false };
  const now = outcome.identity;
  if (now.topicId !== initial.topicId || now.partitions !== initial.partitions) {
    return {
      ready: false,
      reason: `topic ${topic} was recreated or repartitioned (ID ${now.topicId}, ${now.partitions} partitions)`,
      replaced: true,
    };
  }
  if (now.leaderless > 0)
    return {
      ready: false,
      reason: `${now.leaderless} partitions of ${topic} have no leader`,
      replaced: false,
    };
  return { ready: true };
}

export class KafkaHealth {
  #reason: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #replaced = false;

  constructor(
    private readonly opts: {
      readonly topic: string;
      readonly initial: TopicIdentity;
      readonly intervalMs: number;
      /** One probe; rejects when Kafka does not answer in time. */
      readonly probe: () => Promise<TopicLookup>;
      readonly onReplaced: (reason: string) => void;
      readonly log: Logger;
    },
  ) {}

  start(): void {
    if (this.#closed || this.#timer !== null) return;
    this.#schedule();
  }

  /** null while the last probe found Kafka able to serve; otherwise why not. */
  get notReadyReason(): string | null {
    return this.#reason;
  }

  /** Stops probing. Safe to call twice. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#tick(), this.opts.intervalMs);
  }

  async #tick(): Promise<void> {
    const { topic, initial, log } = this.opts;
    let outcome: TopicLookup | Error;
    try {
      outcome = await this.opts.probe();
    } catch (e) {
      outcome = e instanceof Error ? e : new Error(String(e));
    }
    if (this.#closed) return;
    const verdict = probeVerdict(topic, initial, outcome);
    const reason = verdict.ready ? null : verdict.reason;
    if (reason !== this.#reason) {
      if (reason === null) log.info("Kafka serves the deliveries topic again: ready");
      else log.warn({ reason }, "not ready");
    }
    this.#reason = reason;
    if (!verdict.ready && verdict.replaced && !this.#replaced) {
      this.#replaced = true;
      this.opts.onReplaced(verdict.reason);
    }
    this.#schedule();
  }
}
