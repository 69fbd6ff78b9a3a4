/**
 * The `churn` scenario's flags, parsed and validated as a pure function (see args.ts for the
 * shape every scenario shares). Times are seconds from the start of traffic, which begins once
 * every client is connected.
 */
import { DEFAULT_BACKOFF } from "../client/backoff.ts";
import {
  decimal,
  fail,
  integer,
  MAX_MESSAGES_PER_RUN,
  PER_CONNECTION_MAX_DEFAULT,
  splitFlags,
} from "./flags.ts";
import { isLoopbackHost } from "./loopback.ts";

export const CHURN_ACTIONS = ["kill", "sigterm"] as const;
export type ChurnAction = (typeof CHURN_ACTIONS)[number];

export interface ChurnOptions {
  readonly scenario: "churn";
  /** Kafka bootstrap servers the gateways and router use, `host:port`. */
  readonly brokers: readonly string[];
  readonly gateways: number;
  readonly clients: number;
  readonly connectRatePerS: number;
  readonly ratePerS: number;
  /** Recipients per sender, drawn at random once: every message goes to one of them. */
  readonly peers: number;
  readonly warmupS: number;
  /** Seconds of traffic in all, warmup included. */
  readonly durationS: number;
  readonly killAfterS: number;
  readonly action: ChurnAction;
  readonly restart: boolean;
  /** Seconds after the kill (or SIGTERM) that a replacement gateway starts, with `restart`. */
  readonly restartAfterS: number;
  readonly graceS: number;
  readonly sessionTimeoutMs: number;
  readonly partitions: number;
  readonly payloadBytes: number;
  readonly localAddresses: number;
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  readonly kafkaPid: number | undefined;
  /** Drives peers, the send schedule and which gateway goes; random when not given. */
  readonly seed: number | undefined;
  readonly out: string | undefined;
  readonly allowRemote: boolean;
}

export const CHURN_DEFAULTS = {
  brokers: ["127.0.0.1:9092"],
  gateways: 3,
  clients: 10_000,
  connectRatePerS: 1000,
  ratePerS: 1000,
  peers: 2,
  warmupS: 5,
  durationS: 45,
  killAfterS: 15,
  action: "kill",
  restartAfterS: 10,
  graceS: 30,
  sessionTimeoutMs: 6000,
  partitions: 12,
  payloadBytes: 100,
  localAddresses: 16,
  backoffBaseMs: DEFAULT_BACKOFF.baseMs,
  backoffCapMs: DEFAULT_BACKOFF.capMs,
} as const;

export const CHURN_USAGE = `churn: brings up its own router and gateways on --brokers, connects --clients reference clients
through the router, sends numbered user-to-user events, then kills (or drains) one gateway mid-run
  --brokers <host:port,...> Kafka to run against (default 127.0.0.1:9092: \`npm run kafka -- start\` or \`npm start\`)
  --gateways <n>            gateway processes to start (default 3)
  --clients <n>             reference clients (RealtimeClient), one socket each (default 10000)
  --connect-rate <n/s>      clients started per second (default 1000)
  --rate <msgs/s>           total send rate, from random senders to random peers (default 1000)
  --peers <n>               recipients each sender picks from, fixed per run (default 2)
  --warmup <s>              seconds of traffic before measuring latency (default 5)
  --duration <s>            seconds of traffic in all, warmup included (default 45)
  --kill-after <s>          seconds into the traffic when one gateway goes (default 15)
  --action kill|sigterm     SIGKILL the gateway, or SIGTERM it so it drains (default kill)
  --restart                 start a replacement gateway --restart-after seconds after the kill
  --restart-after <s>       (default 10)
  --grace <s>               after the last send, how long to wait for acks and deliveries (default 30)
  --session-timeout-ms <n>  the gateways' RT_GATEWAY_SESSION_TIMEOUT_MS (default 6000)
  --partitions <n>          RT_DELIVERIES_PARTITIONS of the run's own topics (default 12)
  --payload-bytes <n>       size of each event's data, in bytes of JSON (default 100)
  --local-addresses <n>     rotate client source addresses over 127.0.0.1..127.0.0.n; 0: the OS chooses (default 16)
  --backoff-base-ms <n>     the clients' full-jitter backoff base (default ${DEFAULT_BACKOFF.baseMs}, the SDK's)
  --backoff-cap-ms <n>      the clients' backoff cap (default ${DEFAULT_BACKOFF.capMs}, the SDK's)
  --kafka-pid <pid>         the Kafka JVM, to report its CPU time
  --seed <n>                seed of peers, schedule and which gateway goes (default random, printed)
  --out <file.json>         result file (default loadtest/results/churn-<time>.json)
  --allow-remote            allow brokers that are not loopback`;

const VALUE_FLAGS = [
  "brokers",
  "gateways",
  "clients",
  "connect-rate",
  "rate",
  "peers",
  "warmup",
  "duration",
  "kill-after",
  "action",
  "restart-after",
  "grace",
  "session-timeout-ms",
  "partitions",
  "payload-bytes",
  "local-addresses",
  "backoff-base-ms",
  "backoff-cap-ms",
  "kafka-pid",
  "seed",
  "out",
] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];
const BOOLEAN_FLAGS = ["restart", "allow-remote"] as const;

/** At most this many brokers in --brokers. */
const MAX_BROKERS = 16;

export function brokerList(text: string, allowRemote: boolean): string[] {
  const list: string[] = [];
  for (const item of text.split(",")) {
    const m = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(item);
    if (m === null) fail("brokers", `${JSON.stringify(item)} is not host:port`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) fail("brokers", `port ${port} of ${item} is out of range [1, 65535]`);
    if (!allowRemote && !isLoopbackHost(m[1]!)) {
      fail("brokers", `host ${m[1]} is not loopback; pass --allow-remote for a Kafka you own elsewhere`);
    }
    if (list.includes(item)) fail("brokers", `${item} is given twice`);
    list.push(item);
  }
  if (list.length > MAX_BROKERS) fail("brokers", `at most ${MAX_BROKERS} brokers, got ${list.length}`);
  return list;
}

export function parseChurn(rest: readonly string[]): ChurnOptions {
  const { values, booleans } = splitFlags(rest, VALUE_FLAGS, BOOLEAN_FLAGS, "churn");
  const get = (flag: ValueFlag): string | undefined => values.get(flag);
  const int = (flag: ValueFlag, fallback: number, min: number, max: number): number => {
    const text = get(flag);
    return text === undefined ? fallback : integer(flag, text, min, max);
  };
  const num = (flag: ValueFlag, fallback: number, min: number, max: number): number => {
    const text = get(flag);
    return text === undefined ? fallback : decimal(flag, text, min, max);
  };
  const allowRemote = booleans.has("allow-remote");
  const restart = booleans.has("restart");
  const d = CHURN_DEFAULTS;

  const brokers = get("brokers") === undefined ? [...d.brokers] : brokerList(get("brokers")!, allowRemote);
  const partitions = int("partitions", d.partitions, 1, 1024);
  const gateways = int("gateways", d.gateways, 2, 16);
  if (gateways > partitions) {
    fail(
      "gateways",
      `${gateways} gateways for ${partitions} partitions: some would own nothing; raise --partitions`,
    );
  }
  const clients = int("clients", d.clients, 2, 200_000);
  const peers = int("peers", d.peers, 1, 64);
  if (peers >= clients) fail("peers", `${peers} peers need more than ${peers} clients`);
  const connectRatePerS = num("connect-rate", d.connectRatePerS, 1, 100_000);
  const ratePerS = num("rate", d.ratePerS, 0.001, 1_000_000);
  const perClient = ratePerS / clients;
  if (perClient > PER_CONNECTION_MAX_DEFAULT) {
    fail(
      "rate",
      `${ratePerS} msgs/s over ${clients} clients is ${+perClient.toFixed(2)} sends/s per client, over ` +
        `${PER_CONNECTION_MAX_DEFAULT} (the gateway allows RT_SENDS_PER_S, default 50): use --clients ` +
        `${Math.ceil(ratePerS / PER_CONNECTION_MAX_DEFAULT)} or more`,
    );
  }
  const warmupS = num("warmup", d.warmupS, 0, 600);
  const durationS = num("duration", d.durationS, 1, 3600);
  if (warmupS >= durationS)
    fail("warmup", `${warmupS} s leaves nothing of --duration ${durationS} s to measure`);
  const killAfterS = num("kill-after", d.killAfterS, 0, 3600);
  if (killAfterS >= durationS) {
    fail("kill-after", `${killAfterS} s is not inside the traffic (--duration ${durationS} s)`);
  }
  const actionText = get("action") ?? d.action;
  if (!(CHURN_ACTIONS as readonly string[]).includes(actionText)) {
    fail("action", `${JSON.stringify(actionText)} is not one of ${CHURN_ACTIONS.join(", ")}`);
  }
  const action = actionText as ChurnAction;
  if (get("restart-after") !== undefined && !restart)
    fail("restart-after", "only makes sense with --restart");
  const restartAfterS = num("restart-after", d.restartAfterS, 0, 3600);
  if (restart && killAfterS + restartAfterS >= durationS) {
    fail(
      "restart-after",
      `the replacement would start at ${killAfterS + restartAfterS} s, after the traffic ends (--duration ${durationS} s)`,
    );
  }
  const graceS = num("grace", d.graceS, 0, 600);
  const sessionTimeoutMs = int("session-timeout-ms", d.sessionTimeoutMs, 1000, 300_000);
  const payloadBytes = int("payload-bytes", d.payloadBytes, 0, 60_000);
  const localAddresses = int("local-addresses", d.localAddresses, 0, 254);
  const backoffBaseMs = int("backoff-base-ms", d.backoffBaseMs, 1, 600_000);
  const backoffCapMs = int("backoff-cap-ms", Math.max(d.backoffCapMs, backoffBaseMs), 1, 3_600_000);
  if (backoffCapMs < backoffBaseMs) {
    fail("backoff-cap-ms", `${backoffCapMs} is below --backoff-base-ms ${backoffBaseMs}`);
  }
  const kafkaPid =
    get("kafka-pid") === undefined ? undefined : integer("kafka-pid", get("kafka-pid")!, 1, 2 ** 22);
  const seed = get("seed") === undefined ? undefined : integer("seed", get("seed")!, 0, 999_999_999);
  const messages = Math.ceil(ratePerS * durationS);
  if (messages > MAX_MESSAGES_PER_RUN) {
    fail(
      "duration",
      `--rate x --duration is ${messages} messages; a run sends at most ${MAX_MESSAGES_PER_RUN}`,
    );
  }
  return {
    scenario: "churn",
    brokers,
    gateways,
    clients,
    connectRatePerS,
    ratePerS,
    peers,
    warmupS,
    durationS,
    killAfterS,
    action,
    restart,
    restartAfterS,
    graceS,
    sessionTimeoutMs,
    partitions,
    payloadBytes,
    localAddresses,
    backoffBaseMs,
    backoffCapMs,
    kafkaPid,
    seed,
    out: get("out"),
    allowRemote,
  };
}
