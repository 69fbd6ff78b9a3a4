/**
 * The router's pure parts: token extraction, the mapping of verification results and lookups to
 * HTTP answers, retry hints and CORS headers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AUTH_FAILURES, type AuthFailureReason } from "../../gateway/auth.ts";
import {
  authFailureAnswer,
  errorAnswer,
  extractToken,
  lookupAnswer,
  retryAfterMs,
  type Answer,
} from "../../router/connect.ts";
import { corsHeaders } from "../../router/cors.ts";
import { ROUTER_ERRORS } from "../../router/errors.ts";

function header(a: Answer, name: string): string | undefined {
  return a.headers.find(([n]) => n === name)?.[1];
}

test("extractToken: Bearer header first, then ?token=, refusing other schemes", () => {
  const cases: [string, string | undefined, ReturnType<typeof extractToken>][] = [
    ["Bearer abc.def.ghi", undefined, { ok: true, token: "abc.def.ghi" }],
    ["bearer abc", "other", { ok: true, token: "abc" }],
    ["Bearer  abc ", undefined, { ok: true, token: "abc" }],
    ["", "q.t.x", { ok: true, token: "q.t.x" }],
    ["", "", { ok: false, missing: true, message: extractMessage("", undefined) }],
    ["", undefined, { ok: false, missing: true, message: extractMessage("", undefined) }],
    [
      "Basic dXNlcjpwYXNz",
      "q",
      { ok: false, missing: false, message: "Authorization must be: Bearer <token>" },
    ],
    ["Bearer", undefined, { ok: false, missing: false, message: "Authorization must be: Bearer <token>" }],
    [
      "Bearer a b",
      undefined,
      { ok: false, missing: false, message: "Authorization must be: Bearer <token>" },
    ],
  ];
  for (const [authorization, query, expected] of cases) {
    assert.deepEqual(extractToken(authorization, query), expected, `${authorization} / ${query}`);
  }
});

function extractMessage(authorization: string, query: string | undefined): string {
  const r = extractToken(authorization, query);
  return r.ok ? "" : r.message;
}

test("retryAfterMs: inside each 503's range, integral; none for other codes", () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 1, noNaN: true }), (r) => {
      for (const code of ["no_owner", "unavailable"] as const) {
        const range = ROUTER_ERRORS[code].retryAfterMs;
        const ms = retryAfterMs(code, () => r);
        assert.ok(ms !== null && Number.isInteger(ms) && ms >= range.min && ms <= range.max, `${code} ${ms}`);
      }
    }),
  );
  assert.equal(
    retryAfterMs("no_owner", () => 0),
    500,
  );
  assert.equal(
    retryAfterMs("no_owner", () => 0.99999999),
    2000,
  );
  assert.equal(retryAfterMs("unauthorized"), null);
});

test("errorAnswer: 503 carries retry_after_ms and Retry-After in whole seconds, rounded up", () => {
  const a = errorAnswer("no_owner", "nobody", { random: () => 0.5 });
  assert.equal(a.status, "503 Service Unavailable");
  const body = a.body as { error: string; message: string; retry_after_ms: number };
  assert.equal(body.error, "no_owner");
  assert.equal(body.retry_after_ms, 1250);
  assert.equal(header(a, "retry-after"), "2");
  assert.equal(header(a, "cache-control"), "no-store");
  assert.equal(header(a, "content-type"), "application/json");
  const exact = errorAnswer("unavailable", "down", { random: () => 0 });
  assert.equal((exact.body as { retry_after_ms: number }).retry_after_ms, 1000);
  assert.equal(header(exact, "retry-after"), "1");
  const notFound = errorAnswer("not_found", "no");
  assert.equal(notFound.status, "404 Not Found");
  assert.deepEqual(notFound.body, { error: "not_found", message: "no" });
  assert.equal(header(notFound, "retry-after"), undefined);
});

test("authFailureAnswer: expired → 401 token_expired, our faults → 503, the rest → 401 unauthorized", () => {
  for (const reason of Object.keys(AUTH_FAILURES) as AuthFailureReason[]) {
    const a = authFailureAnswer({ reason, message: `m-${reason}` }, () => 0);
    const body = a.body as { error: string; message: string };
    if (reason === "expired") {
      assert.equal(a.status, "401 Unauthorized");
      assert.equal(body.error, "token_expired");
    } else if (AUTH_FAILURES[reason].retriable) {
      assert.equal(a.status, "503 Service Unavailable", reason);
      assert.equal(body.error, "unavailable");
      assert.ok(header(a, "retry-after") !== undefined);
    } else {
      assert.equal(a.status, "401 Unauthorized", reason);
      assert.equal(body.error, "unauthorized");
      assert.equal(body.message, `m-${reason}`);
      assert.match(header(a, "www-authenticate") ?? "", /^Bearer realm="rt", error="invalid_token"$/);
    }
  }
});

test("lookupAnswer: 200 with url, user, partition and no-store; 503s for the rest", () => {
  const ok = lookupAnswer("alice", { kind: "owner", partition: 3, url: "ws://g:1/v1/ws" });
  assert.equal(ok.status, "200 OK");
  assert.deepEqual(ok.body, { url: "ws://g:1/v1/ws", user: "alice", partition: 3 });
  assert.equal(header(ok, "cache-control"), "no-store");
  const none = lookupAnswer("alice", { kind: "no_owner", partition: 3, reason: "nobody owns 3" });
  assert.equal(none.status, "503 Service Unavailable");
  assert.equal((none.body as { error: string }).error, "no_owner");
  const down = lookupAnswer("alice", { kind: "unavailable", reason: "secret detail of the cluster" });
  assert.equal((down.body as { error: string }).error, "unavailable");
  assert.doesNotMatch(JSON.stringify(down.body), /secret detail/, "Kafka details stay in logs and /readyz");
});

test("corsHeaders: none unset; * for any; a list echoes only listed origins, with Vary", () => {
  assert.deepEqual(corsHeaders(null, "https://a.example", false), []);
  assert.deepEqual(corsHeaders("*", "", false), [
    ["access-control-allow-origin", "*"],
    ["access-control-expose-headers", "Retry-After"],
  ]);
  const list = ["https://a.example", "http://localhost:3000"];
  assert.deepEqual(corsHeaders(list, "https://evil.example", false), [["vary", "Origin"]]);
  assert.deepEqual(corsHeaders(list, "", true), [["vary", "Origin"]]);
  assert.deepEqual(corsHeaders(list, "http://localhost:3000", true), [
    ["vary", "Origin"],
    ["access-control-allow-origin", "http://localhost:3000"],
    ["access-control-allow-methods", "GET, OPTIONS"],
    ["access-control-allow-headers", "Authorization"],
    ["access-control-max-age", "600"],
  ]);
});
