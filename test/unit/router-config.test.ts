/** The router's configuration (router/config.ts): defaults, CORS origins, errors naming the variable. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../common/env.ts";
import { readRouterConfig } from "../../router/config.ts";

const AUTH = { RT_JWT_SECRET: "x".repeat(32) };

test("readRouterConfig: defaults", () => {
  const c = readRouterConfig({ ...AUTH });
  assert.equal(c.port, 8080);
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.refreshMs, 1000);
  assert.equal(c.corsOrigins, null);
  assert.equal(c.groupId, "rt-gateways");
  assert.equal(c.topics.names.deliveries, "rt.deliveries");
  assert.equal(c.kafka.clientId, "rt-router");
  assert.ok(Object.isFrozen(c));
  const prefixed = readRouterConfig({ RT_TOPIC_PREFIX: "t1.", RT_ROUTER_PORT: "0" });
  assert.equal(prefixed.groupId, "t1.rt-gateways");
  assert.equal(prefixed.topics.names.deliveries, "t1.rt.deliveries");
  assert.equal(prefixed.port, 0);
  assert.equal(readRouterConfig({ RT_GATEWAY_GROUP: "gws" }).groupId, "gws");
});

test("readRouterConfig: CORS origins", () => {
  assert.equal(readRouterConfig({ RT_ROUTER_CORS_ORIGINS: "*" }).corsOrigins, "*");
  assert.deepEqual(
    readRouterConfig({ RT_ROUTER_CORS_ORIGINS: "https://a.example, http://localhost:3000,https://a.example" })
      .corsOrigins,
    ["https://a.example", "http://localhost:3000"],
  );
});

test("readRouterConfig: bad values name the variable", () => {
  const bad: [Record<string, string>, string][] = [
    [{ RT_ROUTER_PORT: "70000" }, "RT_ROUTER_PORT"],
    [{ RT_ROUTER_PORT: "http" }, "RT_ROUTER_PORT"],
    [{ RT_ROUTER_REFRESH_MS: "10" }, "RT_ROUTER_REFRESH_MS"],
    [{ RT_ROUTER_CORS_ORIGINS: "*,https://a.example" }, "RT_ROUTER_CORS_ORIGINS"],
    [{ RT_ROUTER_CORS_ORIGINS: "https://a.example/" }, "RT_ROUTER_CORS_ORIGINS"],
    [{ RT_ROUTER_CORS_ORIGINS: "a.example" }, "RT_ROUTER_CORS_ORIGINS"],
    [{ RT_ROUTER_CORS_ORIGINS: "ftp://a.example" }, "RT_ROUTER_CORS_ORIGINS"],
    [{ RT_ROUTER_REFRESH_MS: "20000", RT_ROUTER_MAX_STALE_MS: "30000" }, "RT_ROUTER_MAX_STALE_MS"],
    [{ RT_KAFKA_BROKERS: "nope" }, "RT_KAFKA_BROKERS"],
  ];
  for (const [env, variable] of bad) {
    assert.throws(
      () => readRouterConfig(env),
      (e: unknown) => e instanceof ConfigError && e.variable === variable,
      JSON.stringify(env),
    );
  }
});
