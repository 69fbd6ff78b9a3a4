/**
 * `npm run kafka -- start [--brokers 1|3]` (infra/kafka/cli-args.ts): the flag wins over
 * RT_KAFKA_NODES, both accept only 1 or 3, and a bad value names the flag or the variable.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../common/env.ts";
import { readNodeCount } from "../../infra/kafka/cli-args.ts";

test("node count from --brokers, else RT_KAFKA_NODES, else 1", () => {
  const cases: [string[], Record<string, string>, 1 | 3][] = [
    [[], {}, 1],
    [[], { RT_KAFKA_NODES: "3" }, 3],
    [[], { RT_KAFKA_NODES: " 1 " }, 1],
    [["--brokers", "3"], {}, 3],
    [["--brokers=3"], {}, 3],
    [["--brokers", "1"], { RT_KAFKA_NODES: "3" }, 1],
    [["--brokers", "3"], { RT_KAFKA_NODES: "1" }, 3],
  ];
  for (const [args, env, want] of cases)
    assert.equal(readNodeCount(args, env), want, JSON.stringify([args, env]));
});

test("bad counts and options are refused, naming what to fix", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--brokers", "2"], {}, /^--brokers="2" is invalid: expected 1 or 3$/],
    [["--brokers=5"], {}, /^--brokers="5" is invalid: expected 1 or 3$/],
    [["--brokers"], {}, /^--brokers is required: expected 1 or 3$/],
    [["--brokers", "--x"], {}, /^--brokers is required/],
    [["--nodes", "3"], {}, /^--nodes="--nodes" is invalid: expected no option other than --brokers 1\|3$/],
    [[], { RT_KAFKA_NODES: "2" }, /^RT_KAFKA_NODES="2" is invalid: expected 1 or 3$/],
    [[], { RT_KAFKA_NODES: "4" }, /^RT_KAFKA_NODES="4" is invalid/],
  ];
  for (const [args, env, message] of cases) {
    assert.throws(
      () => readNodeCount(args, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify([args, env]),
    );
  }
});
