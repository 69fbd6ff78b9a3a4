/**
 * The reconnecting client's loop against a scripted in-memory WebSocket and fetch: redirects,
 * close-code policy, resend of unacked sends, token refresh, the router's answers, limits.
 * The real gateways are in test/integration/client.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { RealtimeClient } from "../../client/client.ts";
import type { FetchLike } from "../../client/router.ts";
import { GW, GW_B, event, harness, until, welcomeFrame, type Frame } from "../helpers/client-fake.ts";

test("welcome, send and ack, events deduped by cursor", async () => {
  const h = harness();
  h.net.onSend = (s, f) => s.serverSend({ op: "ack", id: f.id, ok: true, cursor: "e1:0:5" });
  const welcome = await h.client.connect();
  assert.equal(welcome.user, "bob");
  assert.equal(welcome.url, GW);
  assert.equal(h.client.state, "open");
  assert.deepEqual(h.net.last.frames("hello"), [{ op: "hello", token: "tok" }]);
  assert.deepEqual(await h.client.send("user:alice", "chat", { x: 1 }, { id: "m1" }), {
    id: "m1",
    cursor: "e1:0:5",
  });
  for (const c of ["e1:0:1", "e1:0:2", "e1:0:2", "e1:0:1", "e1:0:3"]) h.net.last.serverSend(event(c, c));
  assert.deepEqual(
    h.events.map((e) => e.cursor),
    ["e1:0:1", "e1:0:2", "e1:0:3"],
  );
  assert.equal(h.client.cursor, "e1:0:3");
  h.client.close();
  h.client.close();
  assert.equal(h.closed.length, 1);
  assert.deepEqual(h.closed[0], { reason: "client_closed" });
  assert.deepEqual(h.net.last.closedByClient, { code: 1000, reason: "" });
  assert.deepEqual(h.states, ["open", "closed"]);
});

test("a failed ack rejects with the server's code; bad arguments throw at once", async () => {
  const h = harness();
  h.net.onSend = (s, f) =>
    s.serverSend({ op: "ack", id: f.id, ok: false, error: { code: "forbidden", message: "not yours" } });
  await h.client.connect();
  await assert.rejects(h.client.send("user:alice", "chat", 1, { id: "f1" }), {
    code: "forbidden",
    retriable: false,
    id: "f1",
    message: "not yours",
  });
  assert.throws(() => h.client.send("bob", "chat", 1), { code: "bad_target", retriable: false });
  assert.throws(() => h.client.send("user:alice", "bad type", 1), { code: "bad_frame" });
  assert.throws(() => h.client.send("user:alice", "t", 1, { id: "no spaces" }), { code: "bad_frame" });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  assert.throws(() => h.client.send("user:alice", "t", undefined as any), { code: "bad_frame" });
  const cyclic: Frame = {};
  cyclic.self = cyclic;
  assert.throws(() => h.client.send("user:alice", "t", cyclic), { code: "bad_frame" });
  assert.throws(() => h.client.join("no spaces allowed"), { code: "bad_target", message: /room must be/ });
  assert.throws(() => h.client.leave(""), { code: "bad_target" });
  assert.throws(() => h.client.subscribe("a b"), { code: "bad_target", message: /channel must be/ });
  assert.throws(() => h.client.unsubscribe("x".repeat(129)), { code: "bad_target" });
  await assert.rejects(h.client.send("user:alice", "t", "x".repeat(2000)), { code: "too_big" });
  h.client.close();
  await assert.rejects(h.client.send("user:alice", "t", 1), { code: "client_closed" });
});

test("sends queue while not open, then go out in order after the welcome; the queue is bounded", async () => {
  const h = harness({ maxPendingSends: 3 });
  const acked: string[] = [];
  h.net.onSend = (s, f) => s.serverSend({ op: "ack", id: f.id, ok: true });
  const sends = ["q1", "q2", "q3"].map((id) =>
    h.client.send("user:alice", "t", id, { id }).then(() => acked.push(id)),
  );
  await assert.rejects(h.client.send("user:alice", "t", 4), { code: "queue_full" });
  await assert.rejects(h.client.send("user:alice", "t", 1, { id: "q1" }), { code: "duplicate_id" });
  await h.client.connect();
  await Promise.all(sends);
  assert.deepEqual(acked, ["q1", "q2", "q3"]);
  assert.deepEqual(
    h.net.last.frames("send").map((f) => f.id),
    ["q1", "q2", "q3"],
  );
  h.client.close();
});

test("no ack in time rejects with ack_timeout", async () => {
  const h = harness({ ackTimeoutMs: 30 });
  await h.client.connect();
  await assert.rejects(h.client.send("user:alice", "t", 1), { code: "ack_timeout", retriable: true });
  assert.equal(h.client.pendingSends, 0);
  h.client.close();
});

test("redirects are followed, and a redirect loop goes back to the start with backoff", async () => {
  const h = harness();
  h.net.onHello = (s) => {
    if (s.url === GW) s.serverSend({ op: "redirect", url: GW_B });
    else s.serverSend(welcomeFrame());
  };
  const w = await h.client.connect();
  assert.equal(w.url, GW_B);
  assert.deepEqual(
    h.net.sockets.map((s) => s.url),
    [GW, GW_B],
  );
  h.client.close();

  const loop = harness({ maxRedirects: 2 });
  loop.net.onHello = (s) => s.serverSend({ op: "redirect", url: s.url === GW ? GW_B : GW });
  void loop.client.connect().catch(() => {});
  await until("a redirect_loop error", () => loop.errors.some((e) => e.code === "redirect_loop"));
  await until("a second round", () => loop.net.sockets.length >= 4);
  loop.client.close();
  assert.deepEqual(
    loop.net.sockets.slice(0, 4).map((s) => s.url),
    [GW, GW_B, GW, GW],
    "3 sockets (2 hops), then back to the configured gateway",
  );
  const bad = harness();
  bad.net.onHello = (s) => s.serverSend({ op: "redirect", url: "http://not-a-ws" });
  void bad.client.connect().catch(() => {});
  await until("an error", () => bad.errors.some((e) => e.code === "bad_server_frame"));
  bad.client.close();
});

test("after a restart close: wait the hint, resume with the cursor, re-send unacked sends with the same id", async () => {
  const h = harness();
  let acking = false;
  h.net.onSend = (s, f) => {
    if (acking) s.serverSend({ op: "ack", id: f.id, ok: true });
  };
  await h.client.connect();
  h.net.last.serverSend(event("e1:2:40", "x"));
  const pending = h.client.send("user:alice", "t", "hello", { id: "keep-me" });
  await until("the send on the wire", () => h.net.last.frames("send").length === 1);
  const first = h.net.last;
  const t0 = Date.now();
  first.serverClose(4005, "restart retry_after_ms=60");
  await until("the state reconnecting", () => h.client.state !== "open");
  acking = true;
  await pending;
  assert.ok(Date.now() - t0 >= 55, "waited the hint");
  const second = h.net.last;
  assert.notEqual(second, first);
  assert.equal(second.url, GW, "via the router: back to the configured gateway");
  assert.deepEqual(second.frames("hello")[0], { op: "hello", token: "tok", cursor: "e1:2:40" });
  assert.deepEqual(second.frames("send")[0], first.frames("send")[0], "same frame, same id");
  assert.deepEqual(h.states, ["open", "reconnecting", "resuming", "open"]);
  h.client.close();
});

test("moved reconnects at once, and backs off when it repeats", async () => {
  const h = harness({ backoff: { baseMs: 80, capMs: 80 } });
  await h.client.connect();
  let moves = 2;
  h.net.onHello = (s) => {
    if (moves-- > 0) s.serverClose(4004, "moved");
    else s.serverSend(welcomeFrame());
  };
  const times: number[] = [];
  h.client.on("state", () => times.push(Date.now()));
  const t0 = Date.now();
  h.net.last.serverClose(4004, "moved");
  await until("open again", () => h.client.state === "open" && h.net.sockets.length === 4);
  assert.ok(Date.now() - t0 >= 40, "the repeated moved waited a backoff (random 0.5 of 80 ms)");
  h.client.close();
});

test("a 'no' close code stops for good and fails the pending sends", async () => {
  const h = harness();
  h.net.onHello = (s) => {
    s.serverSend({ op: "error", code: "unauthorized", message: "bad signature" });
    s.serverClose(4001, "unauthorized");
  };
  const pending = h.client.send("user:alice", "t", 1);
  await assert.rejects(h.client.connect(), { code: "unauthorized" });
  await assert.rejects(pending, { code: "unauthorized" });
  await sleep(50);
  assert.equal(h.net.sockets.length, 1, "no reconnect");
  assert.equal(h.client.state, "closed");
  assert.equal(h.closed.length, 1);
  assert.equal(h.closed[0]!.reason, "unauthorized");
  assert.equal(h.closed[0]!.code, 4001);
  assert.equal(h.closed[0]!.error?.message, "bad signature");
});

test("token_expired: a provider is asked again once; a fixed token stops", async () => {
  let n = 0;
  const h = harness({ token: async () => `tok${++n}` });
  await h.client.connect();
  h.net.onHello = (s, hello) => {
    if (hello.token === "tok2") s.serverSend(welcomeFrame());
    else s.serverClose(4010, "token_expired");
  };
  h.net.last.serverClose(4010, "token_expired");
  await until("open with tok2", () => h.client.state === "open" && h.net.sockets.length === 2);
  assert.equal(h.net.last.frames("hello")[0]!.token, "tok2");
  // Expired again, and the refreshed token is expired too: stop instead of looping.
  h.net.last.serverClose(4010, "token_expired");
  await until("closed", () => h.client.state === "closed");
  assert.equal(h.net.sockets.length, 3);
  assert.equal(h.closed[0]!.reason, "token_expired");

  const fixed = harness();
  await fixed.client.connect();
  fixed.net.last.serverClose(4010, "token_expired");
  await until("closed", () => fixed.client.state === "closed");
  assert.equal(fixed.net.sockets.length, 1);
  assert.equal(fixed.closed[0]!.reason, "token_expired");
});

test("a dropped connection backs off and goes back to the start; a silent one times out", async () => {
  const h = harness({ connectTimeoutMs: 40 });
  let silent = true;
  h.net.onHello = (s) => {
    if (!silent) s.serverSend(welcomeFrame());
  };
  void h.client.connect().catch(() => {});
  await until("a connect_timeout", () => h.errors.some((e) => e.code === "connect_timeout"));
  silent = false;
  await h.client.connect();
  assert.ok(h.net.sockets[0]!.closedByClient !== null, "the silent socket was closed");
  h.net.onConnect = (s) => s.serverClose(1006);
  h.net.last.serverClose(1006);
  await until("several refused attempts", () => h.net.sockets.length >= 4);
  h.net.onConnect = (s) => s.open();
  await until("open again", () => h.client.state === "open");
  h.client.close();
});

test("app-level heartbeat: pings, and drops a connection that went silent", async () => {
  const h = harness({ pingIntervalMs: 20 });
  await h.client.connect();
  await until("a ping", () => h.net.last.frames("ping").length >= 1);
  await until("a heartbeat_timeout", () => h.errors.some((e) => e.code === "heartbeat_timeout"), 2000);
  await until("open again", () => h.client.state === "open" && h.net.sockets.length >= 2);
  h.client.close();
});

test("server pings are answered; unreadable frames drop the socket", async () => {
  const h = harness();
  await h.client.connect();
  h.net.last.serverSend({ op: "ping", id: "p9" });
  await until("a pong", () => h.net.last.frames("pong").length === 1);
  assert.deepEqual(h.net.last.frames("pong")[0], { op: "pong", id: "p9" });
  h.net.last.serverSend({ op: "some_future_op" });
  assert.equal(h.client.state, "open", "unknown ops are ignored");
  h.net.last.dispatch("message", { data: "{not json" });
  await until("reconnected", () => h.net.sockets.length === 2 && h.client.state === "open");
  assert.ok(h.errors.some((e) => e.code === "bad_server_frame"));
  h.client.close();
});

test("recovered:false and a change of log surface resync", async () => {
  const h = harness({ cursor: "e1:1:10" });
  h.net.onHello = (s) => s.serverSend(welcomeFrame({ cursor: "e1:1:20", recovered: false }));
  const w = await h.client.connect();
  assert.equal(w.recovered, false);
  assert.equal(h.net.last.frames("hello")[0]!.cursor, "e1:1:10");
  assert.deepEqual(h.resyncs, ["not_recovered"]);
  h.net.last.serverSend(event("e2:1:0", "a"));
  assert.deepEqual(h.resyncs, ["not_recovered", "log_changed"]);
  assert.equal(h.events.length, 1);
  assert.equal(h.client.cursor, "e2:1:0");
  h.client.close();
  assert.throws(
    () => new RealtimeClient({ gatewayUrl: GW, token: "t", cursor: "nope", WebSocket: h.net.WebSocket }),
  );
  assert.throws(() => new RealtimeClient({ token: "t", WebSocket: h.net.WebSocket }), TypeError);
  assert.throws(
    () => new RealtimeClient({ routerUrl: "ftp://r", token: "t", WebSocket: h.net.WebSocket }),
    /routerUrl must be an http/,
  );
  assert.throws(() => new RealtimeClient({ gatewayUrl: GW, token: "", WebSocket: h.net.WebSocket }), {
    name: "TypeError",
    message: "token must not be empty",
  });
  assert.throws(() => new RealtimeClient({ gatewayUrl: "http://x", token: "t", WebSocket: h.net.WebSocket }));
});

/** A fetch that answers from a script, and records what it was asked. */
function fakeFetch(answers: Array<{ status: number; body: Frame; headers?: Record<string, string> }>) {
  const calls: { url: string; authorization: string | undefined }[] = [];
  const fetch: FetchLike = async (url, init) => {
    calls.push({ url, authorization: init.headers["authorization"] });
    const a = answers.length > 1 ? answers.shift()! : answers[0]!;
    return {
      status: a.status,
      headers: { get: (name: string) => a.headers?.[name.toLowerCase()] ?? null },
      text: async () => JSON.stringify(a.body),
    };
  };
  return { fetch, calls };
}

test("router mode: 503 waits its hint, 200 names the gateway, moved asks again", async () => {
  const { fetch, calls } = fakeFetch([
    { status: 503, body: { error: "no_owner", retry_after_ms: 40 }, headers: { "retry-after": "1" } },
    { status: 200, body: { url: GW_B, user: "bob", partition: 1 } },
  ]);
  const h = harness({ routerUrl: "http://router.test/", fetch });
  const t0 = Date.now();
  const w = await h.client.connect();
  assert.ok(Date.now() - t0 >= 35, "waited retry_after_ms");
  assert.equal(w.url, GW_B);
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[0], { url: "http://router.test/v1/connect", authorization: "Bearer tok" });
  h.net.last.serverClose(4004, "moved");
  await until("asked the router again", () => calls.length === 3 && h.client.state === "open");
  h.client.close();
});

test("router mode: token_expired refreshes once, unauthorized stops, failures back off", async () => {
  const expired = fakeFetch([
    { status: 401, body: { error: "token_expired" } },
    { status: 200, body: { url: GW, user: "bob", partition: 0 } },
  ]);
  let n = 0;
  const h = harness({ routerUrl: "http://r.test", fetch: expired.fetch, token: () => `tok${++n}` });
  await h.client.connect();
  assert.deepEqual(
    expired.calls.map((c) => c.authorization),
    ["Bearer tok1", "Bearer tok2"],
  );
  h.client.close();

  const denied = fakeFetch([{ status: 401, body: { error: "unauthorized" } }]);
  const d = harness({ routerUrl: "http://r.test", fetch: denied.fetch });
  await assert.rejects(d.client.connect(), { code: "unauthorized" });
  assert.equal(d.closed[0]!.reason, "unauthorized");
  assert.equal(d.net.sockets.length, 0);
  assert.equal(denied.calls.length, 1);

  const stillExpired = fakeFetch([{ status: 401, body: { error: "token_expired" } }]);
  const e = harness({ routerUrl: "http://r.test", fetch: stillExpired.fetch, token: () => "old" });
  await assert.rejects(e.client.connect(), { code: "token_expired" });
  assert.equal(stillExpired.calls.length, 2, "refreshed once, then stopped");

  const flaky = fakeFetch([
    { status: 500, body: {} },
    { status: 200, body: { nope: 1 } },
    { status: 200, body: { url: GW, user: "bob", partition: 0 } },
  ]);
  const f = harness({ routerUrl: "http://r.test", fetch: flaky.fetch });
  await f.client.connect();
  assert.equal(f.errors.filter((x) => x.code === "router_error").length, 2);
  f.client.close();
});

test("close() during a backoff wait or a router request ends at once, with no reconnect after", async () => {
  const h = harness({ backoff: { baseMs: 10_000, capMs: 10_000 } });
  h.net.onConnect = (s) => s.serverClose(1006);
  void h.client.connect().catch(() => {});
  await until("first attempt failed", () => h.client.state === "connecting" && h.net.sockets.length === 1);
  await sleep(10);
  h.client.close();
  assert.equal(h.client.state, "closed");
  await sleep(20);
  assert.equal(h.net.sockets.length, 1);

  let aborted = false;
  const hanging: FetchLike = (_url, init) =>
    new Promise((_resolve, reject) =>
      init.signal?.addEventListener("abort", () => {
        aborted = true;
        reject(new Error("aborted"));
      }),
    );
  const r = harness({ routerUrl: "http://r.test", fetch: hanging });
  const connecting = r.client.connect();
  await sleep(10);
  r.client.close();
  await assert.rejects(connecting, { code: "client_closed" });
  await until("the request aborted", () => aborted);
});
