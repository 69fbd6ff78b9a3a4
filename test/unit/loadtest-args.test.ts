import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, parseArgs, redactArgv, type DirectOptions } from "../../loadtest/args.ts";

function options(argv: string[]): DirectOptions {
  const r = parseArgs(argv);
  assert.equal(r.kind, "run", JSON.stringify(r));
  return (r as { options: DirectOptions }).options;
}

function error(argv: string[]): string {
  const r = parseArgs(argv);
  assert.equal(r.kind, "error", `expected an error for ${JSON.stringify(argv)}, got ${JSON.stringify(r)}`);
  return (r as { message: string }).message;
}

test("defaults", () => {
  assert.deepEqual(options(["direct"]), {
    scenario: "direct",
    gateway: DEFAULTS.gateway,
    pairs: DEFAULTS.pairs,
    ratePerS: DEFAULTS.ratePerS,
    durationS: DEFAULTS.durationS,
    warmupS: DEFAULTS.warmupS,
    graceS: DEFAULTS.graceS,
    payloadBytes: DEFAULTS.payloadBytes,
    secret: undefined,
    out: undefined,
    pids: [],
    localAddresses: DEFAULTS.localAddresses,
    perConnectionMax: DEFAULTS.perConnectionMax,
    allowRemote: false,
  });
});

test("every flag, in both --flag value and --flag=value form", () => {
  const argv = [
    "direct",
    "--gateway",
    "ws://127.0.0.1:28081/v1/ws",
    "--pairs=20",
    "--rate",
    "500",
    "--duration=10",
    "--warmup",
    "2",
    "--grace",
    "0.5",
    "--payload-bytes",
    "0",
    "--secret=s3cret=with=equals",
    "--out",
    "/tmp/x.json",
    "--pids",
    "kafka=123,gw-1=456",
    "--local-addresses",
    "0",
    "--per-connection-max",
    "45",
  ];
  assert.deepEqual(options(argv), {
    scenario: "direct",
    gateway: "ws://127.0.0.1:28081/v1/ws",
    pairs: 20,
    ratePerS: 500,
    durationS: 10,
    warmupS: 2,
    graceS: 0.5,
    payloadBytes: 0,
    secret: "s3cret=with=equals",
    out: "/tmp/x.json",
    pids: [
      { name: "kafka", pid: 123 },
      { name: "gw-1", pid: 456 },
    ],
    localAddresses: 0,
    perConnectionMax: 45,
    allowRemote: false,
  });
});

test("loopback gateways are accepted; remote ones only with --allow-remote", () => {
  for (const url of [
    "ws://127.0.0.1:8081/v1/ws",
    "ws://127.8.9.10:1/v1/ws",
    "ws://localhost:8081/v1/ws",
    "ws://[::1]:8081/v1/ws",
    "wss://LOCALHOST/v1/ws",
  ]) {
    assert.equal(options(["direct", "--gateway", url]).allowRemote, false, url);
  }
  const remote = options(["direct", "--gateway", "wss://rt.example.com/v1/ws", "--allow-remote"]);
  assert.equal(remote.gateway, "wss://rt.example.com/v1/ws");
  assert.equal(remote.allowRemote, true);
  // --allow-remote may come before --gateway too.
  assert.equal(
    options(["direct", "--allow-remote", "--gateway", "ws://10.1.2.3:8081/v1/ws"]).allowRemote,
    true,
  );
});

test("help", () => {
  assert.deepEqual(parseArgs(["--help"]), { kind: "help" });
  assert.deepEqual(parseArgs(["direct", "-h"]), { kind: "help" });
});

test("every bad flag is a one-line error naming the flag", () => {
  const cases: readonly [argv: string[], flag: string, mentions: RegExp][] = [
    // scenario and shape
    [[], "scenario", /missing scenario/],
    [["rooms"], "scenario", /unknown scenario "rooms"/],
    [["direct", "extra"], "argument", /unexpected argument "extra"/],
    [["direct", "--nope", "1"], "unknown", /unknown flag --nope/],
    [["direct", "-p", "1"], "argument", /unexpected argument "-p"/],
    // value presence
    [["direct", "--pairs"], "--pairs", /needs a value/],
    [["direct", "--pairs", "--rate", "5"], "--pairs", /needs a value/],
    [["direct", "--pairs="], "--pairs", /non-empty/],
    [["direct", "--pairs", "10", "--pairs", "20"], "--pairs", /given twice/],
    // --gateway
    [["direct", "--gateway", "not a url"], "--gateway", /not a URL/],
    [["direct", "--gateway", "http://127.0.0.1:8081/v1/ws"], "--gateway", /ws:\/\/ or wss:\/\//],
    [["direct", "--gateway", "ws://10.0.0.1:8081/v1/ws"], "--gateway", /not loopback.*--allow-remote/],
    [["direct", "--gateway", "ws://example.com/v1/ws"], "--gateway", /not loopback/],
    [["direct", "--gateway", "ws://128.0.0.1/v1/ws"], "--gateway", /not loopback/],
    [["direct", "--gateway", "ws://[::2]/v1/ws"], "--gateway", /not loopback/],
    [["direct", "--gateway", "ws://0.0.0.0/v1/ws"], "--gateway", /not loopback/],
    [["direct", "--gateway"], "--gateway", /needs a value/],
    // --pairs
    [["direct", "--pairs", "0"], "--pairs", /out of range/],
    [["direct", "--pairs", "5001"], "--pairs", /out of range/],
    [["direct", "--pairs", "1.5"], "--pairs", /not a whole number/],
    [["direct", "--pairs", "-3"], "--pairs", /needs a value|not a whole number/],
    [["direct", "--pairs", "1e3"], "--pairs", /not a whole number/],
    // --rate
    [["direct", "--rate", "fast"], "--rate", /not a number/],
    [["direct", "--rate", "0"], "--rate", /out of range/],
    [["direct", "--rate", "2000000"], "--rate", /out of range/],
    [["direct", "--pairs", "50", "--rate", "5000"], "--rate", /100 sends\/s per connection.*--pairs 125/],
    [["direct", "--pairs", "1", "--rate", "41"], "--rate", /--pairs 2 or more/],
    // --duration, --warmup, --grace
    [["direct", "--duration", "0"], "--duration", /out of range/],
    [["direct", "--duration", "3601"], "--duration", /out of range/],
    [["direct", "--duration", "ten"], "--duration", /not a number/],
    [["direct", "--pairs", "5000", "--rate", "200000", "--duration", "3600"], "--duration", /at most \d+/],
    [["direct", "--warmup", "601"], "--warmup", /out of range/],
    [["direct", "--warmup", "-1"], "--warmup", /needs a value|not a number/],
    [["direct", "--grace", "301"], "--grace", /out of range/],
    [["direct", "--grace", "1,5"], "--grace", /not a number/],
    // --payload-bytes
    [["direct", "--payload-bytes", "60001"], "--payload-bytes", /out of range/],
    [["direct", "--payload-bytes", "1.5"], "--payload-bytes", /not a whole number/],
    // --secret, --out
    [["direct", "--secret="], "--secret", /non-empty/],
    [["direct", "--secret"], "--secret", /needs a value/],
    [["direct", "--out="], "--out", /non-empty/],
    // --pids
    [["direct", "--pids", "kafka"], "--pids", /not name=pid/],
    [["direct", "--pids", "kafka=0"], "--pids", />= 1/],
    [["direct", "--pids", "kafka=x"], "--pids", /not name=pid/],
    [["direct", "--pids", "a=1,a=2"], "--pids", /given twice/],
    [["direct", "--pids", "a b=1"], "--pids", /not name=pid/],
    [["direct", "--pids", "a=1,"], "--pids", /not name=pid/],
    [
      ["direct", "--pids", Array.from({ length: 33 }, (_, i) => `p${i}=${i + 1}`).join(",")],
      "--pids",
      /at most 32/,
    ],
    // --local-addresses, --per-connection-max, --allow-remote
    [["direct", "--local-addresses", "255"], "--local-addresses", /out of range/],
    [["direct", "--local-addresses", "many"], "--local-addresses", /not a whole number/],
    [["direct", "--per-connection-max", "0"], "--per-connection-max", /out of range/],
    [["direct", "--allow-remote=yes"], "--allow-remote", /takes no value/],
    [["direct", "--allow-remote", "--allow-remote"], "--allow-remote", /given twice/],
  ];
  for (const [argv, flag, mentions] of cases) {
    const message = error(argv);
    assert.ok(!message.includes("\n"), `one line: ${message}`);
    if (flag.startsWith("--")) assert.ok(message.startsWith(flag), `${JSON.stringify(argv)}: ${message}`);
    else assert.ok(message.includes(flag), `${JSON.stringify(argv)}: ${message}`);
    assert.match(message, mentions, JSON.stringify(argv));
  }
});

test("the recorded command line never holds the secret", () => {
  assert.deepEqual(redactArgv(["direct", "--secret", "hunter2", "--pairs", "2"]), [
    "direct",
    "--secret",
    "<redacted>",
    "--pairs",
    "2",
  ]);
  assert.deepEqual(redactArgv(["direct", "--secret=hunter2"]), ["direct", "--secret=<redacted>"]);
  assert.deepEqual(redactArgv(["direct", "--secret"]), ["direct", "--secret"]);
});
