/**
 * `npm start` (scripts/start.ts) and `rt topics ensure` as real child processes: the
 * backbone comes up with its topics, Ctrl-C leaves nothing running, bad input gives one
 * clear line and a non-zero exit with nothing left behind.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKafka } from "../../common/kafka/kafkajs.ts";
import { freePort } from "../../infra/kafka/local-kafka.ts";
import { topicNames } from "../../schemas/topics.ts";
import { testKafka, testLogger, type TestKafka } from "../helpers/kafka.ts";
import { runTs, runToEnd } from "../helpers/proc.ts";

let t: TestKafka;
const dirs: string[] = [];
before(async () => {
  t = await testKafka();
});
after(async () => {
  await t.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "rt-start-test-"));
  dirs.push(d);
  return d;
}

function processesMentioning(text: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.includes(text) && !l.includes("ps -eo"));
}

test("npm start brings up a local Kafka with the topics, and SIGINT stops everything", async () => {
  const dataDir = tempDir();
  const port = await freePort();
  const env = {
    RT_KAFKA_BROKERS: undefined,
    RT_KAFKA_PORT: String(port),
    RT_KAFKA_CONTROLLER_PORT: String(await freePort()),
    RT_KAFKA_DATA_DIR: dataDir,
    RT_TOPIC_PREFIX: "start.",
    RT_ROUTER_PORT: String(await freePort()),
    RT_GATEWAY_PORT: String(await freePort()),
    RT_DEV_CONTROL_PORT: "0",
    RT_DEMO_BUILD_DIR: tempDir(),
    RT_LOG_LEVEL: "warn",
  };
  const p = runTs("scripts/start.ts", [], env);
  try {
    await p.waitFor(/The backbone is up/, 120_000);
    // The router is the entry point; two gateways, on RT_GATEWAY_PORT and the next port.
    assert.match(
      p.output(),
      new RegExp(`router: +http://127\\.0\\.0\\.1:${env.RT_ROUTER_PORT} +\\(entry point`),
    );
    assert.equal((await fetch(`http://127.0.0.1:${env.RT_ROUTER_PORT}/healthz`)).status, 200);
    for (const i of [0, 1]) {
      const gwPort = Number(env.RT_GATEWAY_PORT) + i;
      assert.match(p.output(), new RegExp(`gateway-${i + 1}: +ws://127\\.0\\.0\\.1:${gwPort}/v1/ws`));
      assert.equal((await fetch(`http://127.0.0.1:${gwPort}/healthz`)).status, 200);
    }
    assert.match(p.output(), new RegExp(`Kafka: +127\\.0\\.0\\.1:${port} \\(local`));
    assert.ok(processesMentioning(dataDir).length > 0, "the Kafka JVM runs with the data dir");
    const admin = await createKafka({
      brokers: [`127.0.0.1:${port}`],
      clientId: "t",
      logger: testLogger(),
    }).admin();
    try {
      const names = topicNames("start.");
      const topics = await admin.listTopics();
      for (const name of Object.values(names)) assert.ok(topics.includes(name), `${name} exists`);
      assert.equal(await admin.partitionCount(names.deliveries), 12);
    } finally {
      await admin.close();
    }
  } finally {
    const code = await p.stop("SIGINT", 60_000);
    assert.equal(code, 0, p.output());
  }
  assert.match(p.output(), /stopped/);
  assert.deepEqual(processesMentioning(dataDir), [], "no process of this backbone is left");
});

test("a bad variable stops npm start with one line naming it, before anything starts", async () => {
  const dataDir = tempDir();
  const r = await runToEnd("scripts/start.ts", [], {
    RT_KAFKA_BROKERS: undefined,
    RT_KAFKA_DATA_DIR: dataDir,
    RT_DELIVERIES_PARTITIONS: "twelve",
  });
  assert.equal(r.code, 1);
  assert.match(r.output, /RT_DELIVERIES_PARTITIONS="twelve" is invalid: expected an integer/);
  assert.deepEqual(processesMentioning(dataDir), []);
});

test("a busy Kafka port is reported with the variable to change, and nothing is left running", async () => {
  const dataDir = tempDir();
  const srv = createServer();
  await new Promise<void>((done) => srv.listen(0, "127.0.0.1", done));
  const port = (srv.address() as { port: number }).port;
  try {
    const r = await runToEnd("scripts/start.ts", [], {
      RT_KAFKA_BROKERS: undefined,
      RT_KAFKA_PORT: String(port),
      RT_KAFKA_CONTROLLER_PORT: String(await freePort()),
      RT_KAFKA_DATA_DIR: dataDir,
    });
    assert.equal(r.code, 1);
    assert.match(r.output, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use.*RT_KAFKA_PORT`));
    assert.deepEqual(processesMentioning(dataDir), []);
  } finally {
    srv.close();
  }
});

test("an unreachable RT_KAFKA_BROKERS is one clear error", async () => {
  const port = await freePort();
  const r = await runToEnd("scripts/start.ts", [], { RT_KAFKA_BROKERS: `127.0.0.1:${port}` });
  assert.equal(r.code, 1);
  assert.match(r.output, new RegExp(`RT_KAFKA_BROKERS=127\\.0\\.0\\.1:${port}: no broker answered`));
});

test("rt topics ensure is idempotent and refuses a partition mismatch", async () => {
  const prefix = t.uniq("cli") + ".";
  const env = {
    RT_KAFKA_BROKERS: t.brokers.join(","),
    RT_TOPIC_PREFIX: prefix,
    RT_DELIVERIES_PARTITIONS: "4",
  };
  const first = await runToEnd("cli/rt.ts", ["topics", "ensure"], env);
  assert.equal(first.code, 0, first.output);
  assert.match(
    first.output,
    new RegExp(`created +${prefix.replace(/\./g, "\\.")}rt\\.deliveries \\(4 partitions\\)`),
  );
  const second = await runToEnd("cli/rt.ts", ["topics", "ensure"], env);
  assert.equal(second.code, 0, second.output);
  assert.equal(second.output.match(/^exists /gm)?.length, 4);
  const mismatch = await runToEnd("cli/rt.ts", ["topics", "ensure"], {
    ...env,
    RT_DELIVERIES_PARTITIONS: "5",
  });
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.output, /rt\.deliveries has 4 partitions, the configuration says 5/);
  const list = await runToEnd("cli/rt.ts", ["topics", "list"], env);
  assert.match(list.output, /rt\.deliveries {2}partitions=4/);
});

test("rt rejects unknown commands and bad variables by name", async () => {
  const unknown = await runToEnd("cli/rt.ts", ["topics", "make"], {});
  assert.equal(unknown.code, 2);
  assert.match(unknown.output, /unknown command "topics make"/);
  const bad = await runToEnd("cli/rt.ts", ["topics", "ensure"], { RT_KAFKA_BROKERS: "not a host" });
  assert.equal(bad.code, 1);
  assert.match(
    bad.output,
    /RT_KAFKA_BROKERS="not a host" is invalid: expected a comma-separated list of host:port/,
  );
});
