/** The OTEL_* variables that decide tracing, and the counts behind observable counters. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../common/env.ts";
import { createContextKey, ROOT_CONTEXT } from "@opentelemetry/api";
import { Counts, readTelemetryConfig, SyncContextManager } from "../../common/telemetry.ts";

const read = (env: Record<string, string>) =>
  readTelemetryConfig(env, { serviceName: "rt-test", instanceId: "n1" });

test("tracing is on only with an exporter configured and a sampler that can sample", () => {
  const cases: [Record<string, string>, boolean][] = [
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }, true],
    [{ OTEL_TRACES_EXPORTER: "otlp" }, true],
    [{ OTEL_TRACES_EXPORTER: "console" }, true],
    [{ OTEL_TRACES_EXPORTER: "otlp,console" }, true],
    [{ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, false],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "true" }, false],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "always_off" }, false],
    [
      { OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" },
      false,
    ],
    [
      { OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.01" },
      true,
    ],
    // A sampled client traceparent is still followed.
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "parentbased_always_off" }, true],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "parentbased_traceidratio" }, true],
  ];
  for (const [env, tracing] of cases) {
    const c = read(env);
    assert.equal(c.tracing, tracing, `${JSON.stringify(env)}: ${c.describe}`);
    assert.equal(c.serviceName, "rt-test");
    assert.equal(c.instanceId, "n1");
    assert.match(c.describe, tracing ? /^tracing on/ : /^tracing off/);
  }
  assert.match(
    read({
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_TRACES_SAMPLER: "traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.01",
    }).describe,
    /traceidratio\(0\.01\)/,
  );
});

test("followsParent: only parent-based samplers let a gateway skip spans under unsampled parents", () => {
  assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp" }).followsParent, true, "the default is parent-based");
  for (const sampler of ["parentbased_always_on", "parentbased_traceidratio", "parentbased_always_off"]) {
    assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: sampler }).followsParent, true);
  }
  for (const sampler of ["always_on", "traceidratio"]) {
    assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: sampler }).followsParent, false);
  }
});

test("a bad OTEL_* value stops the service, naming the variable", () => {
  const cases: [Record<string, string>, string][] = [
    [{ OTEL_TRACES_EXPORTER: "jaeger" }, "OTEL_TRACES_EXPORTER"],
    // The SDK matches values exactly: "OTLP" would silently export nothing.
    [{ OTEL_TRACES_EXPORTER: "OTLP" }, "OTEL_TRACES_EXPORTER"],
    [{ OTEL_TRACES_SAMPLER: "AlwaysOn" }, "OTEL_TRACES_SAMPLER"],
    [{ OTEL_TRACES_EXPORTER: "none,otlp" }, "OTEL_TRACES_EXPORTER"],
    [{ OTEL_TRACES_SAMPLER: "sometimes" }, "OTEL_TRACES_SAMPLER"],
    [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" }, "OTEL_TRACES_SAMPLER_ARG"],
    [
      { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "1%" },
      "OTEL_TRACES_SAMPLER_ARG",
    ],
    [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "-0.1" }, "OTEL_TRACES_SAMPLER_ARG"],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: "http" }, "OTEL_EXPORTER_OTLP_PROTOCOL"],
    [{ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "udp" }, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
    [{ OTEL_SDK_DISABLED: "maybe" }, "OTEL_SDK_DISABLED"],
  ];
  for (const [env, variable] of cases) {
    assert.throws(
      () => read(env),
      (e: unknown) => e instanceof ConfigError && e.variable === variable,
      JSON.stringify(env),
    );
  }
  // The sampler arg only matters for ratio samplers; protocols in any case.
  assert.equal(read({ OTEL_TRACES_SAMPLER: "always_on", OTEL_TRACES_SAMPLER_ARG: "7" }).tracing, false);
  assert.equal(
    read({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }).tracing,
    true,
  );
});

test("Counts: cumulative per key, attributes built once per key", () => {
  let built = 0;
  const counts = new Counts((key) => {
    built += 1;
    return { "rt.op": key };
  });
  counts.add("send");
  counts.add("send");
  counts.add("hello", 3);
  counts.add("ping", 0);
  assert.equal(counts.get("send"), 2);
  assert.equal(counts.get("hello"), 3);
  assert.equal(counts.get("nope"), 0);
  assert.equal(built, 3);
  assert.deepEqual(counts.toObject(), { send: 2, hello: 3, ping: 0 });
  const seen: [number, unknown][] = [];
  counts.observe({ observe: (v, a) => seen.push([v, a]) });
  assert.deepEqual(seen, [
    [2, { "rt.op": "send" }],
    [3, { "rt.op": "hello" }],
    [0, { "rt.op": "ping" }],
  ]);
});

test("SyncContextManager: a context is active for the synchronous call only", async () => {
  const m = new SyncContextManager();
  const key = createContextKey("k");
  const a = ROOT_CONTEXT.setValue(key, "a");
  const b = ROOT_CONTEXT.setValue(key, "b");
  assert.equal(m.active(), ROOT_CONTEXT);
  const seen: unknown[] = [];
  m.with(a, () => {
    seen.push(m.active().getValue(key));
    m.with(b, () => seen.push(m.active().getValue(key)));
    seen.push(m.active().getValue(key));
  });
  assert.deepEqual(seen, ["a", "b", "a"]);
  assert.equal(m.active(), ROOT_CONTEXT);
  assert.throws(() => m.with(a, () => assert.fail("boom")));
  assert.equal(m.active(), ROOT_CONTEXT, "restored after a throw");
  assert.equal(
    m.with(a, (x: number, y: number) => x + y, undefined, 2, 3),
    5,
  );
  // Async continuations do not inherit it: spans are handed over explicitly across awaits.
  const after = await m.with(a, async () => {
    await Promise.resolve();
    return m.active();
  });
  assert.equal(after, ROOT_CONTEXT);
  const bound = m.bind(b, () => m.active().getValue(key));
  assert.equal(bound(), "b");
  const obj = { x: 1 };
  assert.equal(m.bind(a, obj), obj);
});
