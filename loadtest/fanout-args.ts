/**
 * The flags of the two fanout scenarios, parsed and validated as pure functions (args.ts holds
 * the shape every scenario shares):
 * - `room`: members in rooms, messages into the rooms, every member must get each once;
 * - `broadcast`: connected clients, broadcasts through the publish API to channel `*`.
 * Both bring up their own router and gateways on a Kafka you run, and spread their clients over
 * several load-generator processes (one process may open only `ulimit -n` files).
 */
import { brokerList } from "./churn-args.ts";
import { decimal, fail, integer, MAX_MESSAGES_PER_RUN, splitFlags } from "./flags.ts";

/** Deliveries one run may expect in all: one byte of state each in the generators (100 MB). */
export const MAX_DELIVERIES_PER_RUN = 100_000_000;
/** Clients per generator process when --generators is not given. */
export const CLIENTS_PER_GENERATOR_DEFAULT = 10_000;
/** Measured broadcasts at most: each keeps one small histogram per generator. */
export const MAX_BROADCASTS = 200;

export const ROOM_VIA = ["member", "publish"] as const;
export type RoomVia = (typeof ROOM_VIA)[number];

/** What both fanout scenarios share. */
export interface FanoutCommon {
  readonly brokers: readonly string[];
  readonly gateways: number;
  /** Load-generator child processes the clients are spread over. */
  readonly generators: number;
  readonly connectRatePerS: number;
  readonly partitions: number;
  readonly payloadBytes: number;
  readonly localAddresses: number;
  readonly graceS: number;
  readonly kafkaPid: number | undefined;
  readonly out: string | undefined;
  readonly allowRemote: boolean;
}

export interface RoomOptions extends FanoutCommon {
  readonly scenario: "room";
  /** Member connections in all (the senders of `via: member` come on top, one per room). */
  readonly members: number;
  readonly rooms: number;
  /** Messages per second into all rooms together, spread evenly over them. */
  readonly ratePerS: number;
  readonly via: RoomVia;
  readonly warmupS: number;
  readonly durationS: number;
  readonly roomPartitions: number;
}

export interface BroadcastOptions extends FanoutCommon {
  readonly scenario: "broadcast";
  readonly clients: number;
  readonly broadcasts: number;
  readonly intervalS: number;
}

export const ROOM_DEFAULTS = {
  brokers: ["127.0.0.1:9092"],
  gateways: 2,
  members: 1000,
  rooms: 1,
  ratePerS: 10,
  via: "member",
  warmupS: 3,
  durationS: 20,
  graceS: 15,
  partitions: 12,
  roomPartitions: 4,
  payloadBytes: 100,
  connectRatePerS: 1000,
  localAddresses: 16,
} as const;

export const BROADCAST_DEFAULTS = {
  brokers: ["127.0.0.1:9092"],
  gateways: 4,
  clients: 1000,
  broadcasts: 10,
  intervalS: 2,
  graceS: 10,
  partitions: 12,
  payloadBytes: 100,
  connectRatePerS: 1000,
  localAddresses: 16,
} as const;

export const COMMON_USAGE = `  --brokers <host:port,...> Kafka to run against (default 127.0.0.1:9092: \`npm run kafka -- start\`)
  --gateways <n>            gateway processes to start
  --generators <n>          load-generator processes the clients are spread over
                            (default: one per ${CLIENTS_PER_GENERATOR_DEFAULT} clients; each may open only \`ulimit -n\` files)
  --connect-rate <n/s>      clients connected per second, over all generators (default 1000)
  --partitions <n>          RT_DELIVERIES_PARTITIONS of the run's own topics (default 12)
  --payload-bytes <n>       size of each event's data, in bytes of JSON (default 100)
  --local-addresses <n>     rotate client source addresses over 127.0.0.1..127.0.0.n (default 16)
  --kafka-pid <pid>         the Kafka JVM, to report its CPU time
  --out <file.json>         result file (default loadtest/results/<scenario>-<time>.json)
  --allow-remote            allow brokers that are not loopback`;

export const ROOM_USAGE = `room: brings up its own router and gateways on --brokers, connects --members clients that join
--rooms rooms, sends messages into the rooms and checks every member gets each one exactly once
  --members <n>             member connections in all, spread evenly over the rooms (default 1000)
  --rooms <n>               rooms (default 1)
  --rate <msgs/s>           messages per second into all rooms together (default 10)
  --via member|publish      who sends: one member per room over its socket (it receives its own
                            messages too), or a backend through POST /v1/publish (default member)
  --warmup <s>              seconds of sending before measuring (default 3)
  --duration <s>            measured seconds (default 20)
  --grace <s>               after the last send, how long to wait for deliveries (default 15)
  --room-partitions <n>     RT_ROOM_PARTITIONS of the run's own topics (default 4)
${COMMON_USAGE}
  (--gateways default 2)`;

export const BROADCAST_USAGE = `broadcast: brings up its own router and gateways on --brokers, connects --clients clients, then
publishes --broadcasts events to channel * through POST /v1/publish and times each one's arrival
  --clients <n>             connected clients (default 1000)
  --broadcasts <n>          measured broadcasts, at most ${MAX_BROADCASTS} (default 10)
  --interval <s>            seconds between broadcasts (default 2)
  --grace <s>               after the last broadcast, how long to wait for it to arrive (default 10)
${COMMON_USAGE}
  (--gateways default 4)`;

export const COMMON_VALUE_FLAGS = [
  "brokers",
  "gateways",
  "generators",
  "connect-rate",
  "partitions",
  "payload-bytes",
  "local-addresses",
  "grace",
  "kafka-pid",
  "out",
] as const;
const ROOM_FLAGS = [
  ...COMMON_VALUE_FLAGS,
  "members",
  "rooms",
  "rate",
  "via",
  "warmup",
  "duration",
  "room-partitions",
] as const;
const BROADCAST_FLAGS = [...COMMON_VALUE_FLAGS, "clients", "broadcasts", "interval"] as const;
export const BOOLEAN_FLAGS = ["allow-remote"] as const;

export type Getter = (flag: string) => string | undefined;

export function readers(get: Getter) {
  return {
    int: (flag: string, fallback: number, min: number, max: number): number => {
      const text = get(flag);
      return text === undefined ? fallback : integer(flag, text, min, max);
    },
    num: (flag: string, fallback: number, min: number, max: number): number => {
      const text = get(flag);
      return text === undefined ? fallback : decimal(flag, text, min, max);
    },
  };
}

export function parseCommon(
  get: Getter,
  allowRemote: boolean,
  clients: number,
  d: { gateways: number; graceS: number; partitions: number; payloadBytes: number },
): FanoutCommon {
  const { int, num } = readers(get);
  const brokers =
    get("brokers") === undefined ? [...ROOM_DEFAULTS.brokers] : brokerList(get("brokers")!, allowRemote);
  const partitions = int("partitions", d.partitions, 1, 1024);
  const gateways = int("gateways", d.gateways, 1, 16);
  if (gateways > partitions) {
    fail(
      "gateways",
      `${gateways} gateways for ${partitions} partitions: some would own nothing; raise --partitions`,
    );
  }
  const generators = int(
    "generators",
    Math.max(1, Math.ceil(clients / CLIENTS_PER_GENERATOR_DEFAULT)),
    1,
    32,
  );
  if (generators > clients) fail("generators", `${generators} generators for ${clients} clients`);
  return {
    brokers,
    gateways,
    generators,
    connectRatePerS: num("connect-rate", ROOM_DEFAULTS.connectRatePerS, 1, 100_000),
    partitions,
    payloadBytes: int("payload-bytes", d.payloadBytes, 0, 60_000),
    localAddresses: int("local-addresses", ROOM_DEFAULTS.localAddresses, 1, 254),
    graceS: num("grace", d.graceS, 0, 600),
    kafkaPid:
      get("kafka-pid") === undefined ? undefined : integer("kafka-pid", get("kafka-pid")!, 1, 2 ** 22),
    out: get("out"),
    allowRemote,
  };
}

export function parseRoom(rest: readonly string[]): RoomOptions {
  const { values, booleans } = splitFlags(rest, ROOM_FLAGS, BOOLEAN_FLAGS, "room");
  const get: Getter = (flag) => values.get(flag as (typeof ROOM_FLAGS)[number]);
  const { int, num } = readers(get);
  const d = ROOM_DEFAULTS;
  const members = int("members", d.members, 1, 1_000_000);
  const rooms = int("rooms", d.rooms, 1, 10_000);
  if (rooms > members) fail("rooms", `${rooms} rooms for ${members} members: every room needs one`);
  const common = parseCommon(get, booleans.has("allow-remote"), members, d);
  const ratePerS = num("rate", d.ratePerS, 0.001, 1_000_000);
  const viaText = get("via") ?? d.via;
  if (!(ROOM_VIA as readonly string[]).includes(viaText)) {
    fail("via", `${JSON.stringify(viaText)} is not one of ${ROOM_VIA.join(", ")}`);
  }
  const via = viaText as RoomVia;
  // The gateways allow at most 100000 sends/s per connection (RT_SENDS_PER_S); the run sets
  // twice the per-room rate, so one room's sender may be given half of that.
  if (via === "member" && ratePerS / rooms > 50_000) {
    fail("rate", `${ratePerS / rooms} msgs/s per room is over 50000 for one sender: add --rooms`);
  }
  const warmupS = num("warmup", d.warmupS, 0, 600);
  const durationS = num("duration", d.durationS, 1, 3600);
  const roomPartitions = int("room-partitions", d.roomPartitions, 1, 1024);
  const messages = Math.ceil(ratePerS * (warmupS + durationS));
  if (messages > MAX_MESSAGES_PER_RUN) {
    fail(
      "duration",
      `--rate x (--warmup + --duration) is ${messages} messages; a run sends at most ${MAX_MESSAGES_PER_RUN}`,
    );
  }
  const deliveries = expectedRoomDeliveries(members, rooms, messages);
  if (deliveries > MAX_DELIVERIES_PER_RUN) {
    fail(
      "rate",
      `${messages} messages to ${members} members in ${rooms} rooms is about ${deliveries} deliveries; ` +
        `a run expects at most ${MAX_DELIVERIES_PER_RUN} (lower --rate or --duration)`,
    );
  }
  return {
    scenario: "room",
    ...common,
    members,
    rooms,
    ratePerS,
    via,
    warmupS,
    durationS,
    roomPartitions,
  };
}

/** Deliveries a room run expects: every member gets every message of its room. */
export function expectedRoomDeliveries(members: number, rooms: number, messages: number): number {
  // Rooms get floor or ceil of messages / rooms each, members floor or ceil of members / rooms.
  return Math.ceil(messages / rooms) * members;
}

export function parseBroadcast(rest: readonly string[]): BroadcastOptions {
  const { values, booleans } = splitFlags(rest, BROADCAST_FLAGS, BOOLEAN_FLAGS, "broadcast");
  const get: Getter = (flag) => values.get(flag as (typeof BROADCAST_FLAGS)[number]);
  const { int, num } = readers(get);
  const d = BROADCAST_DEFAULTS;
  const clients = int("clients", d.clients, 1, 1_000_000);
  const common = parseCommon(get, booleans.has("allow-remote"), clients, d);
  const broadcasts = int("broadcasts", d.broadcasts, 1, MAX_BROADCASTS);
  const intervalS = num("interval", d.intervalS, 0.1, 600);
  if (clients * broadcasts > MAX_DELIVERIES_PER_RUN) {
    fail("broadcasts", `${clients} clients x ${broadcasts} broadcasts is over ${MAX_DELIVERIES_PER_RUN}`);
  }
  return { scenario: "broadcast", ...common, clients, broadcasts, intervalS };
}
