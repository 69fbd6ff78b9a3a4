import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigError,
  readBool,
  readEnum,
  readHostPorts,
  readInt,
  readTopicPrefix,
  readUrl,
} from "../../common/env.ts";
import { readKafkaConfig } from "../../common/kafka-config.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a ConfigError");
}

test("readInt: defaults, bounds and garbage", () => {
  const b = { min: 1, max: 10 };
  assert.equal(readInt({}, "X", 5, b), 5);
  assert.equal(readInt({ X: "  " }, "X", 5, b), 5);
  assert.equal(readInt({ X: "7" }, "X", 5, b), 7);
  for (const bad of ["0", "11", "1.5", "7a", "0x7", "1e3", "-"]) {
    const e = configError(() => readInt({ X: bad }, "X", 5, b));
    assert.equal(e.variable, "X");
    assert.match(e.message, /^X=".*" is invalid: expected an integer from 1 to 10$/);
  }
});

test("readBool, readEnum, readUrl, readTopicPrefix", () => {
  assert.equal(readBool({ B: "yes" }, "B", false), true);
  assert.equal(readBool({ B: "0" }, "B", true), false);
  configError(() => readBool({ B: "maybe" }, "B", true));
  assert.equal(readEnum({ L: "debug" }, "L", ["info", "debug"], "info"), "debug");
  assert.match(
    configError(() => readEnum({ L: "loud" }, "L", ["info", "debug"], "info")).message,
    /one of info, debug/,
  );
  assert.equal(readUrl({ U: "https://x.test/jwks" }, "U", ["https:", "http:"]), "https://x.test/jwks");
  configError(() => readUrl({ U: "ftp://x" }, "U", ["https:"]));
  configError(() => readUrl({ U: "not a url" }, "U", ["https:"]));
  assert.equal(readTopicPrefix({ P: "dev-1." }, "P", ""), "dev-1.");
  configError(() => readTopicPrefix({ P: "bad/prefix" }, "P", ""));
});

test("readHostPorts accepts host:port lists and names the variable otherwise", () => {
  assert.deepEqual(readHostPorts({ K: "127.0.0.1:9092, kafka-1.internal:9093" }, "K"), [
    "127.0.0.1:9092",
    "kafka-1.internal:9093",
  ]);
  assert.equal(readHostPorts({}, "K"), undefined);
  for (const bad of ["127.0.0.1", "host:0", "host:70000", "a b:1", "http://h:1"]) {
    assert.equal(configError(() => readHostPorts({ K: bad }, "K")).variable, "K");
  }
});

test("kafka config: unset brokers mean the local Kafka on RT_KAFKA_PORT", () => {
  assert.deepEqual(readKafkaConfig({}, "svc").brokers, ["127.0.0.1:9092"]);
  assert.equal(readKafkaConfig({}, "svc").local, true);
  assert.deepEqual(readKafkaConfig({ RT_KAFKA_PORT: "19092" }, "svc").brokers, ["127.0.0.1:19092"]);
  const remote = readKafkaConfig({ RT_KAFKA_BROKERS: "k1:9092,k2:9092" }, "svc");
  assert.deepEqual(remote.brokers, ["k1:9092", "k2:9092"]);
  assert.equal(remote.local, false);
});

test("topic specs follow the design: prefix, partition counts, policies", () => {
  const c = readTopicsConfig({
    RT_TOPIC_PREFIX: "x.",
    RT_DELIVERIES_PARTITIONS: "64",
    RT_ROOM_PARTITIONS: "8",
  });
  const specs = topicSpecs(c);
  assert.deepEqual(
    specs.map((s) => [s.name, s.partitions, s.config["cleanup.policy"]]),
    [
      ["x.rt.deliveries", 64, "delete"],
      ["x.rt.room-events", 8, "delete"],
      ["x.rt.room-members", 8, "compact"],
      ["x.rt.channels", 3, "delete"],
    ],
  );
  assert.equal(specs[0]?.config["retention.ms"], String(7 * 24 * 3600 * 1000));
  assert.ok(Object.isFrozen(c));
  configError(() => readTopicsConfig({ RT_DELIVERIES_PARTITIONS: "0" }));
});
