/**
 * Loads uWebSockets.js's native binary directly. The package's own entry silently falls back
 * to a pure-JS server built on `ws` when the binary does not load; that fallback would carry
 * a fraction of the connections, so the gateway refuses it and fails loudly instead.
 */
import { createRequire } from "node:module";
import type * as Uws from "uWebSockets.js";

export type UwsModule = typeof Uws;

export class NativeUwsError extends Error {
  readonly code = "uws_native_missing";
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = "NativeUwsError";
  }
}

export function binaryName(): string {
  return `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
}

export function loadNativeUws(): UwsModule {
  const require = createRequire(import.meta.url);
  const name = binaryName();
  try {
    const uws = require(`uWebSockets.js/binaries/${name}`) as UwsModule;
    if (typeof uws.App !== "function") throw new Error(`${name} has no App export`);
    return uws;
  } catch (e) {
    throw new NativeUwsError(
      `uWebSockets.js native binary ${name} did not load (${(e as Error).message}). ` +
        `The gateway needs Node.js 20 (ABI ${process.versions.modules} must be 115) on glibc >= 2.36 (x64/arm64); ` +
        "it will not run on the pure-JS fallback",
      e,
    );
  }
}
