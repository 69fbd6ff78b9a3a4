/**
 * Fetches the pinned Apache Kafka jars (infra/kafka/pom.xml) from Maven Central into a cache
 * folder, once. Needs Java 17+ (to run the broker) and Maven (to resolve the jars).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const KAFKA_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(KAFKA_DIR, "..", "..");
const POM = join(KAFKA_DIR, "pom.xml");

export class LocalKafkaError extends Error {
  constructor(
    readonly code:
      | "no_java"
      | "old_java"
      | "no_maven"
      | "fetch_failed"
      | "port_busy"
      | "start_failed"
      | "not_ready",
    message: string,
  ) {
    super(message);
    this.name = "LocalKafkaError";
  }
}

export function kafkaVersion(): string {
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(POM, "utf8"));
  if (m === null || m[1] === undefined) throw new Error(`${POM} has no <kafka.version>`);
  return m[1];
}

export function defaultCacheDir(): string {
  return join(REPO_ROOT, ".cache", `kafka-${kafkaVersion()}`);
}

/** The jar folder of a complete fetch, or null. */
export function cachedLibs(cacheDir: string): string | null {
  const libs = join(cacheDir, "libs");
  return existsSync(join(cacheDir, ".complete")) && existsSync(libs) ? libs : null;
}

export function checkJava(): number {
  const r = spawnSync("java", ["-version"], { encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0) {
    throw new LocalKafkaError(
      "no_java",
      "Java was not found on PATH: install Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless), " +
        "or set RT_KAFKA_BROKERS to an existing Kafka cluster",
    );
  }
  const m = /version "(\d+)(?:\.(\d+))?/.exec(r.stderr + r.stdout);
  const major = m === null ? 0 : Number(m[1] === "1" ? m[2] : m[1]);
  if (major < 17) {
    throw new LocalKafkaError("old_java", `Java ${major} found, Kafka needs Java 17 or newer: upgrade Java`);
  }
  return major;
}

function checkMaven(): void {
  const r = spawnSync("mvn", ["-v"], { encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0) {
    throw new LocalKafkaError(
      "no_maven",
      "Maven (mvn) was not found on PATH: it fetches the Kafka jars once; install it (e.g. apt-get install maven), " +
        "or set RT_KAFKA_BROKERS to an existing Kafka cluster",
    );
  }
}

/**
 * Returns the jar folder, fetching it first when the cache lacks it. Progress goes to
 * `progress` as one line rewritten in place (a TTY) or a few lines (a log).
 */
export async function ensureKafkaJars(
  opts: { cacheDir?: string; progress?: NodeJS.WritableStream } = {},
): Promise<string> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  checkJava();
  const cached = cachedLibs(cacheDir);
  if (cached !== null) return cached;
  checkMaven();
  const out = opts.progress ?? process.stderr;
  const tty = (out as { isTTY?: boolean }).isTTY === true;
  const tmp = join(cacheDir, "libs.partial");
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  out.write(`fetching Apache Kafka ${kafkaVersion()} from Maven Central into ${cacheDir} (once)\n`);
  let downloaded = 0;
  let lastLine = 0;
  const tail: string[] = [];
  const code = await new Promise<number>((done, fail) => {
    const mvn = spawn(
      "mvn",
      ["-B", "-f", POM, "dependency:copy-dependencies", `-DoutputDirectory=${tmp}`, "-DincludeScope=runtime"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() === "") continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        if (/Downloaded from/.test(line)) downloaded += 1;
      }
      const now = Date.now();
      if (tty) out.write(`\r  ${downloaded} files downloaded`);
      else if (now - lastLine > 5_000) {
        lastLine = now;
        out.write(`  ${downloaded} files downloaded\n`);
      }
    };
    mvn.stdout.on("data", onData);
    mvn.stderr.on("data", onData);
    mvn.on("error", fail);
    mvn.on("close", (c) => done(c ?? 1));
  });
  if (tty) out.write("\n");
  if (code !== 0) {
    throw new LocalKafkaError(
      "fetch_failed",
      `fetching Kafka with Maven failed (exit ${code}); last output:\n${tail.join("\n")}`,
    );
  }
  const libs = join(cacheDir, "libs");
  rmSync(libs, { recursive: true, force: true });
  renameSync(tmp, libs);
  writeFileSync(join(cacheDir, ".complete"), `${kafkaVersion()}\n`);
  out.write(`Kafka ${kafkaVersion()} ready: ${readdirSync(libs).length} jars\n`);
  return libs;
}
