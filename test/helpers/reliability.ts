/**
 * Numbers the hardening tests measure (bad inputs tried, crashes, auth cases accepted wrongly, peak
 * gateway memory), written as one JSON file per test file under `.cache/reliability/` (or
 * RT_RELIABILITY_DIR). `npx tsx scripts/reliability-report.ts` turns them into docs/RELIABILITY.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";

export function reliabilityDir(): string {
  return process.env.RT_RELIABILITY_DIR ?? join(REPO_ROOT, ".cache", "reliability");
}

export type Measurements = Record<string, number | string | boolean>;

/** Merges `values` into the file of `source` (e.g. "auth-attacks"), stamped with the time. */
export function recordMeasurements(source: string, values: Measurements): void {
  const dir = reliabilityDir();
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${source}.json`);
  let old: Measurements = {};
  try {
    old = JSON.parse(readFileSync(path, "utf8")) as Measurements;
  } catch {
    // First write of this run.
  }
  writeFileSync(
    path,
    `${JSON.stringify({ ...old, ...values, measuredAt: new Date().toISOString() }, null, 2)}\n`,
  );
}

/** Counts cases of one kind: how many were tried and how many went wrong. */
export class Tally {
  tried = 0;
  failed = 0;
  /** Runs one case; a throw counts as failed and is rethrown, so the test still fails. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.tried += 1;
    try {
      return await fn();
    } catch (e) {
      this.failed += 1;
      throw e;
    }
  }
}
