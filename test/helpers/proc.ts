/**
 * Child processes for integration tests: the project's real entry points run under node
 * with tsx, output captured, and always stopped (SIGKILL as a last resort) by `stop()`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";

export interface Proc {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves when the combined output matches, rejects on exit or timeout. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code (or 128+signal) once the process has exited. */
  exited(): Promise<number>;
  /** Sends `signal`, waits up to `graceMs`, then SIGKILL. Safe to call twice. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number>;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function runTs(entry: string, args: string[], env: Record<string, string | undefined>): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", entry, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, RT_EXIT_WITH_PARENT: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const exit = new Promise<number>((done) =>
    child.on("close", (code, signal) => done(code ?? 128 + (SIGNALS[signal ?? ""] ?? 0))),
  );
  return {
    child,
    output: () => out,
    exited: () => exit,
    async waitFor(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let done = false;
      void exit.then(() => (done = true));
      for (;;) {
        const m = pattern.exec(out);
        if (m !== null) return m;
        if (done) throw new Error(`process exited before printing ${pattern}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${out}`);
        await sleep(50);
      }
    },
    async stop(signal = "SIGTERM", graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const code = await exit;
        clearTimeout(timer);
        return code;
      }
      return exit;
    },
  };
}

/** Runs to completion and returns exit code and output. */
export async function runToEnd(
  entry: string,
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 60_000,
): Promise<{ code: number; output: string }> {
  const p = runTs(entry, args, env);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  const code = await p.exited();
  clearTimeout(timer);
  return { code, output: p.output() };
}
