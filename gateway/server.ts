/**
 * The uWebSockets.js shell: HTTP routes (/healthz, /readyz, /v1/stats, /metrics), the WebSocket endpoint /v1/ws
 * and the mapping of uWS callbacks onto Session. Upgrade requests are copied before any
 * await (uWS request objects die with the callback) and aborts are handled. Upgrades are admitted
 * before any work is done for them: Origin allowlist, total, not-yet-live and per-address caps
 * (admission.ts; docs/SECURITY.md).
 */
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from "uWebSockets.js";
import type { Logger } from "../common/log.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../common/telemetry.ts";
import { parseCursor } from "../schemas/cursor.ts";
import { AVRO_SUBPROTOCOL } from "../schemas/frame-codec.ts";
import type { Verifier } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { clientKey, ConnectionCounter, originAllowed, PendingSockets } from "./admission.ts";
import type { FrameEncoding } from "./event-message.ts";
import { Session, type PreAuth, type SessionDeps, type Socket } from "./session.ts";
import { listen, serveMetrics, type UwsModule } from "./uws.ts";

export const WS_PATH = "/v1/ws";
/**
 * Subprotocols this gateway speaks (docs/PROTOCOL.md): JSON text frames, or the same frames
 * Avro-encoded in binary messages. A client offering none gets JSON; one offering several gets
 * the first of its list that is spoken here.
 */
export const SUBPROTOCOLS = ["rt.v1.json", AVRO_SUBPROTOCOL] as const;

/** A socket's own state: uWS's user data (uWS copies its own properties; it keeps no prototype). */
interface SocketData {
  encoding: FrameEncoding;
  preAuth: PreAuth | null;
  session: Session | null;
  closed: boolean;
  /** The client key the socket is counted under (admission.ts); null once uncounted. */
  client: string | null;
}

/**
 * A session's transport over one uWS socket. A class rather than an object of closures: the
 * gateway holds one per connection, and what each costs is the memory of an idle connection.
 */
class UwsSocket implements Socket {
  constructor(
    private readonly ws: WebSocket<SocketData>,
    private readonly data: SocketData,
    private readonly shared: { readonly maxBuffered: number; readonly log: Logger },
  ) {}

  get encoding(): FrameEncoding {
    return this.data.encoding;
  }

  send(message: string | Uint8Array): boolean {
    const { ws, data, shared } = this;
    if (data.closed) return false;
    const status = ws.send(message, typeof message !== "string");
    const buffered = ws.getBufferedAmount();
    if (buffered > shared.maxBuffered) {
      // The log is the client's buffer: close it, it resumes from its cursor.
      const session = data.session;
      shared.log.warn(
        { conn: session?.id, user: session?.user, buffered, cap: shared.maxBuffered },
        "closing slow consumer",
      );
      session?.close("slow");
      return false;
    }
    return status !== 2;
  }

  close(code: number, reason: string): void {
    if (this.data.closed) return;
    this.data.closed = true;
    this.ws.end(code, reason);
  }

  subscribe(topic: string): void {
    if (!this.data.closed) this.ws.subscribe(topic);
  }

  unsubscribe(topic: string): void {
    if (!this.data.closed) this.ws.unsubscribe(topic);
  }
}

export interface ServerHooks {
  readonly config: GatewayConfig;
  readonly verifier: Verifier;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  /** The Prometheus exposition of every metric, for GET /metrics. */
  readonly metricsText: () => Promise<string>;
  readonly sessionDeps: () => SessionDeps;
  /** null when ready; otherwise why not. */
  readonly notReadyReason: () => string | null;
  readonly draining: () => boolean;
  /** Counters for /v1/stats. */
  readonly stats: () => Record<string, unknown>;
}

export interface Server {
  readonly port: number;
  /** Stops accepting new connections (open sockets stay). Safe to call twice. */
  stopListening(): void;
  /** Every open session. */
  sessions(): Iterable<Session>;
  /** Open WebSockets, welcomed or not. */
  connections(): number;
  /**
   * Sends a message to every socket subscribed to `topic` (uWS's native publish: one copy per
   * socket, skipped for sockets past the backpressure cap); `message` is called only when there
   * are subscribers. A string goes as a text message, bytes as a binary one. Returns the
   * subscriber count.
   */
  publish(topic: string, message: () => string | Uint8Array): number;
}

/** `close`: end the connection after this answer (keep-alive would pin a client to a drained app). */
function json(res: HttpResponse, status: string, body: unknown, close = false): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader("content-type", "application/json").end(JSON.stringify(body), close);
  });
}

export async function startServer(uws: UwsModule, hooks: ServerHooks): Promise<Server> {
  const { config, log } = hooks;
  const app: TemplatedApp = uws.App();
  const open = new Set<Session>();
  const { admission } = config;
  const perClient = new ConnectionCounter(admission.maxConnectionsPerIp);
  /** Open sockets that may not be live yet; `verifying` counts upgrades whose token is being checked. */
  const unauthenticated = new PendingSockets<Session>((s) => !s.live);
  let verifying = 0;
  const maxBuffered = config.limits.maxBufferedBytes;
  const socketShared = { maxBuffered, log };
  // uWS pings a socket after `idleTimeout - min(idleTimeout / 2, 16)` seconds of silence and
  // drops it when the rest passes without a reply: choose idleTimeout so the first ping comes
  // after one ping interval and a dead socket goes within two.
  const pingS = Math.round(config.pingIntervalMs / 1000);
  const idleTimeoutS = pingS <= 16 ? 2 * pingS : pingS + 16;

  // A draining gateway closes health-check connections: its process may start a new gateway on
  // the same port (after its deliveries topic was recreated), which kept-alive probes must reach.
  app.get("/healthz", (res) => json(res, "200 OK", { status: "ok", node: config.nodeId }, hooks.draining()));
  app.get("/readyz", (res) => {
    const reason = hooks.notReadyReason();
    if (reason === null) json(res, "200 OK", { status: "ready", node: config.nodeId });
    else
      json(
        res,
        "503 Service Unavailable",
        { status: "not_ready", reason, node: config.nodeId },
        hooks.draining(),
      );
  });

  app.get("/v1/stats", (res) =>
    json(res, "200 OK", {
      node: config.nodeId,
      ...hooks.stats(),
      admission: {
        sockets: open.size,
        maybeUnauthenticated: unauthenticated.size,
        verifying,
        clientAddresses: perClient.keys,
      },
    }),
  );

  serveMetrics(app, hooks.metricsText, log, PROMETHEUS_CONTENT_TYPE, (res) =>
    json(res, "500 Internal Server Error", { error: "internal", message: "metrics failed" }),
  );

  app.ws<SocketData>(WS_PATH, {
    // uWS drops a connection whose frame exceeds this before we see it; frames between the
    // configured limit and this hard cap get the typed too_big close from the session.
    maxPayloadLength: config.limits.maxFrameBytes * 2,
    maxBackpressure: maxBuffered * 2,
    closeOnBackpressureLimit: 0,
    idleTimeout: idleTimeoutS,
    sendPingsAutomatically: true,
    compression: uws.DISABLED,
    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      const key = req.getHeader("sec-websocket-key");
      const protocolHeader = req.getHeader("sec-websocket-protocol");
      const extensions = req.getHeader("sec-websocket-extensions");
      const authorization = req.getHeader("authorization");
      const cursorHeader = req.getHeader("x-rt-cursor");
      const origin = req.getHeader("origin");
      const client = clientKey(Buffer.from(res.getRemoteAddressAsText()).toString());
      const refused = hooks.metrics.upgradesRefused;
      if (hooks.draining()) {
        refused.add("draining");
        json(res, "503 Service Unavailable", { error: "draining", message: "this gateway is shutting down" });
        return;
      }
      if (!originAllowed(admission.allowedOrigins, origin)) {
        // A page on another site trying to use the user's browser (cross-site WebSocket hijacking).
        refused.add("forbidden_origin");
        json(res, "403 Forbidden", {
          error: "forbidden_origin",
          message: "this Origin may not open WebSockets on this gateway",
        });
        return;
      }
      // Every socket counts, welcomed or not, and so do upgrades whose token is being checked.
      if (open.size + verifying >= config.limits.maxConnections) {
        refused.add("at_capacity");
        json(res, "503 Service Unavailable", {
          error: "at_capacity",
          message: "this gateway is full; retry",
        });
        return;
      }
      if (unauthenticated.full(admission.maxUnauthenticated, verifying, Date.now())) {
        refused.add("unauthenticated_cap");
        json(res, "503 Service Unavailable", {
          error: "at_capacity",
          message: "too many connections are waiting for hello on this gateway; retry",
        });
        return;
      }
      let protocol = "";
      if (protocolHeader !== "") {
        const offered = protocolHeader.split(",").map((s) => s.trim());
        protocol = offered.find((p) => (SUBPROTOCOLS as readonly string[]).includes(p)) ?? "";
        if (protocol === "") {
          refused.add("unsupported_subprotocol");
          json(res, "400 Bad Request", {
            error: "unsupported_subprotocol",
            message: `supported subprotocols: ${SUBPROTOCOLS.join(", ")}`,
          });
          return;
        }
      }
      let counted = false;
      const release = () => {
        if (counted) perClient.remove(client);
        counted = false;
      };
      /** Counts the connection for its address; false (and a 429 sent) when it has too many. */
      const countClient = (): boolean => {
        counted = perClient.tryAdd(client);
        if (!counted) {
          refused.add("too_many_connections");
          json(res, "429 Too Many Requests", {
            error: "too_many_connections",
            message: `this address has ${admission.maxConnectionsPerIp} connections to this gateway already`,
          });
        }
        return counted;
      };
      const upgrade = (preAuth: PreAuth | null) =>
        res.cork(() => {
          res.upgrade<SocketData>(
            {
              encoding: protocol === AVRO_SUBPROTOCOL ? "avro" : "json",
              preAuth,
              session: null,
              closed: false,
              client,
            },
            key,
            protocol,
            extensions,
            context,
          );
        });
      if (authorization === "") {
        if (countClient()) upgrade(null);
        return;
      }
      const m = /^Bearer ([^\s]+)$/i.exec(authorization);
      if (m === null) {
        refused.add("bad_authorization");
        json(res, "401 Unauthorized", {
          error: "unauthorized",
          message: "Authorization must be: Bearer <token>",
        });
        return;
      }
      if (cursorHeader !== "" && !parseCursor(cursorHeader).ok) {
        refused.add("bad_cursor");
        json(res, "400 Bad Request", {
          error: "bad_cursor",
          message: "X-RT-Cursor must be epoch:partition:offset",
        });
        return;
      }
      if (!countClient()) return;
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      verifying += 1;
      void hooks.verifier.verify(m[1]!).then((r) => {
        verifying -= 1;
        if (aborted || !r.ok) release();
        if (aborted) return;
        if (!r.ok) {
          hooks.metrics.authFailures.add(`upgrade:${r.reason}`);
          log.info({ reason: r.reason }, "upgrade refused");
          if (r.reason === "jwks_unavailable" || r.reason === "closed") {
            json(res, "503 Service Unavailable", { error: "unavailable", message: r.message });
          } else {
            const error = r.reason === "expired" ? "token_expired" : "unauthorized";
            json(res, "401 Unauthorized", { error, message: r.message });
          }
          return;
        }
        upgrade({
          user: r.user,
          expiresAtMs: r.expiresAtMs,
          claims: r.claims,
          cursor: cursorHeader === "" ? undefined : cursorHeader,
        });
      });
    },
    open: (ws: WebSocket<SocketData>) => {
      const data = ws.getUserData();
      const session = new Session(new UwsSocket(ws, data, socketShared), hooks.sessionDeps(), data.preAuth);
      // The session has what it needs from the pre-authentication; do not keep the claims twice.
      data.preAuth = null;
      data.session = session;
      open.add(session);
      unauthenticated.add(session);
      session.start();
    },
    message: (ws: WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean) => {
      const session = ws.getUserData().session;
      if (session === null) return;
      // The view dies with this callback; the session decodes it synchronously.
      if (isBinary) session.onBinary(new Uint8Array(message));
      else session.onText(Buffer.from(message).toString("utf8"), message.byteLength);
    },
    close: (ws: WebSocket<SocketData>) => {
      const data = ws.getUserData();
      data.closed = true;
      if (data.client !== null) {
        perClient.remove(data.client);
        data.client = null;
      }
      if (data.session !== null) {
        open.delete(data.session);
        unauthenticated.delete(data.session);
        data.session.closed();
      }
    },
  });

  app.any("/*", (res) =>
    json(res, "404 Not Found", { error: "not_found", message: `WebSocket endpoint is ${WS_PATH}` }),
  );

  const listening = await listen(uws, app, config.host, config.port, "RT_GATEWAY_PORT");
  return {
    port: listening.port,
    stopListening: () => listening.close(),
    sessions: () => open,
    connections: () => open.size,
    publish: (topic, message) => {
      const n = app.numSubscribers(topic);
      if (n > 0) {
        const m = message();
        app.publish(topic, m, typeof m !== "string");
      }
      return n;
    },
  };
}
