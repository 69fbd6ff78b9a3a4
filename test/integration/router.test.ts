/**
 * Real routers and real gateways on one real Kafka: /v1/connect sends every user to the gateway
 * that accepts it without a redirect, routers side by side agree, a gateway's SIGTERM moves the
 * answers to the survivor, no gateway (or no Kafka) gives 503 with a retry hint, and the HTTP
 * edges (401s, 404, 405, CORS, /healthz, /readyz) answer as documented.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureTopics } from "../../common/kafka/ensure-topics.ts";
import { freePort } from "../../infra/kafka/local-kafka.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import {
  askRouter,
  routerEnv,
  startRouterProc,
  type ConnectAnswer,
  type RouterProc,
} from "../helpers/router-proc.ts";
import { connectUser, token, type TestClient } from "../helpers/ws-client.ts";

const PARTITIONS = 4;
const ORIGIN = "http://app.example";

let t: TestKafka;
let gw: GatewayProc[] = [];
let routers: RouterProc[] = [];
const extraRouters: RouterProc[] = [];
const clients: TestClient[] = [];
let users: string[] = [];
const jwts = new Map<string, string>();

before(async () => {
  t = await testKafka();
  const env = gatewayEnv(t.brokers, t.prefix);
  gw = [await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-a" })];
  gw.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-b" }));
  await waitAllReady(gw);
  routers = await Promise.all([
    startRouterProc(routerEnv(t.brokers, t.prefix)),
    startRouterProc(routerEnv(t.brokers, t.prefix, { RT_ROUTER_CORS_ORIGINS: ORIGIN })),
  ]);
  users = Array.from({ length: 40 }, (_, i) => `user-${t.prefix}${i}`);
  for (const user of users) jwts.set(user, await token(user));
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all([...routers, ...extraRouters].map((r) => r.proc.stop("SIGTERM", 20_000)));
  await Promise.all(gw.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

function jwtOf(user: string): string {
  return jwts.get(user)!;
}

/** Polls `probe` until it returns a value, at most `timeoutMs`; the last failure explains a timeout. */
async function eventually<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(100);
  }
}

/** Every user's answer from `router`, or null as soon as one is not a 200 from `urls`. */
async function answersFrom(router: RouterProc, urls: readonly string[]): Promise<ConnectAnswer[] | null> {
  const answers: ConnectAnswer[] = [];
  for (const user of users) {
    const a = await askRouter(router, jwtOf(user));
    if (a.status === 503) {
      assertRetryHint(a, "no_owner");
      return null;
    }
    assert.equal(a.status, 200, JSON.stringify(a.body));
    if (!urls.includes(a.body.url as string)) return null;
    answers.push(a);
  }
  return answers;
}

function assertRetryHint(a: ConnectAnswer, error: string): void {
  assert.equal(a.status, 503);
  assert.equal(a.body.error, error, JSON.stringify(a.body));
  assert.equal(typeof a.body.message, "string");
  const ms = a.body.retry_after_ms as number;
  assert.ok(Number.isInteger(ms) && ms >= 500 && ms <= 5000, `retry_after_ms ${ms}`);
  assert.equal(a.headers.get("retry-after"), String(Math.ceil(ms / 1000)));
  assert.equal(a.headers.get("cache-control"), "no-store");
}

test("/v1/connect sends every user to the gateway that accepts it, with no redirect", async () => {
  const urls = gw.map((g) => g.url);
  // Both gateways are in the group; wait until the router has read the final assignment.
  const answers = await eventually("the router sends users to both gateways", async () => {
    const all = await answersFrom(routers[0]!, urls);
    return all !== null && urls.every((u) => all.some((a) => a.body.url === u)) ? all : null;
  });
  for (const [i, user] of users.entries()) {
    const a = answers[i]!;
    assert.equal(a.headers.get("content-type"), "application/json");
    assert.equal(a.headers.get("cache-control"), "no-store");
    assert.equal(a.headers.get("access-control-allow-origin"), null, "no CORS unless configured");
    assert.deepEqual(Object.keys(a.body).sort(), ["partition", "url", "user"]);
    assert.equal(a.body.user, user);
    assert.equal(a.body.partition, partitionForKey(user, PARTITIONS));
    const { client, welcome, hops } = await connectUser(a.body.url as string, jwtOf(user));
    clients.push(client);
    assert.deepEqual(hops, [a.body.url], `${user} was redirected: ${hops.join(" -> ")}`);
    assert.equal(welcome.user, user);
    client.close();
  }
});

test("two routers side by side give the same answers; ?token= works like the header", async () => {
  const [r0, r1] = routers as [RouterProc, RouterProc];
  for (const user of users) {
    const a = await askRouter(r0, jwtOf(user));
    const b = await askRouter(r1, jwtOf(user), { query: true });
    assert.equal(a.status, 200);
    assert.deepEqual(b.body, a.body);
  }
});

test("tokens: bad signature, expired and missing get 401; the token is never logged", async () => {
  const r = routers[0]!;
  const user = users[0]!;
  const forged = await token(user, { secret: "another-secret-that-is-at-least-32-bytes!!" });
  const bad = await askRouter(r, forged);
  assert.equal(bad.status, 401);
  assert.equal(bad.body.error, "unauthorized");
  assert.match(bad.headers.get("www-authenticate") ?? "", /^Bearer realm="rt", error="invalid_token"/);
  const badQuery = await askRouter(r, "not-a-jwt", { query: true });
  assert.equal(badQuery.status, 401);
  assert.equal(badQuery.body.error, "unauthorized");

  const expired = await askRouter(r, await token(user, { ttlS: -60 }));
  assert.equal(expired.status, 401);
  assert.equal(expired.body.error, "token_expired");
  assert.equal(typeof expired.body.message, "string");

  const missing = await askRouter(r, null);
  assert.equal(missing.status, 401);
  assert.equal(missing.body.error, "unauthorized");
  assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="rt"');

  const basic = await askRouter(r, null, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
  assert.equal(basic.status, 401);

  for (const router of routers) {
    assert.ok(!router.proc.output().includes(forged), "a token reached the router's output");
    assert.ok(!router.proc.output().includes(jwtOf(user)), "a token reached the router's output");
  }
});

test("methods and paths: POST 405, unknown path 404, /healthz and /readyz 200", async () => {
  const r = routers[0]!;
  const post = await fetch(`${r.url}/v1/connect`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwtOf(users[0]!)}` },
  });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, OPTIONS");
  assert.equal(((await post.json()) as { error: string }).error, "method_not_allowed");

  for (const path of ["/nope", "/v1/connect/extra", "/"]) {
    const res = await fetch(`${r.url}${path}`);
    assert.equal(res.status, 404, path);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(((await res.json()) as { error: string }).error, "not_found");
  }

  const health = await fetch(`${r.url}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
  const ready = await fetch(`${r.url}/readyz`);
  assert.equal(ready.status, 200);
  const readyBody = (await ready.json()) as Record<string, unknown>;
  assert.equal(readyBody.status, "ready");
  assert.equal(readyBody.partitionCount, PARTITIONS);
  assert.equal(readyBody.groupState, "Stable");
  assert.equal(readyBody.ownedPartitions, PARTITIONS);
  const postHealth = await fetch(`${r.url}/healthz`, { method: "POST" });
  assert.equal(postHealth.status, 405);
});

test("CORS: a configured origin gets the headers and a preflight; others get none", async () => {
  const [r0, r1] = routers as [RouterProc, RouterProc];
  const user = users[0]!;
  const allowed = await askRouter(r1, jwtOf(user), { headers: { origin: ORIGIN } });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get("access-control-allow-origin"), ORIGIN);
  assert.equal(allowed.headers.get("vary"), "Origin");
  const refusedAuth = await askRouter(r1, null, { headers: { origin: ORIGIN } });
  assert.equal(refusedAuth.status, 401);
  assert.equal(refusedAuth.headers.get("access-control-allow-origin"), ORIGIN, "errors are readable too");
  const other = await askRouter(r1, jwtOf(user), { headers: { origin: "http://evil.example" } });
  assert.equal(other.status, 200);
  assert.equal(other.headers.get("access-control-allow-origin"), null);

  const preflight = await fetch(`${r1.url}/v1/connect`, {
    method: "OPTIONS",
    headers: {
      origin: ORIGIN,
      "access-control-request-method": "GET",
      "access-control-request-headers": "authorization",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), ORIGIN);
  assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /GET/);
  assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/i);

  const unconfigured = await fetch(`${r0.url}/v1/connect`, {
    method: "OPTIONS",
    headers: { origin: ORIGIN },
  });
  assert.equal(unconfigured.status, 204);
  assert.equal(unconfigured.headers.get("access-control-allow-origin"), null);
});

test("after SIGTERM of one gateway, every router sends every user to the survivor", async () => {
  const [survivor, leaving] = gw as [GatewayProc, GatewayProc];
  assert.equal(await leaving.proc.stop("SIGTERM", 20_000), 0);
  for (const router of routers) {
    await eventually(`${router.url} sends everyone to ${survivor.url}`, () =>
      answersFrom(router, [survivor.url]),
    );
  }
  // The survivor accepts them (its own view of the assignment may trail the group's by a moment).
  for (const user of users.slice(0, 5)) {
    const { client, hops } = await eventually(`${survivor.url} accepts ${user}`, async () => {
      try {
        return await connectUser(survivor.url, jwtOf(user));
      } catch {
        return null;
      }
    });
    clients.push(client);
    assert.equal(hops.length, 1);
    client.close();
  }
});

test("no gateway at all: 503 no_owner with retry_after_ms and Retry-After; ready; SIGTERM exits 0", async () => {
  const prefix = `${t.prefix}none.`;
  await ensureTopics(
    t.admin,
    topicSpecs(readTopicsConfig({ RT_TOPIC_PREFIX: prefix, RT_DELIVERIES_PARTITIONS: String(PARTITIONS) })),
  );
  const r = await startRouterProc(routerEnv(t.brokers, prefix));
  extraRouters.push(r);
  const ready = await fetch(`${r.url}/readyz`);
  assert.equal(ready.status, 200, await ready.clone().text());
  for (const user of users.slice(0, 5)) {
    const a = await askRouter(r, jwtOf(user));
    assertRetryHint(a, "no_owner");
    assert.ok((a.body.retry_after_ms as number) <= 2000);
  }
  assert.equal(await r.proc.stop("SIGTERM", 20_000), 0);
});

test("Kafka unreachable: the router serves /healthz, /readyz says why, /v1/connect 503 unavailable", async () => {
  const r = await startRouterProc(routerEnv([`127.0.0.1:${await freePort()}`], t.prefix));
  extraRouters.push(r);
  assert.equal((await fetch(`${r.url}/healthz`)).status, 200);
  const ready = await fetch(`${r.url}/readyz`);
  assert.equal(ready.status, 503);
  const body = (await ready.json()) as { status: string; reason: string };
  assert.equal(body.status, "not_ready");
  assert.match(body.reason, /Kafka unreachable/);
  const a = await askRouter(r, jwtOf(users[0]!));
  assertRetryHint(a, "unavailable");
  assert.equal(await r.proc.stop("SIGTERM", 20_000), 0);
});
