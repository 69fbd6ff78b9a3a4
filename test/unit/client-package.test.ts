/**
 * The client SDK as its npm package (`npm run build:client`): builds it into a throwaway
 * node_modules/@realtime-backbone/client, then uses it the way a consumer would: plain Node (no
 * tsx) imports it by name and talks to a real `ws` server, the bundle is checked for anything a
 * browser cannot load, tsc type-checks consumer files against the built declarations (browser
 * with bundler resolution, Node with nodenext and `ws`), and `npm pack` lists what ships.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  CLIENT_DIR,
  buildClient,
  rewriteDeclarationSpecifiers,
  type ClientBuild,
} from "../../scripts/client-build.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PACKAGE_NAME = "@realtime-backbone/client";
const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");

// Inside the repo (.cache/), so `ws`, `@types/node` and `@types/ws` resolve from its node_modules
// while the package resolves from the throwaway one, as it would once installed.
let work = "";
let pkgDir = "";
let built: ClientBuild;

before(async () => {
  mkdirSync(join(REPO_ROOT, ".cache"), { recursive: true });
  work = mkdtempSync(join(REPO_ROOT, ".cache", "client-package-"));
  pkgDir = join(work, "node_modules", ...PACKAGE_NAME.split("/"));
  mkdirSync(pkgDir, { recursive: true });
  for (const name of ["package.json", "README.md", "LICENSE"])
    copyFileSync(join(CLIENT_DIR, name), join(pkgDir, name));
  built = await buildClient(join(pkgDir, "dist"));
});

after(() => {
  if (work !== "") rmSync(work, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[], cwd: string, timeoutMs = 20_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: "false" };
  delete env["NODE_OPTIONS"]; // no tsx or other loader in the child: it must run as published
  return new Promise((done, fail) => {
    const [command, ...rest] = args;
    const child = spawn(command!, rest, { cwd, env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

test("rewriteDeclarationSpecifiers: relative .ts specifiers become .js, nothing else changes", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    [`import type { A } from "./a.ts";`, `import type { A } from "./a.js";`],
    [`export * from '../schemas/frames.ts';`, `export * from '../schemas/frames.js';`],
    [`export { B } from "./b.ts";`, `export { B } from "./b.js";`],
    [`type C = import("./c.ts").C;`, `type C = import("./c.js").C;`],
    [`import x from "pkg.ts";`, `import x from "pkg.ts";`], // a package name, not a relative path
    [`import y from "./y.d.ts.js";`, `import y from "./y.d.ts.js";`],
    [`/** see "./z.ts" */`, `/** see "./z.ts" */`], // not an import
  ];
  for (const [input, expected] of cases) assert.equal(rewriteDeclarationSpecifiers(input), expected, input);
});

test("the package holds one ES module, its source map and declarations", () => {
  assert.ok(built.files.includes("index.js") && built.files.includes("index.js.map"), built.files.join(" "));
  assert.ok(built.files.includes("index.d.ts") && built.files.includes("types/client/index.d.ts"));
  assert.deepEqual(
    built.files.filter(
      (f) => !/^(index\.(js|js\.map|d\.ts)|types\/(client|schemas)\/[a-z-]+\.d\.ts)$/.test(f),
    ),
    [],
    "nothing else in dist/",
  );
  for (const file of built.files.filter((f) => f.endsWith(".d.ts"))) {
    const text = readFileSync(join(pkgDir, "dist", file), "utf8");
    assert.doesNotMatch(
      text,
      /(from|import\()\s*["']\.{1,2}\/[^"']*\.ts["']/,
      `${file}: a .ts specifier left`,
    );
  }
  const map = JSON.parse(readFileSync(join(pkgDir, "dist", "index.js.map"), "utf8")) as {
    sources: string[];
    sourcesContent: string[];
  };
  assert.ok(
    map.sources.every((s) => /^\.\.\/src\/(client|schemas)\/[a-z-]+\.ts$/.test(s)),
    map.sources.join(),
  );
  assert.equal(map.sourcesContent.length, map.sources.length);
});

test("the bundle is browser-safe: no imports at all, no require, no Node globals", () => {
  const js = readFileSync(join(pkgDir, "dist", "index.js"), "utf8");
  assert.doesNotMatch(js, /["']node:/, "a node: import");
  assert.doesNotMatch(js, /\brequire\s*\(/, "a require(");
  assert.doesNotMatch(js, /^\s*import[\s{*"']/m, "a static import");
  assert.doesNotMatch(js, /\bimport\s*\(/, "a dynamic import");
  assert.doesNotMatch(js, /\bfrom\s*["'](?:ws|\.{0,2}\/)/, "an import from ws or a file");
  assert.doesNotMatch(js, /\b(process|Buffer|__dirname|__filename|global)\s*\./, "a Node global");
  assert.match(js, /^export \{/m, "ESM exports");
});

test("plain Node imports the package by name and it talks to a real ws server", async () => {
  const script = join(work, "node-consumer.mjs");
  writeFileSync(
    script,
    `
import * as sdk from "${PACKAGE_NAME}";
import WebSocket, { WebSocketServer } from "ws";
const { RealtimeClient, RealtimeError, createClient } = sdk;
const out = { resolved: import.meta.resolve("${PACKAGE_NAME}"), exports: Object.keys(sdk).sort(), thrown: {} };
const attempt = (name, options) => {
  try { new RealtimeClient(options); out.thrown[name] = null; }
  catch (e) { out.thrown[name] = e.constructor.name + ": " + e.message; }
};
attempt("ftpRouter", { routerUrl: "ftp://rt.example.com", token: "t", WebSocket });
attempt("httpGateway", { gatewayUrl: "http://gw.example.com/v1/ws", token: "t", WebSocket });
attempt("emptyToken", { routerUrl: "https://rt.example.com", token: "", WebSocket });
attempt("good", { routerUrl: "https://rt.example.com", token: "t", WebSocket });
if (globalThis.WebSocket === undefined) attempt("noWebSocket", { routerUrl: "https://rt.example.com", token: "t" });

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
await new Promise((r) => server.once("listening", r));
const frames = [];
server.on("connection", (socket) => socket.on("message", (raw) => {
  const f = JSON.parse(String(raw));
  frames.push(f);
  if (f.op === "hello") socket.send(JSON.stringify({ op: "welcome", user: "alice", cursor: "e1:0:7",
    recovered: true, heartbeat_s: 30, session: "s1", node: "gw-test", limits: {} }));
  if (f.op === "send") socket.send(JSON.stringify({ op: "ack", id: f.id, ok: true, cursor: "e1:3:9" }));
}));
const client = createClient({ gatewayUrl: "ws://127.0.0.1:" + server.address().port + "/v1/ws", token: "tok", WebSocket });
const welcome = await client.connect();
out.welcome = { user: welcome.user, recovered: welcome.recovered, state: client.state, cursor: client.cursor };
out.sent = await client.send("user:bob", "chat.message", { text: "hi" }, { id: "m1" });
try { client.send("nobody", "chat.message", {}); } catch (e) { out.badTarget = [e instanceof RealtimeError, e.code]; }
client.close();
out.frames = frames.map((f) => f.op + (f.token ? ":" + f.token : "") + (f.to ? ":" + f.to : ""));
out.closedState = client.state;
server.close();
console.log(JSON.stringify(out));
`,
  );
  const r = await run([process.execPath, script], work);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out["resolved"], pathToFileURL(join(pkgDir, "dist", "index.js")).href);
  assert.ok((out["exports"] as string[]).includes("RealtimeClient"));
  const thrown = out["thrown"] as Record<string, string | null>;
  assert.match(thrown["ftpRouter"] ?? "", /^TypeError: /);
  assert.match(thrown["httpGateway"] ?? "", /^TypeError: /);
  assert.match(thrown["emptyToken"] ?? "", /^(TypeError|RangeError): /);
  assert.equal(thrown["good"], null);
  if ("noWebSocket" in thrown) assert.match(thrown["noWebSocket"] ?? "", /^TypeError: no global WebSocket/);
  assert.deepEqual(out["welcome"], { user: "alice", recovered: true, state: "open", cursor: "e1:0:7" });
  assert.deepEqual(out["sent"], { id: "m1", cursor: "e1:3:9" });
  assert.deepEqual(out["badTarget"], [true, "bad_target"]);
  assert.deepEqual(out["frames"], ["hello:tok", "send:user:bob"]);
  assert.equal(out["closedState"], "closed");
});

// Lines marked @ts-expect-error must fail: they prove the types are real, not `any`.
const CONSUMER_BROWSER = `
import { createClient, RealtimeError, type ClientOptions, type RealtimeEvent, type SendResult } from "${PACKAGE_NAME}";
const options: ClientOptions = { routerUrl: "https://rt.example.com", token: async () => "token" };
const client = createClient(options);
client.on("event", (e: RealtimeEvent) => document.title = e.type + (e.cursor ?? ""));
const removeClosed: () => void = client.on("closed", (c) => console.log(c.reason));
removeClosed();
const sent: Promise<SendResult> = client.send("user:bob", "chat.message", { text: "hi" });
sent.catch((e: unknown) => e instanceof RealtimeError && e.retriable);
const ctor: ClientOptions["WebSocket"] = WebSocket; // the DOM WebSocket fits
createClient({ gatewayUrl: "wss://gw.example.com/v1/ws", token: "t", WebSocket: ctor, fetch });
// @ts-expect-error: token is required
createClient({ routerUrl: "https://rt.example.com" });
// @ts-expect-error: no such event
client.on("message", () => {});
// @ts-expect-error: data must be JSON
client.send("user:bob", "t", { when: new Date(), f: () => 1 });
`;

const CONSUMER_NODE = `
import WebSocket from "ws";
import { RealtimeClient, CLIENT_DEFAULTS, decideOnClose, type WelcomeInfo } from "${PACKAGE_NAME}";
const client = new RealtimeClient({ routerUrl: "http://127.0.0.1:8080", token: () => "t", WebSocket, fetch });
const welcome: Promise<WelcomeInfo> = client.connect();
const ack: number = CLIENT_DEFAULTS.ackTimeoutMs;
const decision = decideOnClose(4005, "retry in 100 ms");
client.close();
void [welcome, ack, decision];
// @ts-expect-error: state is a union of names
const state: number = client.state;
`;

/** A consumer's tsconfig: strict, declarations checked too (no skipLibCheck). */
function consumerTsconfig(file: string, options: Record<string, unknown>): string {
  const compilerOptions = { noEmit: true, strict: true, skipLibCheck: false, target: "es2022", ...options };
  return JSON.stringify({ compilerOptions, files: [file] });
}

test("consumer files type-check against the built declarations (bundler and nodenext)", async () => {
  writeFileSync(join(work, "consumer-browser.ts"), CONSUMER_BROWSER);
  writeFileSync(join(work, "consumer-node.mts"), CONSUMER_NODE);
  // Browser: DOM library, no Node types at all. Node: Node types and `ws`, no DOM.
  writeFileSync(
    join(work, "tsconfig.browser.json"),
    consumerTsconfig("consumer-browser.ts", {
      module: "esnext",
      moduleResolution: "bundler",
      lib: ["es2022", "dom"],
      types: [],
    }),
  );
  writeFileSync(
    join(work, "tsconfig.node.json"),
    consumerTsconfig("consumer-node.mts", {
      module: "nodenext",
      moduleResolution: "nodenext",
      lib: ["es2022"],
      types: ["node"],
    }),
  );
  const tsc = (config: string) => run([process.execPath, TSC, "-p", config, "--pretty", "false"], work);
  const [browser, node] = await Promise.all([tsc("tsconfig.browser.json"), tsc("tsconfig.node.json")]);
  assert.equal(browser.code, 0, `browser consumer:\n${browser.stdout}${browser.stderr}`);
  assert.equal(node.code, 0, `node consumer:\n${node.stdout}${node.stderr}`);
});

test("npm pack ships only dist/, LICENSE, README.md and package.json", async () => {
  const r = await run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts"], pkgDir);
  assert.equal(r.code, 0, r.stderr);
  const [pack] = JSON.parse(r.stdout) as Array<{ name: string; files: Array<{ path: string }> }>;
  assert.equal(pack?.name, PACKAGE_NAME);
  const paths = pack!.files.map((f) => f.path).sort();
  assert.deepEqual(
    paths.filter((p) => !p.startsWith("dist/")),
    ["LICENSE", "README.md", "package.json"],
  );
  assert.deepEqual(
    paths.filter((p) => p.startsWith("dist/")),
    built.files.map((f) => `dist/${f}`),
  );
});
