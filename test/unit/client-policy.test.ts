import { test } from "node:test";
import assert from "node:assert/strict";
import { CLOSE_CODE_LIST, formatCloseReason } from "../../schemas/close-codes.ts";
import { MAX_HINT_MS, closeName, decideOnClose, delayMs } from "../../client/policy.ts";

test("every code of the close-code table is obeyed as written", () => {
  for (const info of CLOSE_CODE_LIST) {
    const d = decideOnClose(info.code, formatCloseReason(info.name));
    assert.equal(d.name, info.name);
    assert.equal(d.code, info.code);
    if (info.reconnect === "no") {
      assert.equal(d.action, "stop", info.name);
      continue;
    }
    assert.equal(d.action, "reconnect", info.name);
    if (d.action !== "reconnect") continue;
    assert.equal(d.viaRouter, info.viaRouter, info.name);
    assert.equal(d.refreshToken, info.refreshToken, info.name);
    const expectedWait = { immediately: "now", backoff: "backoff", after_hint: "backoff" }[info.reconnect];
    assert.equal(d.wait.kind, expectedWait, `${info.name}: no hint in the reason, so backoff`);
  }
});

test("the table's decisions, spelled out", () => {
  const table: ReadonlyArray<readonly [number, string, string, string?, boolean?, boolean?]> = [
    [4001, "unauthorized", "stop"],
    [4002, "bad_frame", "stop"],
    [4003, "forbidden", "stop"],
    [4004, "moved", "reconnect", "now", true, false],
    [4005, "restart", "reconnect", "backoff", true, false],
    [4008, "slow", "reconnect", "backoff", false, false],
    [4009, "too_big", "reconnect", "backoff", false, false],
    [4010, "token_expired", "reconnect", "now", false, true],
    [4011, "hello_timeout", "reconnect", "backoff", false, false],
    [4012, "too_many_connections", "reconnect", "backoff", false, false],
    [4029, "rate_limited", "reconnect", "backoff", false, false],
    [4500, "server_error", "reconnect", "backoff", true, false],
  ];
  for (const [code, name, action, wait, viaRouter, refreshToken] of table) {
    const d = decideOnClose(code, name);
    assert.equal(d.name, name);
    assert.equal(d.action, action, name);
    if (d.action === "reconnect") {
      assert.deepEqual([d.wait.kind, d.viaRouter, d.refreshToken], [wait, viaRouter, refreshToken], name);
    }
  }
});

test("after_hint waits the hint of the close reason", () => {
  const d = decideOnClose(4005, formatCloseReason("restart", 1234));
  assert.equal(d.action, "reconnect");
  if (d.action === "reconnect") assert.deepEqual(d.wait, { kind: "hint", ms: 1234 });
  const zero = decideOnClose(4005, "restart retry_after_ms=0");
  if (zero.action === "reconnect") assert.deepEqual(zero.wait, { kind: "hint", ms: 0 });
  const huge = decideOnClose(4005, "restart retry_after_ms=999999999");
  if (huge.action === "reconnect") assert.deepEqual(huge.wait, { kind: "hint", ms: MAX_HINT_MS }, "capped");
  for (const bad of [
    "restart retry_after_ms=-1",
    "restart retry_after_ms=abc",
    "restart retry_after_ms=01",
    "",
  ]) {
    const d2 = decideOnClose(4005, bad);
    assert.ok(d2.action === "reconnect" && d2.wait.kind === "backoff", bad);
  }
});

test("standard and unknown codes back off via the router; only our own 1000 stops", () => {
  assert.deepEqual(decideOnClose(1000, "", true), { action: "stop", name: "normal", code: 1000 });
  for (const code of [1000, 1001, 1002, 1005, 1006, 1008, 1011, 1012, 1013, 1015, 3000, 4000, 4444, 4999]) {
    const d = decideOnClose(code, "whatever retry_after_ms=5");
    assert.equal(d.action, "reconnect", String(code));
    if (d.action !== "reconnect") continue;
    assert.deepEqual([d.wait.kind, d.viaRouter, d.refreshToken], ["backoff", true, false], String(code));
  }
  assert.equal(closeName(1006), "abnormal");
  assert.equal(closeName(1012), "service_restart");
  assert.equal(closeName(4005), "restart");
  assert.equal(closeName(4444), "close_4444");
});

test("'now' is honoured once per outage, then backs off", () => {
  let calls = 0;
  const next = () => {
    calls += 1;
    return 777;
  };
  assert.equal(delayMs({ kind: "now" }, 0, next), 0);
  assert.equal(calls, 0);
  assert.equal(delayMs({ kind: "now" }, 1, next), 777);
  assert.equal(delayMs({ kind: "backoff" }, 0, next), 777);
  assert.equal(delayMs({ kind: "hint", ms: 42 }, 5, next), 42);
  assert.equal(calls, 2);
});
