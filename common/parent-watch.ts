/**
 * With RT_EXIT_WITH_PARENT=1 (set by `npm start` and the tests for the services they spawn), a
 * service drains and exits when the process that started it dies, even by SIGKILL, so no
 * gateway or router outlives its supervisor. Returns the function that stops watching.
 */
export function exitWithParent(env: NodeJS.ProcessEnv, onOrphaned: () => void): () => void {
  if (env.RT_EXIT_WITH_PARENT !== "1") return () => {};
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      onOrphaned();
    }
  }, 1_000);
  timer.unref();
  return () => clearInterval(timer);
}
