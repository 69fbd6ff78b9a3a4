/**
 * Builds the demo page (demo/) into a folder the router serves: demo/app.ts and the SDK it
 * imports bundled for browsers by esbuild (pinned in devDependencies), beside index.html and
 * style.css. A few hundred milliseconds; `npm start` runs it every time, so a fresh clone needs
 * nothing but `npm install`.
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { REPO_ROOT } from "../infra/kafka/fetch.ts";

export const DEMO_SOURCE_DIR = join(REPO_ROOT, "demo");
export const DEMO_BUILD_DIR = join(REPO_ROOT, ".cache", "demo");

/** What the page reads from config.json: where the dev control is (absent: none). */
export interface DemoConfig {
  readonly devControlUrl?: string;
}

export async function buildDemo(outDir: string, config: DemoConfig): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [join(DEMO_SOURCE_DIR, "app.ts")],
    outfile: join(outDir, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: true,
    logLevel: "warning",
  });
  for (const name of ["index.html", "style.css"])
    copyFileSync(join(DEMO_SOURCE_DIR, name), join(outDir, name));
  writeFileSync(join(outDir, "config.json"), JSON.stringify(config) + "\n");
}
