/**
 * The load test's command line, parsed and validated as a pure function: argv in, options or a
 * one-line error naming the flag out. Accepts `--flag value` and `--flag=value`; every flag at
 * most once.
 */
import { checkTargetUrl } from "./loopback.ts";

export const USAGE = `usage: npm run loadtest -- direct [flags]

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
  --allow-remote            allow a gateway that is not loopback (only for a real cluster you own)`;

export interface ProcessRef {
  readonly name: string;
  readonly pid: number;
}

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
  | { readonly kind: "run"; readonly options: DirectOptions }
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
  perConnectionMax: 40,
} as const;

/** The most messages one run may send: 9 bytes of state each, so this bounds memory (90 MB). */
export const MAX_MESSAGES_PER_RUN = 10_000_000;

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

class FlagError extends Error {}

function fail(flag: string, message: string): never {
  throw new FlagError(`--${flag}: ${message}`);
}

function integer(flag: string, text: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(text)) fail(flag, `${JSON.stringify(text)} is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) fail(flag, `${n} is out of range [${min}, ${max}]`);
  return n;
}

function decimal(flag: string, text: string, min: number, max: number): number {
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(text)) fail(flag, `${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (n < min || n > max) fail(flag, `${n} is out of range [${min}, ${max}]`);
  return n;
}

function processList(text: string): ProcessRef[] {
  const list: ProcessRef[] = [];
  for (const item of text.split(",")) {
    const m = /^([A-Za-z0-9_.-]{1,32})=(\d{1,9})$/.exec(item);
    if (m === null) fail("pids", `${JSON.stringify(item)} is not name=pid (name: 1-32 of [A-Za-z0-9_.-])`);
    const pid = Number(m[2]);
    if (pid < 1) fail("pids", `pid of ${m[1]} must be >= 1`);
    if (list.some((p) => p.name === m[1])) fail("pids", `name ${m[1]} is given twice`);
    list.push({ name: m[1]!, pid });
  }
  if (list.length > 32) fail("pids", `at most 32 processes, got ${list.length}`);
  return list;
}

function isValueFlag(name: string): name is ValueFlag {
  return (VALUE_FLAGS as readonly string[]).includes(name);
}

function parseOrThrow(argv: readonly string[]): ParseResult {
  if (argv.includes("--help") || argv.includes("-h")) return { kind: "help" };
  const [scenario, ...rest] = argv;
  if (scenario === undefined) throw new FlagError("missing scenario: expected `direct` (see --help)");
  if (scenario !== "direct") {
    throw new FlagError(`unknown scenario ${JSON.stringify(scenario)}: expected \`direct\` (see --help)`);
  }
  const values = new Map<ValueFlag, string>();
  let allowRemote = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (m === null) throw new FlagError(`unexpected argument ${JSON.stringify(arg)} (flags start with --)`);
    const name = m[1]!;
    if ((BOOLEAN_FLAGS as readonly string[]).includes(name)) {
      if (m[2] !== undefined) fail(name, "takes no value");
      if (allowRemote) fail(name, "is given twice");
      allowRemote = true;
      continue;
    }
    if (!isValueFlag(name)) throw new FlagError(`unknown flag --${name} (see --help)`);
    if (values.has(name)) fail(name, "is given twice");
    let value = m[2];
    if (value === undefined) {
      value = rest[i + 1];
      if (value === undefined || value.startsWith("--")) fail(name, "needs a value");
      i++;
    }
    if (value === "") fail(name, "needs a non-empty value");
    values.set(name, value);
  }

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
    kind: "run",
    options: {
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
    },
  };
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
