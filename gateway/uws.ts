/**
 * Loads uWebSockets.js's native binary directly. The package's own entry silently falls back
 * to a pure-JS server built on `ws` when the binary does not load; that fallback would carry
 * a fraction of the connections, so the gateway refuses it and fails loudly instead.
 */
import { createRequire } from "node:module";
import type * as Uws from "uWebSockets.js";
import type { TemplatedApp, us_listen_socket } from "uWebSockets.js";

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
        `The gateway needs Node.js 20 (ABI ${process.versions.modules} must be 115) on glibc >= 2.27 (x64/arm64; not musl); ` +
        "it will not run on the pure-JS fallback",
      e,
    );
  }
}

export class ListenError extends Error {
  readonly code = "listen_failed";
  constructor(message: string) {
    super(message);
    this.name = "ListenError";
  }
}

export interface Listening {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** Stops accepting new connections; open ones stay. Safe to call twice. */
  close(): void;
}

/** Listens on host:port; a busy port rejects with a ListenError naming `portVariable`. */
export async function listen(
  uws: UwsModule,
  app: TemplatedApp,
  host: string,
  port: number,
  portVariable: string,
): Promise<Listening> {
  const socket = await new Promise<us_listen_socket>((done, fail) => {
    app.listen(host, port, (s) => {
      if (s === false)
        fail(new ListenError(`cannot listen on ${host}:${port} (in use?): set ${portVariable}`));
      else done(s);
    });
  });
  let open = true;
  return {
    port: uws.us_socket_local_port(socket as unknown as Parameters<UwsModule["us_socket_local_port"]>[0]),
    close() {
      if (!open) return;
      open = false;
      uws.us_listen_socket_close(socket);
    },
  };
}

/**
 * GET /metrics: the Prometheus text from `metricsText`, written only if the request is still
 * there; a failure is logged and answered by `onError` (each service's own error body).
 */
export function serveMetrics(
  app: TemplatedApp,
  metricsText: () => Promise<string>,
  log: { error(obj: object, msg: string): void },
  contentType: string,
  onError: (res: Uws.HttpResponse) => void,
): void {
  app.get("/metrics", (res) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    metricsText().then(
      (text) => {
        if (aborted) return;
        res.cork(() => {
          res.writeStatus("200 OK").writeHeader("content-type", contentType).end(text);
        });
      },
      (e: unknown) => {
        log.error({ err: e }, "collecting metrics failed");
        if (!aborted) onError(res);
      },
    );
  });
}
