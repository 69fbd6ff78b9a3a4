import { test } from "node:test";
import assert from "node:assert/strict";
import { parseArgs } from "../../loadtest/args.ts";
import { CHURN_DEFAULTS, type ChurnOptions } from "../../loadtest/churn-args.ts";

function options(argv: string[]): ChurnOptions {
  const r = parseArgs(argv);
  assert.equal(r.kind, "run", JSON.stringify(r));
  const o = (r as { options: ChurnOptions }).options;
  assert.equal(o.scenario, "churn");
  return o;
}

function error(argv: string[]): string {
  const r = parseArgs(argv);
  assert.equal(r.kind, "error", `expected an error for ${JSON.stringify(argv)}, got ${JSON.stringify(r)}`);
  return (r as { message: string }).message;
}

test("churn: defaults", () => {
  const d = CHURN_DEFAULTS;
  assert.deepEqual(options(["churn"]), {
    scenario: "churn",
    brokers: ["127.0.0.1:9092"],
    gateways: d.gateways,
    clients: 10_000,
    connectRatePerS: 1000,
    ratePerS: 1000,
    peers: d.peers,
    warmupS: d.warmupS,
    durationS: 45,
    killAfterS: 15,
    action: "kill",
    restart: false,
    restartAfterS: d.restartAfterS,
    graceS: 30,
    sessionTimeoutMs: 6000,
    partitions: 12,
    payloadBytes: d.payloadBytes,
    localAddresses: d.localAddresses,
    backoffBaseMs: 500,
    backoffCapMs: 30_000,
    kafkaPid: undefined,
    seed: undefined,
    out: undefined,
    allowRemote: false,
  });
});

test("churn: every flag, in both --flag value and --flag=value form", () => {
  const argv = [
    "churn",
    "--brokers",
    "127.0.0.1:29092,localhost:29094",
    "--gateways=4",
    "--clients",
    "5000",
    "--connect-rate=250.5",
    "--rate",
    "800",
    "--peers",
    "3",
    "--warmup=2",
    "--duration",
    "60",
    "--kill-after",
    "20",
    "--action=sigterm",
    "--restart",
    "--restart-after",
    "7.5",
    "--grace",
    "12",
    "--session-timeout-ms",
    "3000",
    "--partitions=24",
    "--payload-bytes",
    "0",
    "--local-addresses",
    "0",
    "--backoff-base-ms",
    "200",
    "--backoff-cap-ms=2000",
    "--kafka-pid",
    "4242",
    "--seed",
    "17",
    "--out",
    "/tmp/churn.json",
  ];
  assert.deepEqual(options(argv), {
    scenario: "churn",
    brokers: ["127.0.0.1:29092", "localhost:29094"],
    gateways: 4,
    clients: 5000,
    connectRatePerS: 250.5,
    ratePerS: 800,
    peers: 3,
    warmupS: 2,
    durationS: 60,
    killAfterS: 20,
    action: "sigterm",
    restart: true,
    restartAfterS: 7.5,
    graceS: 12,
    sessionTimeoutMs: 3000,
    partitions: 24,
    payloadBytes: 0,
    localAddresses: 0,
    backoffBaseMs: 200,
    backoffCapMs: 2000,
    kafkaPid: 4242,
    seed: 17,
    out: "/tmp/churn.json",
    allowRemote: false,
  });
});

test("churn: brokers are loopback unless --allow-remote; a large backoff base lifts the default cap", () => {
  assert.deepEqual(options(["churn", "--brokers", "[::1]:9092"]).brokers, ["[::1]:9092"]);
  const remote = options(["churn", "--allow-remote", "--brokers", "kafka-1.example.com:9092,10.0.0.5:9092"]);
  assert.deepEqual(remote.brokers, ["kafka-1.example.com:9092", "10.0.0.5:9092"]);
  assert.equal(remote.allowRemote, true);
  const slow = options(["churn", "--backoff-base-ms", "60000"]);
  assert.equal(slow.backoffCapMs, 60_000);
  // With --restart the default restart-after applies.
  assert.equal(options(["churn", "--restart"]).restartAfterS, CHURN_DEFAULTS.restartAfterS);
});

test("churn: the scenario is named in errors about scenarios and unknown flags", () => {
  assert.match(
    error(["rooms"]),
    /unknown scenario "rooms": expected `direct`, `churn`, `room`, `broadcast`, `connect` or `storm`/,
  );
  assert.match(
    error([]),
    /missing scenario: expected `direct`, `churn`, `room`, `broadcast`, `connect` or `storm`/,
  );
  assert.match(error(["churn", "--pairs", "10"]), /unknown flag --pairs for churn/);
  assert.match(error(["direct", "--clients", "10"]), /unknown flag --clients for direct/);
});

test("churn: every bad flag is a one-line error naming the flag", () => {
  const cases: readonly [argv: string[], flag: string, mentions: RegExp][] = [
    [["churn", "--clients"], "--clients", /needs a value/],
    [["churn", "--clients=", "5"], "--clients", /non-empty/],
    [["churn", "--clients", "5", "--clients", "6"], "--clients", /given twice/],
    [["churn", "--restart=yes"], "--restart", /takes no value/],
    [["churn", "--restart", "--restart"], "--restart", /given twice/],
    // --brokers
    [["churn", "--brokers", "127.0.0.1"], "--brokers", /not host:port/],
    [["churn", "--brokers", "127.0.0.1:0"], "--brokers", /out of range/],
    [["churn", "--brokers", "127.0.0.1:70000"], "--brokers", /out of range/],
    [["churn", "--brokers", "10.0.0.1:9092"], "--brokers", /not loopback.*--allow-remote/],
    [["churn", "--brokers", "127.0.0.1:9092,127.0.0.1:9092"], "--brokers", /given twice/],
    [["churn", "--brokers", "127.0.0.1:9092,"], "--brokers", /not host:port/],
    // sizes
    [["churn", "--gateways", "1"], "--gateways", /out of range/],
    [["churn", "--gateways", "17"], "--gateways", /out of range/],
    [["churn", "--gateways", "5", "--partitions", "4"], "--gateways", /5 gateways for 4 partitions/],
    [["churn", "--partitions", "0"], "--partitions", /out of range/],
    [["churn", "--clients", "1"], "--clients", /out of range/],
    [["churn", "--clients", "200001"], "--clients", /out of range/],
    [["churn", "--clients", "1e4"], "--clients", /not a whole number/],
    [["churn", "--peers", "0"], "--peers", /out of range/],
    [["churn", "--clients", "3", "--peers", "3", "--rate", "1"], "--peers", /more than 3 clients/],
    // rates
    [["churn", "--connect-rate", "0"], "--connect-rate", /out of range/],
    [["churn", "--connect-rate", "fast"], "--connect-rate", /not a number/],
    [["churn", "--rate", "0"], "--rate", /out of range/],
    [["churn", "--clients", "10", "--rate", "500"], "--rate", /50 sends\/s per client.*--clients 13 or more/],
    // times
    [["churn", "--duration", "0"], "--duration", /out of range/],
    [["churn", "--warmup", "45"], "--warmup", /nothing of --duration 45/],
    [["churn", "--kill-after", "45"], "--kill-after", /not inside the traffic/],
    [["churn", "--kill-after", "-1"], "--kill-after", /needs a value|not a number/],
    [["churn", "--restart-after", "5"], "--restart-after", /only makes sense with --restart/],
    [
      ["churn", "--restart", "--kill-after", "30", "--restart-after", "15"],
      "--restart-after",
      /after the traffic ends/,
    ],
    [["churn", "--grace", "601"], "--grace", /out of range/],
    [["churn", "--duration", "3600", "--rate", "5000", "--clients", "200"], "--duration", /at most \d+/],
    // the rest
    [["churn", "--action", "pause"], "--action", /"pause" is not one of kill, sigterm/],
    [["churn", "--session-timeout-ms", "999"], "--session-timeout-ms", /out of range/],
    [["churn", "--payload-bytes", "60001"], "--payload-bytes", /out of range/],
    [["churn", "--local-addresses", "255"], "--local-addresses", /out of range/],
    [["churn", "--backoff-base-ms", "0"], "--backoff-base-ms", /out of range/],
    [
      ["churn", "--backoff-base-ms", "900", "--backoff-cap-ms", "800"],
      "--backoff-cap-ms",
      /below --backoff-base-ms/,
    ],
    [["churn", "--kafka-pid", "0"], "--kafka-pid", /out of range/],
    [["churn", "--kafka-pid", "java"], "--kafka-pid", /not a whole number/],
    [["churn", "--seed", "-5"], "--seed", /needs a value|not a whole number/],
    [["churn", "--seed", "1000000000"], "--seed", /not a whole number|out of range/],
    [["churn", "--out="], "--out", /non-empty/],
  ];
  for (const [argv, flag, mentions] of cases) {
    const message = error(argv);
    assert.ok(!message.includes("\n"), `one line: ${message}`);
    assert.ok(message.startsWith(flag), `${JSON.stringify(argv)}: ${message}`);
    assert.match(message, mentions, JSON.stringify(argv));
  }
});

test("churn: help is printed for --help after the scenario too", () => {
  assert.deepEqual(parseArgs(["churn", "--help"]), { kind: "help" });
});
