/**
 * `npm test [-- files or folders...]`: unit and integration tests with node's test runner.
 * Starts a local Kafka for the run unless RT_KAFKA_BROKERS is set, and stops it afterwards,
 * also when tests fail or the run is interrupted.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ConfigError } from "../common/env.ts";
import { createLogger } from "../common/log.ts";
import { LocalKafkaError, REPO_ROOT } from "../infra/kafka/fetch.ts";
import { kafkaForRun, type RunKafka } from "./kafka-for-run.ts";

function testFiles(path: string): string[] {
  const st = statSync(path);
  if (st.isFile()) return path.endsWith(".test.ts") ? [path] : [];
  return readdirSync(path)
    .sort()
    .flatMap((name) => testFiles(join(path, name)));
}

async function main(args: string[]): Promise<number> {
  const roots =
    args.length > 0 ? args : [join(REPO_ROOT, "test", "unit"), join(REPO_ROOT, "test", "integration")];
  const files = roots.flatMap((r) => testFiles(r)).map((f) => relative(REPO_ROOT, f));
  if (files.length === 0) {
    console.error(`no test files (*.test.ts) under ${roots.join(", ")}`);
    return 2;
  }
  const needsKafka = files.some((f) => f.includes("integration"));
  const logger = createLogger({ service: "test-runner", level: "warn" });
  let kafka: RunKafka | null = null;
  let dataDir: string | null = null;
  const cleanup = async () => {
    await kafka?.stop();
    if (dataDir !== null) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    if (needsKafka) {
      dataDir = mkdtempSync(join(tmpdir(), "rt-test-kafka-"));
      kafka = await kafkaForRun(process.env, logger, { port: 0, controllerPort: 0, dataDir, nodes: 1 });
      console.log(
        `# kafka: ${kafka.brokers.join(",")}${kafka.local ? " (local, started for this run)" : ""}`,
      );
    }
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--test", "--test-concurrency=1", "--test-timeout=300000", ...files],
      {
        cwd: REPO_ROOT,
        stdio: "inherit",
        env: { ...process.env, ...(kafka === null ? {} : { RT_KAFKA_BROKERS: kafka.brokers.join(",") }) },
      },
    );
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    const code = await new Promise<number>((done) =>
      child.on("close", (c, s) => done(c ?? (s === null ? 1 : 130))),
    );
    return code;
  } finally {
    await cleanup();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof LocalKafkaError || e instanceof ConfigError) console.error(`error: ${e.message}`);
    else console.error(e);
    process.exit(1);
  },
);
