/**
 * `npm run loadtest -- <scenario> [flags]`: `direct` (direct.ts), `churn` (churn.ts), `room`
 * (room.ts), `broadcast` (broadcast.ts), `connect` (connect.ts) or `storm` (storm.ts); see args.ts
 * for the flags, docs/BENCHMARKS.md for the method. Every run writes its result as JSON and, next
 * to it, a self-contained HTML report with charts (report-html.ts). Exit codes: 0 the run completed and
 * lost nothing; 1 it lost messages, was interrupted, could not set up or connect, or hit its
 * hard deadline; 2 a bad flag.
 *
 * The hard deadline (each phase's bound plus slack) is a backstop: the run ends by itself long
 * before it, but nothing may keep this process alive past it. Child processes a scenario
 * started are SIGKILLed on every way out of this process (the `exit` handler).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs, redactArgv, USAGE, type DirectOptions } from "./args.ts";
import type { ChurnOptions } from "./churn-args.ts";
import { churnDeadlineS, ChurnSetupError, runChurn } from "./churn.ts";
import { churnSummaryText } from "./churn-report.ts";
import { HARD_DEADLINE_SLACK_S, runDirect, RunSetupError } from "./direct.ts";
import { broadcastDeadlineS, runBroadcast } from "./broadcast.ts";
import type { BroadcastOptions, RoomOptions } from "./fanout-args.ts";
import { broadcastSummaryText, roomSummaryText } from "./fanout-report.ts";
import { FanoutSetupError } from "./fanout-run.ts";
import { roomDeadlineS, runRoom } from "./room.ts";
import type { ConnectOptions, StormOptions } from "./connect-args.ts";
import { connectDeadlineS, runConnect } from "./connect.ts";
import { connectSummaryText } from "./connect-report.ts";
import { processTicks, REPO_ROOT } from "./machine.ts";
import { reportPage } from "./report-charts.ts";
import { renderPage } from "./report-html.ts";
import { runStorm, stormDeadlineS } from "./storm.ts";
import { stormSummaryText } from "./storm-report.ts";
import { summaryText } from "./report.ts";
import { killAllNow } from "./services.ts";

/** Pretty JSON; through prettier when it is installed, so result files pass `prettier --check`. */
async function formatJson(result: unknown, file: string): Promise<string> {
  const text = JSON.stringify(result, null, 2) + "\n";
  try {
    const prettier = await import("prettier");
    const config = (await prettier.resolveConfig(file)) ?? {};
    return await prettier.format(text, { ...config, parser: "json" });
  } catch {
    return text;
  }
}

function defaultOut(scenario: string): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[:.]/g, "-")
    .replace(/-\d{3}Z$/, "Z");
  return join(REPO_ROOT, "loadtest", "results", `${scenario}-${stamp}.json`);
}

function shown(file: string): string {
  const r = relative(process.cwd(), file);
  return r === "" || r.startsWith("..") ? file : r;
}

const log = (line: string) => process.stderr.write(line + "\n");

/** Writes the JSON result and the HTML report next to it; prints the summary. */
async function writeResult(result: unknown, summary: (file: string) => string, out: string): Promise<void> {
  writeFileSync(out, await formatJson(result, out));
  const text = summary(shown(out));
  console.log(text);
  const html = out.replace(/\.json$/, "") + ".html";
  try {
    writeFileSync(html, renderPage(reportPage(result, text)));
    log(`report: ${shown(html)}`);
  } catch (e) {
    log(`the HTML report could not be written: ${(e as Error).message}`);
  }
}

async function direct(options: DirectOptions, argv: string[], out: string, signal: AbortSignal) {
  const result = await runDirect(options, ["tsx", "loadtest/main.ts", ...redactArgv(argv)], signal, log);
  await writeResult(result, (file) => summaryText(result, file), out);
  return result.completed && result.totals.lost === 0 ? 0 : 1;
}

type ServicesRun<O, R> = (
  options: O,
  command: string[],
  signal: AbortSignal,
  log: (line: string) => void,
  logFile: string,
) => Promise<R>;

/**
 * A scenario that starts its own services: runs it with their output in `<out>.services.log`,
 * writes the result, prints the summary; exit 0 only when `passed` says so.
 */
async function withServices<O, R>(
  run: ServicesRun<O, R>,
  summary: (result: R, file: string) => string,
  passed: (result: R) => boolean,
  options: O,
  argv: string[],
  out: string,
  signal: AbortSignal,
): Promise<number> {
  const logFile = out.replace(/\.json$/, "") + ".services.log";
  const result = await run(options, ["tsx", "loadtest/main.ts", ...redactArgv(argv)], signal, log, logFile);
  await writeResult(result, (file) => summary(result, file), out);
  log(`services' output: ${shown(logFile)}`);
  return passed(result) ? 0 : 1;
}

const churn = (options: ChurnOptions, argv: string[], out: string, signal: AbortSignal) =>
  withServices(
    runChurn,
    churnSummaryText,
    (r) => r.completed && r.totals !== null && r.totals.lost === 0,
    options,
    argv,
    out,
    signal,
  );

const room = (options: RoomOptions, argv: string[], out: string, signal: AbortSignal) =>
  withServices(
    runRoom,
    roomSummaryText,
    (r) => r.completed && r.totals.lost === 0 && r.totals.duplicates === 0,
    options,
    argv,
    out,
    signal,
  );

const broadcast = (options: BroadcastOptions, argv: string[], out: string, signal: AbortSignal) =>
  withServices(
    runBroadcast,
    broadcastSummaryText,
    (r) => r.completed && r.totals.missed === 0 && r.totals.duplicates === 0,
    options,
    argv,
    out,
    signal,
  );

const connect = (options: ConnectOptions, argv: string[], out: string, signal: AbortSignal) =>
  withServices(
    runConnect,
    connectSummaryText,
    (r) => r.completed && r.connect.failed === 0 && r.hold.unexpected_drops === 0,
    options,
    argv,
    out,
    signal,
  );

const storm = (options: StormOptions, argv: string[], out: string, signal: AbortSignal) =>
  withServices(
    runStorm,
    stormSummaryText,
    (r) => r.completed && r.resume.not_resumed === 0 && r.messages.lost === 0,
    options,
    argv,
    out,
    signal,
  );

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
  const pids =
    options.scenario === "direct"
      ? options.pids.map((p) => ({ ...p, flag: "--pids" }))
      : options.kafkaPid === undefined
        ? []
        : [{ name: "kafka", pid: options.kafkaPid, flag: "--kafka-pid" }];
  for (const p of pids) {
    if (processTicks(p.pid) === null) {
      console.error(`loadtest: ${p.flag}: cannot read /proc/${p.pid}/stat for ${p.name} (no such process?)`);
      return 2;
    }
  }
  const out = resolve(options.out ?? defaultOut(options.scenario));
  try {
    mkdirSync(dirname(out), { recursive: true });
  } catch (e) {
    console.error(`loadtest: --out: cannot create ${dirname(out)}: ${(e as Error).message}`);
    return 2;
  }

  const deadlineS =
    options.scenario === "direct"
      ? options.warmupS + options.durationS + options.graceS + HARD_DEADLINE_SLACK_S
      : options.scenario === "churn"
        ? churnDeadlineS(options)
        : options.scenario === "room"
          ? roomDeadlineS(options)
          : options.scenario === "broadcast"
            ? broadcastDeadlineS(options)
            : options.scenario === "connect"
              ? connectDeadlineS(options)
              : stormDeadlineS(options);
  const hardDeadline = setTimeout(() => {
    console.error(`loadtest: hard deadline of ${deadlineS} s passed; exiting without a result`);
    process.exit(1);
  }, deadlineS * 1000);
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    console.error(
      `loadtest: ${signal}: sending stopped, waiting up to --grace for acks and deliveries, then cleaning up ` +
        `and writing a partial result (${signal} again quits now)`,
    );
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", () => {
    const killed = killAllNow();
    if (killed > 0) console.error(`loadtest: killed ${killed} child processes on exit`);
  });

  try {
    switch (options.scenario) {
      case "direct":
        return await direct(options, argv, out, controller.signal);
      case "churn":
        return await churn(options, argv, out, controller.signal);
      case "room":
        return await room(options, argv, out, controller.signal);
      case "broadcast":
        return await broadcast(options, argv, out, controller.signal);
      case "connect":
        return await connect(options, argv, out, controller.signal);
      case "storm":
        return await storm(options, argv, out, controller.signal);
    }
  } catch (e) {
    if (e instanceof RunSetupError || e instanceof ChurnSetupError || e instanceof FanoutSetupError) {
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
