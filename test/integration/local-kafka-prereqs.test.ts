/**
 * The local Kafka's prerequisites: without Java or without Maven, fetching says what is
 * missing and what to do, in one line, with a non-zero exit.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { runToEnd } from "../helpers/proc.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function binDirWith(...tools: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "rt-bin-"));
  dirs.push(dir);
  for (const tool of tools) {
    const real = execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim();
    symlinkSync(real, join(dir, tool));
  }
  return dir;
}

test("no Java on PATH: one line naming Java and the alternative", async () => {
  const r = await runToEnd("infra/kafka/cli.ts", ["fetch"], { PATH: binDirWith("mvn") });
  assert.equal(r.code, 1);
  assert.match(r.output, /^error: Java was not found on PATH: install Java 17 or newer.*RT_KAFKA_BROKERS/m);
});

test("no Maven on PATH with an empty cache: one line naming Maven", async () => {
  const cache = mkdtempSync(join(tmpdir(), "rt-cache-"));
  dirs.push(cache);
  // java is a launcher script on some systems: keep its own folder on PATH too.
  const javaDir = dirname(
    execFileSync("sh", ["-c", 'readlink -f "$(command -v java)"'], { encoding: "utf8" }).trim(),
  );
  const r = await runToEnd("infra/kafka/cli.ts", ["fetch"], {
    PATH: `${binDirWith("java")}:${javaDir}`,
    RT_KAFKA_CACHE_DIR: cache,
  });
  assert.equal(r.code, 1);
  assert.match(r.output, /^error: Maven \(mvn\) was not found on PATH/m);
});
