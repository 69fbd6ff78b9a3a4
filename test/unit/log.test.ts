/**
 * The logger: tokens, secrets and payloads are redacted wherever they sit in a line, and lines
 * written inside an active span carry its trace and span ids (only those).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { Writable } from "node:stream";
import {
  context,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  type Context,
  type ContextManager,
} from "@opentelemetry/api";
import { createLogger, traceFields } from "../../common/log.ts";

function capture(level: "debug" | "info" = "debug") {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString("utf8")
          .split("\n")
          .filter((l) => l !== ""),
      );
      done();
    },
  });
  const log = createLogger({ service: "test", level, destination });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXRoYXQtbXVzdC1uZXZlci1sZWFr";

test("tokens, authorization headers, secrets and payloads never reach a line", async () => {
  const { log, lines } = capture();
  log.info({ token: TOKEN }, "top-level token");
  log.info({ frame: { op: "hello", token: TOKEN } }, "nested token");
  log.info({ headers: { authorization: `Bearer ${TOKEN}` } }, "header");
  log.info({ req: { headers: { authorization: `Bearer ${TOKEN}` } } }, "request header");
  log.info({ authorization: `Bearer ${TOKEN}`, secret: "s3cr3t-value", password: "pw-value" }, "creds");
  log.info({ data: { text: "private message body" } }, "payload");
  log.info({ frame: { op: "send", data: "private message body" }, payload: "raw-payload" }, "frame");
  log.child({ conn: "c1" }).debug({ token: TOKEN }, "child logger");
  const all = lines.join("\n");
  assert.equal(lines.length, 8);
  for (const secret of [
    TOKEN,
    "c2lnbmF0dXJl",
    "s3cr3t-value",
    "pw-value",
    "private message body",
    "raw-payload",
  ]) {
    assert.equal(all.includes(secret), false, `${secret} leaked: ${all}`);
  }
  assert.equal(all.split("[redacted]").length - 1 >= 10, true);
  // What is not secret stays.
  assert.match(all, /"op":"hello"/);
  assert.match(all, /"conn":"c1"/);
});

/** The SDK's AsyncLocalStorage context manager, in miniature, so spans can be made active. */
class AlsContextManager implements ContextManager {
  readonly #als = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#als.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#als.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#als.disable();
    return this;
  }
}

test("lines inside an active span carry its ids; lines outside carry none", async () => {
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  const spanId = "b7ad6b7169203331";
  const span = trace.wrapSpanContext({ traceId, spanId, traceFlags: TraceFlags.SAMPLED });
  assert.deepEqual(traceFields(trace.setSpan(ROOT_CONTEXT, span)), { trace_id: traceId, span_id: spanId });
  assert.deepEqual(traceFields(ROOT_CONTEXT), {});
  const invalid = trace.wrapSpanContext({ traceId: "0".repeat(32), spanId: "0".repeat(16), traceFlags: 0 });
  assert.deepEqual(traceFields(trace.setSpan(ROOT_CONTEXT, invalid)), {});

  assert.ok(context.setGlobalContextManager(new AlsContextManager()));
  try {
    const { log, parsed } = capture("info");
    log.info({ a: 1 }, "before");
    context.with(trace.setSpan(ROOT_CONTEXT, span), () => log.child({ conn: "c1" }).info({ b: 2 }, "inside"));
    await context.with(trace.setSpan(ROOT_CONTEXT, span), async () => {
      await new Promise((r) => setTimeout(r, 1));
      log.warn("after an await");
    });
    log.info("after");
    const [before, inside, awaited, after] = parsed();
    assert.equal(before?.trace_id, undefined);
    assert.equal(inside?.trace_id, traceId);
    assert.equal(inside?.span_id, spanId);
    assert.equal(inside?.conn, "c1");
    assert.equal(inside?.b, 2);
    assert.equal(awaited?.span_id, spanId);
    assert.equal(after?.trace_id, undefined);
    assert.equal(after?.span_id, undefined);
  } finally {
    context.disable();
  }
});
