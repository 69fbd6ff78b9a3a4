/**
 * How a service process ends: on SIGTERM or SIGINT (or when its parent dies, see
 * parent-watch.ts) it runs `stop` once, then exits 0; a failed or overlong stop exits 1.
 */
import type { Logger } from "./log.ts";
import { exitWithParent } from "./parent-watch.ts";

export function stopOnSignals(opts: { log: Logger; graceMs: number; stop: () => Promise<void> }): void {
  const { log, graceMs } = opts;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => {
      log.error({ graceMs }, "stop did not finish in time; exiting");
      process.exit(1);
    }, graceMs);
    force.unref();
    opts.stop().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (e: unknown) => {
        log.error({ err: e }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  exitWithParent(process.env, () => onSignal("SIGTERM"));
}
