/**
 * `npm run loadtest -- direct [flags]` (see args.ts for the flags, docs/BENCHMARKS.md for the
 * method). Exit codes: 0 the run completed and lost nothing; 1 it lost messages, was interrupted,
 * could not connect, or hit its hard deadline; 2 a bad flag.
 *
 * The hard deadline (warmup + duration + grace + 30 s) is a backstop: the run ends by itself
 * long before it, but nothing may keep this process alive past it.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs, redactArgv, USAGE } from "./args.ts";
import { HARD_DEADLINE_SLACK_S, runDirect, RunSetupError } from "./direct.ts";
import { processTicks, REPO_ROOT } from "./machine.ts";
import { summaryText, type DirectResult } from "./report.ts";

/** Pretty JSON; through prettier when it is installed, so result files pass `prettier --check`. */
async function formatJson(result: DirectResult, file: string): Promise<string> {
  const text = JSON.stringify(result, null, 2) + "\n";
  try {
    const prettier = await import("prettier");
    const config = (await prettier.resolveConfig(file)) ?? {};
    return await prettier.format(text, { ...config, parser: "json" });
  } catch {
    return text;
  }
}

function defaultOut(): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[:.]/g, "-")
    .replace(/-\d{3}Z$/, "Z");
  return join(REPO_ROOT, "loadtest", "results", `direct-${stamp}.json`);
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv);
  if (parsed.kind === "help") {
    console.log(USAGE);
    return 0;
  }
  if (parsed.kind === "error") {
    console.error(`loadtest: ${parsed.message}`);
    return 2;
  }
  const options = parsed.options;
  for (const p of options.pids) {
    if (processTicks(p.pid) === null) {
      console.error(`loadtest: --pids: cannot read /proc/${p.pid}/stat for ${p.name} (no such process?)`);
      return 2;
    }
  }
  const out = resolve(options.out ?? defaultOut());
  try {
    mkdirSync(dirname(out), { recursive: true });
  } catch (e) {
    console.error(`loadtest: --out: cannot create ${dirname(out)}: ${(e as Error).message}`);
    return 2;
  }

  const deadlineS = options.warmupS + options.durationS + options.graceS + HARD_DEADLINE_SLACK_S;
  const hardDeadline = setTimeout(() => {
    console.error(`loadtest: hard deadline of ${deadlineS} s passed; exiting without a result`);
    process.exit(1);
  }, deadlineS * 1000);
  const controller = new AbortController();
  process.on("SIGINT", () => {
    if (controller.signal.aborted) process.exit(130);
    console.error(
      "loadtest: interrupted; sending stopped, waiting up to --grace for acks and deliveries, then writing a partial result (Ctrl-C again quits now)",
    );
    controller.abort();
  });

  try {
    const result = await runDirect(
      options,
      ["tsx", "loadtest/main.ts", ...redactArgv(argv)],
      controller.signal,
      (line) => process.stderr.write(line + "\n"),
    );
    writeFileSync(out, await formatJson(result, out));
    const shown = relative(process.cwd(), out);
    console.log(summaryText(result, shown === "" || shown.startsWith("..") ? out : shown));
    return result.completed && result.totals.lost === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof RunSetupError) {
      console.error(`loadtest: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    clearTimeout(hardDeadline);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
