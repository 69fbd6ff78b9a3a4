/**
 * Loaded into the gateways a `connect` run starts (`node --expose-gc --import tsx --import
 * ./loadtest/gc-preload.ts gateway/main.ts`), never into a deployed gateway: on SIGUSR2 the
 * process runs a full garbage collection, so the run reads memory that live objects hold rather
 * than whatever garbage the last collection left. Without `--expose-gc` it installs nothing.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (typeof gc === "function") process.on("SIGUSR2", () => gc());
