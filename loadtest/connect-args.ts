/**
 * The flags of the `connect` and `storm` scenarios, parsed and validated as pure functions:
 * - `connect`: open N idle connections at a rate, hold them, measure what each costs a gateway;
 * - `storm`: N connected clients that have received messages are all dropped at once, then all
 *   reconnect and resume from their cursors.
 * Both start their own gateways (and router) on a Kafka you run and spread the clients over
 * several generator processes: the defaults give each gateway at most GATEWAY_CONNECTIONS_DEFAULT
 * clients and each generator CLIENTS_PER_GENERATOR_DEFAULT.
 */
import {
  BOOLEAN_FLAGS,
  COMMON_USAGE,
  COMMON_VALUE_FLAGS,
  MAX_DELIVERIES_PER_RUN,
  parseCommon,
  readers,
  type FanoutCommon,
  type Getter,
} from "./fanout-args.ts";
import { resolve } from "node:path";
import { fail, splitFlags } from "./flags.ts";

/** Connections per gateway process the defaults aim for (a gateway may open `ulimit -n` files). */
export const GATEWAY_CONNECTIONS_DEFAULT = 16_000;
/** Deliveries partitions per gateway by default, so hashing spreads users evenly. */
export const PARTITIONS_PER_GATEWAY = 8;
export const MAX_STORM_MESSAGES = 1000;

export interface ConnectOptions extends FanoutCommon {
  readonly scenario: "connect";
  readonly clients: number;
  readonly holdS: number;
  /** The gateways' RT_PING_INTERVAL_MS: heartbeats stay on while the connections idle. */
  readonly pingIntervalMs: number;
  /** Seconds between reads of the gateways' /metrics while holding. */
  readonly sampleEveryS: number;
  /** NODE_OPTIONS of the gateways (e.g. V8 heap settings); undefined: the caller's. */
  readonly gatewayNodeOptions: string | undefined;
}

export interface StormOptions extends FanoutCommon {
  readonly scenario: "storm";
  readonly clients: number;
  /** Messages each client receives before the drop, and messages written for it while it is away. */
  readonly messagesBefore: number;
  readonly messagesDuring: number;
  /** Clients reconnect at a uniformly random moment in [0, spread] after the storm starts; 0: all at once. */
  readonly reconnectSpreadMs: number;
  /** A failed reconnect is retried with full-jitter backoff between these bounds. */
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  /** Where each gateway writes a V8 CPU profile (`--cpu-prof`) when it stops; null: no profile. */
  readonly gatewayCpuProfDir: string | null;
  /** Where each generator process writes a V8 CPU profile when it stops; null: no profile. */
  readonly generatorCpuProfDir: string | null;
  /** Most reconnects one generator keeps in flight at a time (the rest wait their turn, on the clock). */
  readonly handshakesInFlight: number;
  /** How long after the storm starts every client must be back and caught up. */
  readonly resumeTimeoutS: number;
}

export const CONNECT_DEFAULTS = {
  clients: 10_000,
  holdS: 60,
  pingIntervalMs: 30_000,
  sampleEveryS: 5,
  graceS: 0,
  payloadBytes: 0,
} as const;

export const STORM_DEFAULTS = {
  clients: 10_000,
  messagesBefore: 3,
  messagesDuring: 3,
  reconnectSpreadMs: 0,
  backoffBaseMs: 250,
  backoffCapMs: 5_000,
  handshakesInFlight: 1_000,
  resumeTimeoutS: 120,
  graceS: 0,
  payloadBytes: 100,
} as const;

const SHAPE_USAGE = `  (default --gateways: one per ${GATEWAY_CONNECTIONS_DEFAULT} clients; --partitions: ${PARTITIONS_PER_GATEWAY} per gateway, at least 12)`;

export const CONNECT_USAGE = `connect: brings up its own gateways (and a router) on --brokers, opens --clients idle
connections at --connect-rate from several generator processes, holds them for --hold seconds with
heartbeats on, and reports connections held, failures, drops and the gateways' memory per connection
  --clients <n>             connections (default ${CONNECT_DEFAULTS.clients})
  --hold <s>                seconds to hold them once all are open (default ${CONNECT_DEFAULTS.holdS})
  --ping-interval-ms <n>    the gateways' RT_PING_INTERVAL_MS (default ${CONNECT_DEFAULTS.pingIntervalMs})
  --sample-every <s>        seconds between reads of the gateways' memory while holding (default ${CONNECT_DEFAULTS.sampleEveryS})
  --gateway-node-options=<s> NODE_OPTIONS of the gateways, e.g. --gateway-node-options=--max-semi-space-size=1
${COMMON_USAGE}
${SHAPE_USAGE}`;

export const STORM_USAGE = `storm: brings up its own gateways (and a router) on --brokers, connects --clients clients,
writes --messages-before events to each, drops every socket at once, writes --messages-during more,
then every client reconnects with its cursor; reports time to resume, failures and lost events
  --clients <n>             clients (default ${STORM_DEFAULTS.clients})
  --messages-before <n>     events each client receives before the drop (default ${STORM_DEFAULTS.messagesBefore})
  --messages-during <n>     events written to each client while it is away (default ${STORM_DEFAULTS.messagesDuring})
  --reconnect-spread-ms <n> clients reconnect at a random moment within this window; 0: all at once (default 0)
  --backoff-base-ms <n>, --backoff-cap-ms <n>
                            full-jitter backoff of a failed reconnect (default ${STORM_DEFAULTS.backoffBaseMs}, ${STORM_DEFAULTS.backoffCapMs})
  --handshakes-in-flight <n>
                            most reconnects (connect to welcome) one generator keeps in flight; the
                            others wait their turn, and the wait counts in their time (default ${STORM_DEFAULTS.handshakesInFlight})
  --resume-timeout <s>      every client must be back and caught up within this (default ${STORM_DEFAULTS.resumeTimeoutS})
  --gateway-cpu-prof <dir>  each gateway writes a V8 CPU profile (.cpuprofile, open it in Chrome DevTools) to <dir> when it stops
  --generator-cpu-prof <dir>
                            each generator process writes a V8 CPU profile to <dir> when it stops
${COMMON_USAGE}
${SHAPE_USAGE}`;

/** The common flags with the defaults sized for `clients`: gateways and partitions grow with it. */
function commonSized(
  get: Getter,
  allowRemote: boolean,
  clients: number,
  d: { graceS: number; payloadBytes: number },
): FanoutCommon {
  const { int } = readers(get);
  const gateways = int("gateways", Math.max(1, Math.ceil(clients / GATEWAY_CONNECTIONS_DEFAULT)), 1, 16);
  return parseCommon(get, allowRemote, clients, {
    gateways,
    graceS: d.graceS,
    partitions: Math.max(12, gateways * PARTITIONS_PER_GATEWAY),
    payloadBytes: d.payloadBytes,
  });
}

const CONNECT_FLAGS = [
  ...COMMON_VALUE_FLAGS,
  "clients",
  "hold",
  "ping-interval-ms",
  "sample-every",
  "gateway-node-options",
] as const;

export function parseConnect(rest: readonly string[]): ConnectOptions {
  const { values, booleans } = splitFlags(rest, CONNECT_FLAGS, BOOLEAN_FLAGS, "connect");
  const get: Getter = (flag) => values.get(flag as (typeof CONNECT_FLAGS)[number]);
  const { int, num } = readers(get);
  const d = CONNECT_DEFAULTS;
  const clients = int("clients", d.clients, 1, 1_000_000);
  return {
    scenario: "connect",
    ...commonSized(get, booleans.has("allow-remote"), clients, d),
    clients,
    holdS: num("hold", d.holdS, 0, 7200),
    pingIntervalMs: int("ping-interval-ms", d.pingIntervalMs, 4_000, 600_000),
    sampleEveryS: num("sample-every", d.sampleEveryS, 1, 600),
    gatewayNodeOptions: nodeOptions(get("gateway-node-options")),
  };
}

/** Only `--flag` or `--flag=value` words: a value is handed to node, never to a shell. */
function nodeOptions(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const words = text.trim().split(/\s+/);
  if (words.length > 16 || !words.every((w) => /^--[a-z0-9-]{1,64}(=[A-Za-z0-9_.,:/-]{1,128})?$/.test(w))) {
    fail("gateway-node-options", `${JSON.stringify(text)} must be node flags like --max-semi-space-size=1`);
  }
  return words.join(" ");
}

function profDir(flag: string, dir: string | undefined): string | null {
  if (dir === undefined) return null;
  if (dir === "" || /[\0\n]/.test(dir)) fail(flag, `${JSON.stringify(dir)} is not a directory path`);
  return resolve(dir);
}

const STORM_FLAGS = [
  ...COMMON_VALUE_FLAGS,
  "clients",
  "messages-before",
  "messages-during",
  "reconnect-spread-ms",
  "backoff-base-ms",
  "backoff-cap-ms",
  "handshakes-in-flight",
  "resume-timeout",
  "gateway-cpu-prof",
  "generator-cpu-prof",
] as const;

export function parseStorm(rest: readonly string[]): StormOptions {
  const { values, booleans } = splitFlags(rest, STORM_FLAGS, BOOLEAN_FLAGS, "storm");
  const get: Getter = (flag) => values.get(flag as (typeof STORM_FLAGS)[number]);
  const { int, num } = readers(get);
  const d = STORM_DEFAULTS;
  const clients = int("clients", d.clients, 1, 1_000_000);
  const messagesBefore = int("messages-before", d.messagesBefore, 1, MAX_STORM_MESSAGES);
  const messagesDuring = int("messages-during", d.messagesDuring, 0, MAX_STORM_MESSAGES);
  if (messagesBefore + messagesDuring > MAX_STORM_MESSAGES) {
    fail("messages-during", `--messages-before + --messages-during is over ${MAX_STORM_MESSAGES}`);
  }
  if (clients * (messagesBefore + messagesDuring) > MAX_DELIVERIES_PER_RUN) {
    fail(
      "clients",
      `${clients} clients x ${messagesBefore + messagesDuring} messages is over ${MAX_DELIVERIES_PER_RUN}`,
    );
  }
  const backoffBaseMs = int("backoff-base-ms", d.backoffBaseMs, 1, 600_000);
  const backoffCapMs = int("backoff-cap-ms", d.backoffCapMs, 1, 600_000);
  if (backoffCapMs < backoffBaseMs)
    fail("backoff-cap-ms", `must be at least --backoff-base-ms (${backoffBaseMs})`);
  const handshakesInFlight = int("handshakes-in-flight", d.handshakesInFlight, 1, 19_000);
  const reconnectSpreadMs = int("reconnect-spread-ms", d.reconnectSpreadMs, 0, 600_000);
  const resumeTimeoutS = num("resume-timeout", d.resumeTimeoutS, 1, 3600);
  if (reconnectSpreadMs / 1000 >= resumeTimeoutS) {
    fail("resume-timeout", `must be longer than --reconnect-spread-ms (${reconnectSpreadMs} ms)`);
  }
  return {
    scenario: "storm",
    ...commonSized(get, booleans.has("allow-remote"), clients, d),
    clients,
    messagesBefore,
    messagesDuring,
    reconnectSpreadMs,
    backoffBaseMs,
    backoffCapMs,
    handshakesInFlight,
    resumeTimeoutS,
    gatewayCpuProfDir: profDir("gateway-cpu-prof", get("gateway-cpu-prof")),
    generatorCpuProfDir: profDir("generator-cpu-prof", get("generator-cpu-prof")),
  };
}
