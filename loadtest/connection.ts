/**
 * Opening one user's session the way a client does: connect, `hello`, and on `redirect` connect
 * to the URL it names (bounded hops), until `welcome`. Everything is bounded by one deadline; a
 * failure is a value with a message, never a hanging promise or a stray socket.
 */
import { LeanWebSocket } from "./lean-ws.ts";
import { helloFrame, parseServerMessage } from "./protocol.ts";

export interface ConnectOptions {
  readonly url: string;
  readonly token: string;
  /** Source address to bind, or undefined to let the OS choose. */
  readonly localAddress: string | undefined;
  /** For the whole connect, redirects included. */
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  /** Refuses a redirect target with a message, e.g. one that is not loopback. */
  readonly checkRedirect: (url: string) => string | null;
  /** Resume after this cursor (sent in the hello). */
  readonly cursor?: string;
  /**
   * Called the moment the welcome arrives, before any later frame is handled: listeners added here
   * see every frame after the welcome (frames of one read are emitted together).
   */
  readonly onWelcome?: (ws: LeanWebSocket) => void;
}

export type ConnectResult =
  | {
      readonly ok: true;
      readonly ws: LeanWebSocket;
      readonly node: string;
      readonly redirects: number;
      /** The welcome's `recovered` (null when it had none). */
      readonly recovered: boolean | null;
    }
  | { readonly ok: false; readonly message: string };

type Attempt =
  | {
      readonly kind: "welcome";
      readonly ws: LeanWebSocket;
      readonly node: string;
      readonly recovered: boolean | null;
    }
  | { readonly kind: "redirect"; readonly url: string }
  | { readonly kind: "fail"; readonly message: string };

function attempt(url: string, o: ConnectOptions, timeoutMs: number) {
  const { token, localAddress } = o;
  return new Promise<Attempt>((done) => {
    const ws = new LeanWebSocket(url, {
      handshakeTimeout: Math.max(1, timeoutMs),
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    let settled = false;
    let refused: string | null = null;
    const finish = (result: Attempt, terminate: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.off("message", onMessage);
      if (terminate) ws.terminate();
      done(result);
    };
    const timer = setTimeout(
      () => finish({ kind: "fail", message: `no welcome within ${timeoutMs} ms from ${url}` }, true),
      timeoutMs,
    );
    const onMessage = (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const m = parseServerMessage(data.toString());
      if (m.op === "welcome") {
        finish({ kind: "welcome", ws, node: m.node, recovered: m.recovered }, false);
        o.onWelcome?.(ws);
      } else if (m.op === "redirect") {
        // The gateway closes with "moved" right after; closing from our side too frees the socket now.
        ws.close(1000);
        finish({ kind: "redirect", url: m.url }, false);
      } else if (m.op === "error") refused = `${m.code}: ${m.message}`;
    };
    // A no-op listener stays for the socket's life: an emitter throws an 'error' nobody listens to.
    ws.on("error", () => {});
    ws.once("error", (e: Error) => finish({ kind: "fail", message: `${url}: ${e.message}` }, true));
    ws.once("unexpected-response", (status: number) => {
      finish({ kind: "fail", message: `${url}: HTTP ${status} instead of a WebSocket upgrade` }, true);
    });
    ws.once("open", () => ws.send(helloFrame(token, o.cursor)));
    ws.on("message", onMessage);
    ws.once("close", (code: number, reason: Buffer) =>
      finish(
        {
          kind: "fail",
          message: `${url} closed the socket (${code} ${reason.toString()})${refused === null ? "" : ` after error ${refused}`}`,
        },
        false,
      ),
    );
  });
}

export async function connectUser(options: ConnectOptions): Promise<ConnectResult> {
  const deadline = Date.now() + options.timeoutMs;
  let url = options.url;
  for (let redirects = 0; redirects <= options.maxRedirects; redirects++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const r = await attempt(url, options, left);
    if (r.kind === "welcome") return { ok: true, ws: r.ws, node: r.node, redirects, recovered: r.recovered };
    if (r.kind === "fail") return { ok: false, message: r.message };
    const refused = options.checkRedirect(r.url);
    if (refused !== null) return { ok: false, message: `refusing redirect to ${r.url}: ${refused}` };
    url = r.url;
  }
  return { ok: false, message: `no welcome within ${options.timeoutMs} ms (last URL ${url})` };
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** How long closing sockets wait for the server's close before terminating them. */
export const CLOSE_WAIT_MS = 5_000;

/** Closes every open socket politely, then terminates what is still open after `waitMs`. */
export async function closeSockets(
  sockets: readonly (LeanWebSocket | undefined)[],
  waitMs = CLOSE_WAIT_MS,
): Promise<{ ms: number; terminated: number }> {
  const start = performance.now();
  const open = sockets.filter((ws): ws is LeanWebSocket => ws !== undefined && ws.readyState !== ws.CLOSED);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(
      open.map(
        (ws) =>
          new Promise<void>((done) => {
            ws.once("close", () => done());
            ws.close(1000, "loadtest done");
          }),
      ),
    ),
    new Promise<void>((done) => (timer = setTimeout(done, waitMs))),
  ]);
  clearTimeout(timer);
  let terminated = 0;
  for (const ws of open) {
    if (ws.readyState !== ws.CLOSED) {
      terminated++;
      ws.terminate();
    }
  }
  return { ms: Math.round(performance.now() - start), terminated };
}
