import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CLOSE_CODES,
  CLOSE_CODE_LIST,
  CLOSE_REASON_MAX_BYTES,
  closeCodeByName,
  closeCodeByNumber,
  formatCloseReason,
  parseRetryAfterMs,
  type CloseName,
} from "../../schemas/close-codes.ts";
import { ERROR_CODES, ERROR_CODE_LIST, isErrorCode } from "../../schemas/errors.ts";

test("close codes are unique, in 4000-4999, and documented", () => {
  const numbers = new Set<number>();
  for (const info of CLOSE_CODE_LIST) {
    assert.ok(info.code >= 4000 && info.code <= 4999, info.name);
    assert.ok(!numbers.has(info.code), `duplicate ${info.code}`);
    numbers.add(info.code);
    assert.ok(info.description.length > 0);
    assert.ok(["no", "immediately", "backoff", "after_hint"].includes(info.reconnect));
    if (info.reconnect === "no") assert.ok(!info.viaRouter && !info.refreshToken, info.name);
  }
  assert.equal(CLOSE_CODE_LIST.length, Object.keys(CLOSE_CODES).length);
});

test("the design's close codes say what the client must do", () => {
  const expected: ReadonlyArray<readonly [CloseName, number, string, boolean, boolean]> = [
    ["unauthorized", 4001, "no", false, false],
    ["bad_frame", 4002, "no", false, false],
    ["forbidden", 4003, "no", false, false],
    ["moved", 4004, "immediately", false, true],
    ["restart", 4005, "after_hint", false, true],
    ["slow", 4008, "backoff", false, false],
    ["too_big", 4009, "backoff", false, false],
    ["token_expired", 4010, "immediately", true, false],
    ["hello_timeout", 4011, "backoff", false, false],
    ["too_many_connections", 4012, "backoff", false, false],
    ["rate_limited", 4029, "backoff", false, false],
    ["server_error", 4500, "backoff", false, true],
  ];
  for (const [name, code, reconnect, refreshToken, viaRouter] of expected) {
    const info = closeCodeByName(name);
    assert.deepEqual(
      {
        code: info.code,
        reconnect: info.reconnect,
        refreshToken: info.refreshToken,
        viaRouter: info.viaRouter,
      },
      { code, reconnect, refreshToken, viaRouter },
      name,
    );
    assert.equal(closeCodeByNumber(code), info);
  }
  assert.equal(closeCodeByNumber(1000), undefined);
  assert.equal(closeCodeByNumber(4000), undefined);
});

test("close reasons carry the name and an optional delay hint", () => {
  assert.equal(formatCloseReason("moved"), "moved");
  assert.equal(formatCloseReason("restart", 1234), "restart retry_after_ms=1234");
  assert.equal(parseRetryAfterMs("restart retry_after_ms=1234"), 1234);
  assert.equal(parseRetryAfterMs(formatCloseReason("restart", 0)), 0);
  for (const reason of [
    "",
    "restart",
    "restart retry_after_ms=",
    "restart retry_after_ms=-1",
    "restart retry_after_ms=01",
    "restart retry_after_ms=1x",
    "restart xretry_after_ms=5",
    "restart retry_after_ms=9999999999",
  ]) {
    assert.equal(parseRetryAfterMs(reason), undefined, reason);
  }
  assert.throws(() => formatCloseReason("restart", -1), RangeError);
  assert.throws(() => formatCloseReason("restart", 1.5), RangeError);
  for (const info of CLOSE_CODE_LIST) {
    assert.ok(Buffer.byteLength(formatCloseReason(info.name, 999_999_999)) <= CLOSE_REASON_MAX_BYTES);
  }
});

test("error codes: the design's codes, each described", () => {
  for (const code of [
    "bad_json",
    "bad_frame",
    "unknown_op",
    "bad_target",
    "too_big",
    "not_authenticated",
    "already_authenticated",
    "unauthorized",
    "forbidden",
    "rate_limited",
    "queue_full",
    "unavailable",
    "internal",
    "bad_cursor",
    "token_expired",
  ]) {
    assert.ok(isErrorCode(code), code);
  }
  for (const code of ERROR_CODE_LIST) {
    assert.ok(ERROR_CODES[code].description.length > 0);
    assert.match(code, /^[a-z_]+$/);
  }
  assert.equal(isErrorCode("toString"), false);
  assert.equal(isErrorCode(1), false);
});
