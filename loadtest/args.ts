/**
 * The load test's command line, parsed and validated as a pure function: argv in, options or a
 * one-line error naming the flag out. Accepts `--flag value` and `--flag=value`; every flag at
 * most once. The first argument names the scenario: `direct` (here), `churn` (churn-args.ts),
 * `room` or `broadcast` (fanout-args.ts), `connect` or `storm` (connect-args.ts).
 */
import { CHURN_USAGE, parseChurn, type ChurnOptions } from "./churn-args.ts";
import {
  BROADCAST_USAGE,
  parseBroadcast,
  parseRoom,
  ROOM_USAGE,
  type BroadcastOptions,
  type RoomOptions,
} from "./fanout-args.ts";
import {
  decimal,
  fail,
  FlagError,
  integer,
  MAX_MESSAGES_PER_RUN,
  PER_CONNECTION_MAX_DEFAULT,
  processList,
  splitFlags,
  type ProcessRef,
} from "./flags.ts";
import {
  CONNECT_USAGE,
  parseConnect,
  parseStorm,
  STORM_USAGE,
  type ConnectOptions,
  type StormOptions,
} from "./connect-args.ts";
import { checkTargetUrl } from "./loopback.ts";

export { MAX_MESSAGES_PER_RUN, type ProcessRef };

const SCENARIOS = "`direct`, `churn`, `room`, `broadcast`, `connect` or `storm`";

export const USAGE = `usage: npm run loadtest -- direct [flags]
       npm run loadtest -- churn [flags]
       npm run loadtest -- room [flags]
       npm run loadtest -- broadcast [flags]
       npm run loadtest -- connect [flags]
       npm run loadtest -- storm [flags]

Every run writes its result as JSON and a self-contained HTML report with charts next to it.

direct: user-to-user events through running gateways, measured end to end
  --gateway <ws-url>        gateway to connect to; redirects are followed (default ws://127.0.0.1:8081/v1/ws)
  --pairs <n>               sender/receiver pairs, 2 connections each (default 200)
  --rate <msgs/s>           total offered send rate, spread evenly over the senders (default 5000)
  --duration <s>            measured seconds (default 30)
  --warmup <s>              seconds of load before measuring (default 5)
  --grace <s>               after the end, how long to wait for late acks and deliveries (default 10)
  --payload-bytes <n>       size of each event's data, in bytes of JSON (default 100)
  --secret <s>              HS256 token secret (default RT_JWT_SECRET, else the local dev secret)
  --out <file.json>         result file (default loadtest/results/direct-<time>.json)
  --pids <name=pid,...>     processes whose CPU time to report, e.g. kafka=123,gw1=456
  --local-addresses <n>     rotate source addresses over 127.0.0.1..127.0.0.n; 0 lets the OS choose (default 16)
  --per-connection-max <n>  largest sends/s per sender allowed; raise with RT_SENDS_PER_S (default 40)
  --allow-remote            allow a gateway that is not loopback (only for a real cluster you own)

${CHURN_USAGE}

${ROOM_USAGE}

${BROADCAST_USAGE}

${CONNECT_USAGE}

${STORM_USAGE}`;

export interface DirectOptions {
  readonly scenario: "direct";
  readonly gateway: string;
  readonly pairs: number;
  readonly ratePerS: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly graceS: number;
  readonly payloadBytes: number;
  readonly secret: string | undefined;
  readonly out: string | undefined;
  readonly pids: readonly ProcessRef[];
  readonly localAddresses: number;
  readonly perConnectionMax: number;
  readonly allowRemote: boolean;
}

export type ParseResult =
  | {
      readonly kind: "run";
      readonly options:
        | DirectOptions
        | ChurnOptions
        | RoomOptions
        | BroadcastOptions
        | ConnectOptions
        | StormOptions;
    }
  | { readonly kind: "help" }
  | { readonly kind: "error"; readonly message: string };

export const DEFAULTS = {
  gateway: "ws://127.0.0.1:8081/v1/ws",
  pairs: 200,
  ratePerS: 5000,
  durationS: 30,
  warmupS: 5,
  graceS: 10,
  payloadBytes: 100,
  localAddresses: 16,
  perConnectionMax: PER_CONNECTION_MAX_DEFAULT,
} as const;

const VALUE_FLAGS = [
  "gateway",
  "pairs",
  "rate",
  "duration",
  "warmup",
  "grace",
  "payload-bytes",
  "secret",
  "out",
  "pids",
  "local-addresses",
  "per-connection-max",
] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];
const BOOLEAN_FLAGS = ["allow-remote"] as const;

function parseDirect(rest: readonly string[]): DirectOptions {
  const { values, booleans } = splitFlags(rest, VALUE_FLAGS, BOOLEAN_FLAGS, "direct");
  const allowRemote = booleans.has("allow-remote");
  const get = (flag: ValueFlag): string | undefined => values.get(flag);
  const gateway = get("gateway") ?? DEFAULTS.gateway;
  const target = checkTargetUrl(gateway, allowRemote);
  if (!target.ok) fail("gateway", target.message);
  const pairs = get("pairs") === undefined ? DEFAULTS.pairs : integer("pairs", get("pairs")!, 1, 5000);
  const ratePerS =
    get("rate") === undefined ? DEFAULTS.ratePerS : decimal("rate", get("rate")!, 0.001, 1_000_000);
  const durationS =
    get("duration") === undefined ? DEFAULTS.durationS : decimal("duration", get("duration")!, 1, 3600);
  const warmupS = get("warmup") === undefined ? DEFAULTS.warmupS : decimal("warmup", get("warmup")!, 0, 600);
  const graceS = get("grace") === undefined ? DEFAULTS.graceS : decimal("grace", get("grace")!, 0, 300);
  const payloadBytes =
    get("payload-bytes") === undefined
      ? DEFAULTS.payloadBytes
      : integer("payload-bytes", get("payload-bytes")!, 0, 60_000);
  const localAddresses =
    get("local-addresses") === undefined
      ? DEFAULTS.localAddresses
      : integer("local-addresses", get("local-addresses")!, 0, 254);
  const perConnectionMax =
    get("per-connection-max") === undefined
      ? DEFAULTS.perConnectionMax
      : decimal("per-connection-max", get("per-connection-max")!, 0.001, 100_000);
  const pids = get("pids") === undefined ? [] : processList(get("pids")!);

  const perSender = ratePerS / pairs;
  if (perSender > perConnectionMax) {
    const needed = Math.ceil(ratePerS / perConnectionMax);
    fail(
      "rate",
      `${ratePerS} msgs/s over ${pairs} pairs is ${+perSender.toFixed(2)} sends/s per connection, over ` +
        `--per-connection-max ${perConnectionMax} (the gateway allows RT_SENDS_PER_S, default 50): use --pairs ${needed} or more`,
    );
  }
  const messages = Math.ceil(ratePerS * (warmupS + durationS));
  if (messages > MAX_MESSAGES_PER_RUN) {
    fail(
      "duration",
      `--rate x (--warmup + --duration) is ${messages} messages; a run sends at most ${MAX_MESSAGES_PER_RUN}`,
    );
  }
  return {
    scenario: "direct",
    gateway: target.url.href,
    pairs,
    ratePerS,
    durationS,
    warmupS,
    graceS,
    payloadBytes,
    secret: get("secret"),
    out: get("out"),
    pids,
    localAddresses,
    perConnectionMax,
    allowRemote,
  };
}

function parseOrThrow(argv: readonly string[]): ParseResult {
  if (argv.includes("--help") || argv.includes("-h")) return { kind: "help" };
  const [scenario, ...rest] = argv;
  if (scenario === undefined) throw new FlagError(`missing scenario: expected ${SCENARIOS} (see --help)`);
  if (scenario === "direct") return { kind: "run", options: parseDirect(rest) };
  if (scenario === "churn") return { kind: "run", options: parseChurn(rest) };
  if (scenario === "room") return { kind: "run", options: parseRoom(rest) };
  if (scenario === "broadcast") return { kind: "run", options: parseBroadcast(rest) };
  if (scenario === "connect") return { kind: "run", options: parseConnect(rest) };
  if (scenario === "storm") return { kind: "run", options: parseStorm(rest) };
  throw new FlagError(`unknown scenario ${JSON.stringify(scenario)}: expected ${SCENARIOS} (see --help)`);
}

/** Parses the arguments after `loadtest`. Never throws. */
export function parseArgs(argv: readonly string[]): ParseResult {
  try {
    return parseOrThrow(argv);
  } catch (e) {
    if (e instanceof FlagError) return { kind: "error", message: e.message };
    throw e;
  }
}

/** The command line as recorded in results: the secret's value is replaced. */
export function redactArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--secret" && i + 1 < argv.length) {
      out.push(arg, "<redacted>");
      i++;
    } else if (arg.startsWith("--secret=")) out.push("--secret=<redacted>");
    else out.push(arg);
  }
  return out;
}
