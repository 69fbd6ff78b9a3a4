import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadStaticSite, staticFile } from "../../router/static.ts";

test("the demo site: files by name under the prefix, nothing else", () => {
  const dir = mkdtempSync(join(tmpdir(), "rt-static-"));
  try {
    writeFileSync(join(dir, "index.html"), "<h1>hi</h1>");
    writeFileSync(join(dir, "app.js"), "export {}");
    writeFileSync(join(dir, "blob.bin"), "x");
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "secret.txt"), "no");
    const site = loadStaticSite(dir, "/demo");
    assert.equal(staticFile(site, "/demo")?.body.toString(), "<h1>hi</h1>");
    assert.equal(staticFile(site, "/demo/")?.contentType, "text/html; charset=utf-8");
    assert.equal(staticFile(site, "/demo/app.js")?.contentType, "text/javascript; charset=utf-8");
    assert.equal(staticFile(site, "/demo/blob.bin")?.contentType, "application/octet-stream");
    for (const path of [
      "/demo/sub/secret.txt",
      "/demo/../package.json",
      "/demo/missing.js",
      "/demox",
      "/",
      "/app.js",
    ]) {
      assert.equal(staticFile(site, path), undefined, path);
    }
    rmSync(join(dir, "index.html"));
    assert.throws(() => loadStaticSite(dir, "/demo"), /has no index.html/);
    assert.throws(() => loadStaticSite(join(dir, "nope"), "/demo"), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
