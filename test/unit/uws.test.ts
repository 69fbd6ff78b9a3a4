import { test } from "node:test";
import assert from "node:assert/strict";
import { binaryName, loadNativeUws } from "../../gateway/uws.ts";

test("the native uWebSockets.js binary loads (never the ws fallback)", () => {
  const uws = loadNativeUws();
  assert.equal(typeof uws.App, "function");
  // The fallback (dist/index.js) exports only App and socket helpers; getParts is native-only.
  assert.equal(typeof (uws as unknown as Record<string, unknown>).getParts, "function");
  assert.match(binaryName(), /^uws_linux_x64_115\.node$|^uws_\w+_\w+_\d+\.node$/);
});
