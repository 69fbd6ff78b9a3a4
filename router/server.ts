/**
 * The router's uWebSockets.js shell: /v1/connect, /healthz, /readyz, /metrics. Request data is copied
 * before any await (uWS request objects die with the callback), aborts are handled, and the
 * answers come from the pure functions of connect.ts and cors.ts.
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import type { HttpRequest, HttpResponse, TemplatedApp } from "uWebSockets.js";
import type { Logger } from "../common/log.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../common/telemetry.ts";
import type { Verifier } from "../gateway/auth.ts";
import { listen, serveMetrics, type UwsModule } from "../gateway/uws.ts";
import type { RouterConfig } from "./config.ts";
import {
  CONNECT_PATH,
  authFailureAnswer,
  errorAnswer,
  extractToken,
  jsonAnswer,
  lookupAnswer,
  tokenAnswer,
  type Answer,
  type Header,
} from "./connect.ts";
import { corsHeaders } from "./cors.ts";
import type { RouterMetrics } from "./metrics.ts";
import type { FanoutStats } from "./fanout.ts";
import { ServiceScope } from "../common/grants.ts";
import type { PartitionCounts, PublishRecord } from "../schemas/publish.ts";
import { PUBLISH_PATH, REVOKE_PATH, parsePublish, parseRevoke, serviceOf, type Checked } from "./publish.ts";
import type { Lookup, PlacementStatus } from "./placement.ts";
import { staticFile, type StaticSite } from "./static.ts";

/** What the server needs of the placement cache (placement.ts). */
export interface OwnerSource {
  lookup(user: string): Promise<Lookup>;
  notReadyReason(): string | null;
  status(): PlacementStatus;
}

/** What the publish API needs: the topics' partition counts and a producer. */
export interface Publisher {
  /** null until the counts were read from Kafka. */
  counts(): PartitionCounts | null;
  /** Writes one record; resolves with its offset once Kafka has it (acks=all). */
  write(record: PublishRecord): Promise<{ topic: string; partition: number; offset: string }>;
  /** The deliveries log's epoch, for the cursor of a direct event. */
  epoch(): string;
}

export interface RouterServerDeps {
  readonly config: RouterConfig;
  readonly verifier: Verifier;
  readonly placement: OwnerSource;
  readonly log: Logger;
  readonly metrics: RouterMetrics;
  readonly metricsText: () => Promise<string>;
  /** null: tracing is off, no span is made. */
  readonly tracer: Tracer | null;
  readonly publisher: Publisher;
  /** The room fanout's counters (null until it runs). */
  readonly fanout: () => FanoutStats | null;
  /** The demo page (RT_ROUTER_DEMO_DIR), served under its prefix; null: none. */
  readonly site?: StaticSite | null;
}

export interface RouterServer {
  readonly port: number;
  /** Stops accepting connections; requests in flight still get answers. Safe to call twice. */
  stopListening(): void;
  /** Resolves once no request is waiting for an answer. */
  idle(): Promise<void>;
}

export { ListenError } from "../gateway/uws.ts";

const ALLOW_CONNECT: Header = ["allow", "GET, OPTIONS"];
const ALLOW_GET: Header = ["allow", "GET"];

function write(res: HttpResponse, answer: Answer): void {
  res.cork(() => {
    res.writeStatus(answer.status);
    for (const [name, value] of answer.headers) res.writeHeader(name, value);
    if (answer.body === null) res.endWithoutBody();
    else res.end(JSON.stringify(answer.body));
  });
}

function withHeaders(answer: Answer, headers: readonly Header[]): Answer {
  return headers.length === 0 ? answer : { ...answer, headers: [...answer.headers, ...headers] };
}

export async function startRouterServer(uws: UwsModule, deps: RouterServerDeps): Promise<RouterServer> {
  const { config, verifier, placement, log, metrics, tracer } = deps;
  const app: TemplatedApp = uws.App();
  let inFlight = 0;
  const idleWaiters: (() => void)[] = [];
  const settled = () => {
    inFlight -= 1;
    if (inFlight === 0) for (const done of idleWaiters.splice(0)) done();
  };

  /** `span` is the request's span (null: not traced); its lines are logged inside it. */
  async function connect(
    authorization: string,
    queryToken: string | undefined,
    span: Span | null,
  ): Promise<Answer> {
    const inSpan = (fn: () => void) =>
      span === null ? fn() : context.with(trace.setSpan(ROOT_CONTEXT, span), fn);
    const token = extractToken(authorization, queryToken);
    if (!token.ok) return tokenAnswer(token);
    const verified = await verifier.verify(token.token);
    if (!verified.ok) {
      metrics.authFailures.add(`connect:${verified.reason}`);
      inSpan(() => log.debug({ reason: verified.reason }, "connect refused"));
      return authFailureAnswer(verified);
    }
    span?.setAttribute("user.id", verified.user);
    const lookup = await placement.lookup(verified.user);
    if (lookup.kind !== "owner")
      inSpan(() => log.debug({ user: verified.user, lookup }, "connect: no owner"));
    return lookupAnswer(verified.user, lookup);
  }

  app.get(CONNECT_PATH, (res: HttpResponse, req: HttpRequest) => {
    // Copied now: req is invalid after this callback returns. The token is never logged.
    const authorization = req.getHeader("authorization");
    const cors = corsHeaders(config.corsOrigins, req.getHeader("origin"), false);
    const queryToken = req.getQuery("token") as string | undefined;
    const traceparent = tracer === null ? "" : req.getHeader("traceparent");
    const started = performance.now();
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    inFlight += 1;
    const parent = traceparent === "" ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, { traceparent });
    const span =
      tracer?.startSpan(
        `GET ${CONNECT_PATH}`,
        { kind: SpanKind.SERVER, attributes: { "http.request.method": "GET", "http.route": CONNECT_PATH } },
        parent,
      ) ?? null;
    connect(authorization, queryToken, span)
      .catch((e: unknown) => {
        log.error({ err: e }, "connect failed unexpectedly");
        return errorAnswer("internal", "internal error");
      })
      .then((answer) => {
        const code = (answer.body as { error?: string } | null)?.error;
        metrics.answered(answer.status, code, performance.now() - started);
        if (span !== null) {
          span.setAttribute("http.response.status_code", Number.parseInt(answer.status, 10));
          if (code !== undefined) span.setAttribute("error.type", code);
          if (answer.status.startsWith("5")) span.setStatus({ code: SpanStatusCode.ERROR, message: code });
          span.end();
        }
        if (!aborted) write(res, withHeaders(answer, cors));
      })
      .finally(settled);
  });

  app.options(CONNECT_PATH, (res: HttpResponse, req: HttpRequest) => {
    const cors = corsHeaders(config.corsOrigins, req.getHeader("origin"), true);
    write(res, { status: "204 No Content", headers: [ALLOW_CONNECT, ...cors], body: null });
  });

  app.any(CONNECT_PATH, (res: HttpResponse, req: HttpRequest) => {
    const cors = corsHeaders(config.corsOrigins, req.getHeader("origin"), false);
    const method = req.getCaseSensitiveMethod();
    write(
      res,
      errorAnswer("method_not_allowed", `${method} is not allowed on ${CONNECT_PATH}: use GET`, {
        headers: [ALLOW_CONNECT, ...cors],
      }),
    );
  });

  /**
   * A POST endpoint with a JSON body and a service token: reads the body (bounded), checks the
   * token's scope, parses, writes one record, answers when Kafka has it.
   */
  function postEndpoint(
    path: string,
    scope: ServiceScope,
    parse: (
      body: Buffer,
      sender: string,
      counts: PartitionCounts,
    ) => Checked<{ record: PublishRecord; answer: Record<string, unknown> }>,
  ): void {
    app.post(path, (res: HttpResponse, req: HttpRequest) => {
      const authorization = req.getHeader("authorization");
      const contentType = req.getHeader("content-type");
      const started = performance.now();
      let aborted = false;
      let answered = false;
      inFlight += 1;
      const answer = (a: Answer) => {
        if (answered) return;
        answered = true;
        const code = (a.body as { error?: string } | null)?.error;
        metrics.answered(a.status, code, performance.now() - started);
        if (!aborted) write(res, a);
        settled();
      };
      res.onAborted(() => {
        aborted = true;
        if (!answered) {
          answered = true;
          settled();
        }
      });
      if (contentType !== "" && !/^application\/json\b/i.test(contentType)) {
        answer(errorAnswer("unsupported_media_type", "the body must be application/json"));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.onData((chunk, isLast) => {
        if (answered) return;
        size += chunk.byteLength;
        if (size > config.maxBodyBytes) {
          answer(errorAnswer("too_big", `the body is over ${config.maxBodyBytes} bytes`));
          return;
        }
        // uWS reuses the chunk's memory after this callback: copy it.
        chunks.push(Buffer.from(Buffer.from(chunk)));
        if (!isLast) return;
        const body = Buffer.concat(chunks);
        handle(body).then(answer, (e: unknown) => {
          log.error({ err: e, path }, "publish failed unexpectedly");
          answer(errorAnswer("internal", "internal error"));
        });
      });
      const handle = async (body: Buffer): Promise<Answer> => {
        const token = extractToken(authorization, undefined);
        if (!token.ok) return tokenAnswer(token);
        const verified = await verifier.verify(token.token);
        if (!verified.ok) {
          metrics.authFailures.add(`publish:${verified.reason}`);
          return authFailureAnswer(verified);
        }
        const service = serviceOf(verified.user, verified.claims, scope);
        if (!service.ok) return errorAnswer(service.code, service.message);
        const counts = deps.publisher.counts();
        if (counts === null) return errorAnswer("unavailable", "the router has not read the topics yet");
        const parsed = parse(body, service.value, counts);
        if (!parsed.ok) return errorAnswer(parsed.code, parsed.message);
        let pos;
        try {
          pos = await deps.publisher.write(parsed.value.record);
        } catch (e) {
          log.warn({ err: e, path }, "publish: Kafka did not take the record");
          return errorAnswer("unavailable", "Kafka did not take the record; retry");
        }
        log.debug({ path, service: service.value, ...parsed.value.answer, offset: pos.offset }, "published");
        const cursor =
          parsed.value.record.role === "deliveries"
            ? { cursor: `${deps.publisher.epoch()}:${pos.partition}:${pos.offset}` }
            : {};
        return jsonAnswer("200 OK", {
          ...parsed.value.answer,
          ...cursor,
          topic: pos.topic,
          partition: pos.partition,
          offset: pos.offset,
        });
      };
    });
    app.any(path, (res: HttpResponse, req: HttpRequest) =>
      write(
        res,
        errorAnswer(
          "method_not_allowed",
          `${req.getCaseSensitiveMethod()} is not allowed on ${path}: use POST`,
          {
            headers: [["allow", "POST"]],
          },
        ),
      ),
    );
  }

  postEndpoint(PUBLISH_PATH, ServiceScope.publish, (body, sender, counts) => {
    const r = parsePublish(body, sender, counts, config.maxDataDepth);
    if (!r.ok) return r;
    const { target, record, id } = r.value;
    const to =
      target.kind === "user"
        ? `user:${target.user}`
        : target.kind === "room"
          ? `room:${target.room}`
          : `channel:${target.channel}`;
    return { ok: true, value: { record, answer: { id, to } } };
  });
  postEndpoint(REVOKE_PATH, ServiceScope.revoke, (body, sender, counts) => {
    const r = parseRevoke(body, sender, counts);
    if (!r.ok) return r;
    return {
      ok: true,
      value: {
        record: r.value.record,
        answer: { user: r.value.user, revoked_at: r.value.record.timestampMs },
      },
    };
  });

  app.get("/v1/stats", (res: HttpResponse) =>
    write(res, jsonAnswer("200 OK", { placement: placement.status(), fanout: deps.fanout() })),
  );
  app.get("/healthz", (res: HttpResponse) => write(res, jsonAnswer("200 OK", { status: "ok" })));
  app.get("/readyz", (res: HttpResponse) => {
    const reason = placement.notReadyReason();
    const status = placement.status();
    if (reason === null) write(res, jsonAnswer("200 OK", { status: "ready", ...status }));
    else write(res, jsonAnswer("503 Service Unavailable", { status: "not_ready", reason, ...status }));
  });
  serveMetrics(app, deps.metricsText, log, PROMETHEUS_CONTENT_TYPE, (res) =>
    write(res, errorAnswer("internal", "collecting metrics failed")),
  );
  for (const path of ["/healthz", "/readyz", "/metrics", "/v1/stats"]) {
    app.any(path, (res: HttpResponse, req: HttpRequest) =>
      write(
        res,
        errorAnswer(
          "method_not_allowed",
          `${req.getCaseSensitiveMethod()} is not allowed on ${path}: use GET`,
          {
            headers: [ALLOW_GET],
          },
        ),
      ),
    );
  }

  const site = deps.site ?? null;
  if (site !== null) {
    app.get(`${site.prefix}/*`, (res: HttpResponse, req: HttpRequest) => {
      const file = staticFile(site, req.getUrl());
      if (file === undefined) write(res, errorAnswer("not_found", "no such file"));
      else
        res.cork(() => {
          res.writeStatus("200 OK").writeHeader("content-type", file.contentType);
          res.writeHeader("cache-control", "no-cache").end(file.body);
        });
    });
    app.get(site.prefix, (res: HttpResponse) =>
      write(res, { status: "302 Found", headers: [["location", `${site.prefix}/`]], body: null }),
    );
  }

  app.any("/*", (res: HttpResponse) =>
    write(res, errorAnswer("not_found", `no such endpoint; placement is GET ${CONNECT_PATH}`)),
  );

  const listening = await listen(uws, app, config.host, config.port, "RT_ROUTER_PORT");
  return {
    port: listening.port,
    stopListening: () => listening.close(),
    idle() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((done) => idleWaiters.push(done));
    },
  };
}
