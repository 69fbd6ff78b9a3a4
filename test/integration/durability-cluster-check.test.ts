/**
 * A misconfigured cluster is caught when a real gateway process starts, on the run's real
 * Kafka (one broker): wrong topic settings stop it with one message naming every problem and
 * its fix; a replication factor the cluster cannot hold stops it naming the broker count; more
 * gateways than partitions only warns (the extra gateway starts idle and not ready).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { topicSpecs, readTopicsConfig } from "../../schemas/topics.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { runToEnd } from "../helpers/proc.ts";

let t: TestKafka;
const gateways: GatewayProc[] = [];

before(async () => {
  t = await testKafka();
});

after(async () => {
  await Promise.all(gateways.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

test("wrong topic settings: the gateway refuses to start, naming each problem and its fix", async () => {
  const prefix = t.uniq("bad") + ".";
  const specs = topicSpecs(readTopicsConfig({ RT_TOPIC_PREFIX: prefix, RT_DELIVERIES_PARTITIONS: "4" }));
  const broken = specs.map((s) => {
    if (s.name.endsWith("rt.deliveries"))
      return { ...s, config: { ...s.config, "cleanup.policy": "compact" } };
    if (s.name.endsWith("rt.room-members")) return { ...s, config: { "cleanup.policy": "delete" } };
    if (s.name.endsWith("rt.channels")) return { ...s, config: { ...s.config, "min.insync.replicas": "2" } };
    return s;
  });
  await t.admin.ensureTopics(broken);
  const { code, output } = await runToEnd("gateway/main.ts", [], gatewayEnv(t.brokers, prefix));
  assert.equal(code, 1, output);
  const line = output.split("\n").find((l) => l.startsWith("error: "));
  assert.ok(line !== undefined, output);
  assert.match(line, /^error: the Kafka cluster does not fit the backbone's guarantees: \(1\) /);
  assert.ok(line.includes(`(1) ${prefix}rt.deliveries has cleanup.policy=compact, it must be delete`), line);
  assert.ok(line.includes(`--entity-name ${prefix}rt.deliveries --add-config cleanup.policy=delete`), line);
  assert.ok(line.includes(`${prefix}rt.room-members has cleanup.policy=delete, it must be compact`), line);
  assert.ok(
    line.includes(`${prefix}rt.channels has 1 replica(s) per partition but min.insync.replicas=2`),
    line,
  );
  assert.match(line, /\(see docs\/OPERATIONS\.md#start-up-cluster-check\)$/);
  assert.doesNotMatch(output, /gateway_ready/);
});

test("a replication factor above the broker count stops the gateway, naming both", async () => {
  const prefix = t.uniq("rf") + ".";
  const { code, output } = await runToEnd(
    "gateway/main.ts",
    [],
    gatewayEnv(t.brokers, prefix, { RT_TOPIC_REPLICATION_FACTOR: "3" }),
  );
  assert.equal(code, 1, output);
  const line = output.split("\n").find((l) => l.startsWith("error: ")) ?? "";
  assert.match(
    line,
    /^error: cannot create \S+rt\.deliveries, .*: RT_TOPIC_REPLICATION_FACTOR=3 needs at least that many brokers, the cluster has 1\. /,
    output,
  );
  assert.doesNotMatch(output, /gateway_ready/);
});

test("more gateways than partitions: a clear warning, and the extra gateway starts idle", async () => {
  const prefix = t.uniq("few") + ".";
  const env = gatewayEnv(t.brokers, prefix, { RT_DELIVERIES_PARTITIONS: "1", RT_LOG_LEVEL: "warn" });
  gateways.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "few-a" }));
  await waitAllReady(gateways);
  const extra = await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "few-b" });
  gateways.push(extra);
  const warning = extra.proc
    .output()
    .split("\n")
    .find((l) => l.includes('"check":"partitions_fewer_than_gateways"'));
  assert.ok(warning !== undefined, extra.proc.output());
  const w = JSON.parse(warning) as { level: string; msg: string };
  assert.equal(w.level, "warn");
  assert.match(
    w.msg,
    new RegExp(`^2 gateways for 1 partitions of ${prefix.replace(/\./g, "\\.")}rt\\.deliveries`),
  );
  assert.match(w.msg, /1 gateway\(s\) stay idle \(not ready\)/);
  const ready = await fetch(`${extra.http}/readyz`);
  assert.equal(ready.status, 503);
  assert.match(await ready.text(), /owns no partitions/);
  assert.doesNotMatch(gateways[0]!.proc.output(), /partitions_fewer_than_gateways/);
});
