/**
 * The SDK's retry of sends the server asked to try again (same id), its dedupe of re-sent copies
 * by (from, to, id), its connection states, and the token refresh over a live session (`auth`
 * before `exp`), against the scripted in-memory network of test/helpers/client-fake.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RecentIds } from "../../client/dedupe.ts";
import { REFRESH_MARGIN_MS, refreshDelayMs, tokenTimes } from "../../client/token-refresh.ts";
import { harness, until, type Frame } from "../helpers/client-fake.ts";

/** A JWT-shaped token (the client reads its claims, never its signature). */
function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.c2ln`;
}

test("a send the server asks to try again goes out again with the same id until it is acked", async () => {
  const h = harness();
  const answers: Frame[] = [
    { ok: false, error: { code: "rate_limited", message: "over 50 sends/s; retry in 20 ms" } },
    { ok: false, error: { code: "unavailable", message: "Kafka did not confirm in time" } },
    { ok: false, error: { code: "queue_full", message: "the gateway's queue is full" } },
    { ok: true, cursor: "e1:0:9" },
  ];
  h.net.onSend = (s, f) => s.serverSend({ op: "ack", id: f.id, ...answers.shift()! });
  await h.client.connect();
  const result = await h.client.send("user:alice", "t", { n: 1 }, { id: "again" });
  assert.deepEqual(result, { id: "again", cursor: "e1:0:9" });
  const sent = h.net.last.frames("send");
  assert.equal(sent.length, 4);
  for (const f of sent) assert.deepEqual(f, sent[0], "the same frame each time");
  assert.equal(h.client.pendingSends, 0);
  h.client.close();
});

test("past its deadline a retried send fails with the last server error", async () => {
  const h = harness();
  h.net.onSend = (s, f) =>
    s.serverSend({
      op: "ack",
      id: f.id,
      ok: false,
      error: { code: "unavailable", message: "Kafka is down" },
    });
  await h.client.connect();
  await assert.rejects(h.client.send("user:alice", "t", 1, { id: "doomed", timeoutMs: 1000 }), {
    code: "unavailable",
    retriable: true,
    id: "doomed",
    message: "Kafka is down",
  });
  assert.ok(h.net.last.frames("send").length >= 2, "it was tried more than once");
  assert.equal(h.client.pendingSends, 0);
  h.client.close();
});

test("no ack at all: ack_timeout carries the id, and a later send with that id goes out", async () => {
  const h = harness({ ackTimeoutMs: 40 });
  let answer = false;
  h.net.onSend = (s, f) => {
    if (answer) s.serverSend({ op: "ack", id: f.id, ok: true, cursor: "e1:0:1" });
  };
  await h.client.connect();
  const error = await h.client.send("user:alice", "t", 1).then(
    () => assert.fail("resolved"),
    (e: unknown) => e as { code: string; id: string },
  );
  assert.equal(error.code, "ack_timeout");
  assert.match(error.id, /^[a-z0-9]+-[a-z0-9]+$/);
  answer = true;
  assert.deepEqual(await h.client.send("user:alice", "t", 1, { id: error.id }), {
    id: error.id,
    cursor: "e1:0:1",
  });
  const ids = h.net.last.frames("send").map((f) => f.id);
  assert.deepEqual(ids, [error.id, error.id]);
  h.client.close();
});

test("a re-sent copy (same from, to and id, a later cursor) reaches the application once", async () => {
  const h = harness();
  await h.client.connect();
  const ev = (cursor: string, id: string, from = "alice", to = "user:bob"): Frame => ({
    op: "event",
    cursor,
    id,
    from,
    to,
    type: "chat",
    data: { id },
    ts: 1,
  });
  h.net.last.serverSend(ev("e1:0:1", "m1"));
  h.net.last.serverSend(ev("e1:0:2", "m1")); // the copy written by a resend
  h.net.last.serverSend(ev("e1:0:3", "m1", "carol")); // another sender may reuse the id
  h.net.last.serverSend(ev("e1:0:4", "m1", "alice", "room:r1")); // another target too
  h.net.last.serverSend(ev("e1:0:5", "m2"));
  assert.deepEqual(
    h.events.map((e) => e.cursor),
    ["e1:0:1", "e1:0:3", "e1:0:4", "e1:0:5"],
  );
  assert.equal(h.client.cursor, "e1:0:5", "the cursor moved past the dropped copy");
  h.client.close();

  const off = harness({ dedupeWindow: 0 });
  await off.client.connect();
  off.net.last.serverSend(ev("e1:0:1", "m1"));
  off.net.last.serverSend(ev("e1:0:2", "m1"));
  assert.equal(off.events.length, 2, "dedupeWindow 0 turns it off");
  off.client.close();
});

test("RecentIds is bounded: the oldest triple is forgotten first", () => {
  const r = new RecentIds(3);
  for (const id of ["a", "b", "c"]) assert.equal(r.seen("u", "user:v", id), false);
  assert.equal(r.seen("u", "user:v", "a"), true);
  assert.equal(r.seen("u", "user:v", "d"), false);
  assert.equal(r.size, 3);
  assert.equal(r.seen("u", "user:v", "a"), false, "a was the oldest, forgotten when d came");
  assert.equal(r.seen("u\u0000user:v", "", "d"), false, "fields cannot run into each other");
  assert.equal(new RecentIds(0).seen("u", "v", "a"), false);
});

test("states: connecting, open, reconnecting, resuming (a hello with the cursor), open, closed", async () => {
  const h = harness({ cursor: "e1:0:7" });
  await h.client.connect();
  assert.deepEqual(h.states, ["resuming", "open"], "a first connect with a stored cursor resumes");
  h.net.last.serverClose(1006);
  await until("open again", () => h.client.state === "open" && h.net.sockets.length === 2);
  h.client.close();
  assert.deepEqual(h.states, ["resuming", "open", "reconnecting", "resuming", "open", "closed"]);

  const fresh = harness();
  await fresh.client.connect();
  assert.deepEqual(fresh.states, ["open"], "connecting is the initial state");
  fresh.client.close();
});

test("token claims and the refresh time: 80% of the lifetime, 60 s before exp, never before half", () => {
  const now = 1_800_000_000_000;
  assert.deepEqual(tokenTimes(jwt({ exp: 1_800_003_600, iat: 1_800_000_000, sub: "u" })), {
    expMs: 1_800_003_600_000,
    iatMs: 1_800_000_000_000,
  });
  assert.deepEqual(tokenTimes(jwt({ exp: 5 })), { expMs: 5000, iatMs: undefined });
  for (const bad of ["", "a.b", "a.%%%.c", jwt({ sub: "u" }), jwt({ exp: "soon" }), "a.bnVsbA.c"]) {
    assert.equal(tokenTimes(bad), undefined, bad);
  }
  const hour = { expMs: now + 3_600_000, iatMs: now };
  assert.equal(refreshDelayMs(hour, 0, now), 0.8 * 3_600_000, "a 1 h token: at 48 min");
  const tenMin = { expMs: now + 600_000, iatMs: now };
  assert.equal(refreshDelayMs(tenMin, 0, now), 480_000);
  const twoMin = { expMs: now + 120_000, iatMs: now };
  assert.equal(refreshDelayMs(twoMin, 0, now), 120_000 - REFRESH_MARGIN_MS, "60 s before exp");
  const short = { expMs: now + 30_000, iatMs: now };
  assert.equal(refreshDelayMs(short, 0, now), 15_000, "never before half the lifetime");
  assert.equal(refreshDelayMs({ expMs: now + 600_000, iatMs: undefined }, now, now), 480_000, "no iat");
  assert.equal(refreshDelayMs(hour, 0, now + 4_000_000), 0, "overdue: now");
});

test("a token provider's token is refreshed with auth before it expires; a refusal is reported", async () => {
  const nowS = Math.floor(Date.now() / 1000);
  const tokens = [
    jwt({ sub: "bob", iat: nowS - 100, exp: nowS + 20 }), // due for refresh at once
    jwt({ sub: "bob", iat: nowS, exp: nowS + 3600 }),
  ];
  let calls = 0;
  const h = harness({ token: () => tokens[Math.min(calls++, 1)]! });
  const auths: Frame[] = [];
  h.net.onOther = (s, f) => {
    if (f.op !== "auth") return;
    auths.push(f);
    s.serverSend({ op: "ack", id: f.id, ok: true });
  };
  const refreshed: (number | undefined)[] = [];
  h.client.on("token", (t) => refreshed.push(t.expMs));
  await h.client.connect();
  assert.equal(h.net.last.frames("hello")[0]!.token, tokens[0]);
  await until("the refresh", () => refreshed.length === 1);
  assert.equal(auths.length, 1);
  assert.equal(auths[0]!.token, tokens[1]);
  assert.match(auths[0]!.id, /^[A-Za-z0-9_.:-]{1,64}$/);
  assert.deepEqual(refreshed, [(nowS + 3600) * 1000]);
  // A reconnect after the refresh says hello with the new token.
  h.net.last.serverClose(4005, "restart retry_after_ms=0");
  await until("open again", () => h.client.state === "open" && h.net.sockets.length === 2);
  assert.equal(h.net.last.frames("hello")[0]!.token, tokens[1]);
  h.client.close();

  const refused = harness({ token: () => jwt({ sub: "bob", iat: nowS - 100, exp: nowS + 20 + calls++ }) });
  refused.net.onOther = (s, f) => {
    if (f.op === "auth")
      s.serverSend({ op: "ack", id: f.id, ok: false, error: { code: "forbidden", message: "other user" } });
  };
  await refused.client.connect();
  await until("the refusal", () => refused.errors.some((e) => e.code === "forbidden"));
  assert.equal(refused.client.state, "open", "the session runs on until the old exp");
  refused.client.close();

  const fixed = harness({ token: jwt({ sub: "bob", iat: nowS - 100, exp: nowS + 20 }) });
  await fixed.client.connect();
  assert.equal(fixed.net.last.frames("auth").length, 0, "a fixed string token cannot be refreshed");
  fixed.client.close();
});
