/**
 * The container images (Dockerfile): a multi-stage build whose gateway and router targets run
 * the compiled services as a non-root user with production dependencies only, on a glibc
 * Node 20 base where uWebSockets.js's native binary loads, with a health check; every file the
 * build copies exists and is not excluded by .dockerignore. The health check script itself is
 * run against real HTTP servers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";

const text = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
// Instructions, with continuation lines joined and comments dropped.
const lines = text
  .replace(/\\\n\s*/g, " ")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l !== "" && !l.startsWith("#"));

interface Stage {
  readonly from: string;
  readonly name: string;
  readonly lines: string[];
}
const stages: Stage[] = [];
for (const l of lines) {
  const m = /^FROM (\S+) AS (\S+)$/.exec(l);
  if (m !== null) stages.push({ from: m[1]!, name: m[2]!, lines: [] });
  else if (stages.length > 0) stages[stages.length - 1]!.lines.push(l);
}
const stage = (name: string) => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s !== undefined, `stage ${name}`);
  return s;
};
/** A stage's instructions, its ancestors' first (FROM <stage>). */
function chain(name: string): string[] {
  const s = stage(name);
  const parent = stages.find((x) => x.name === s.from);
  return [...(parent === undefined ? [] : chain(parent.name)), ...s.lines];
}
const argDefault = (name: string) =>
  new RegExp(`^ARG ${name}=(\\S+)$`).exec(lines.find((l) => l.startsWith(`ARG ${name}=`)) ?? "")?.[1];

test("the base image is Debian bookworm slim with the Node major of package.json's engines", () => {
  const image = argDefault("NODE_IMAGE");
  assert.equal(image, "node:20-bookworm-slim");
  const engines = (
    JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { engines: { node: string } }
  ).engines.node;
  assert.match(engines, /^>=20\.\d+\.\d+ <21$/);
  for (const s of ["build", "deps", "runtime"]) assert.equal(stage(s).from, "${NODE_IMAGE}");
  // The native binary for Node 20 (ABI 115) on Linux, x64 and arm64, ships in the package.
  for (const arch of ["x64", "arm64"]) {
    assert.ok(
      existsSync(join(REPO_ROOT, "node_modules", "uWebSockets.js", "binaries", `uws_linux_${arch}_115.node`)),
    );
  }
});

test("multi-stage: build compiles, deps has production dependencies only, runtime takes both", () => {
  assert.deepEqual(
    stages.map((s) => s.name),
    ["build", "deps", "runtime", "gateway", "router"],
  );
  assert.ok(stage("build").lines.includes("RUN npm run build"));
  assert.ok(stage("deps").lines.some((l) => /^RUN npm ci --omit=dev\b/.test(l)));
  const runtime = stage("runtime").lines;
  assert.ok(
    runtime.includes("COPY --from=deps /app/node_modules node_modules"),
    "node_modules from deps, not build",
  );
  assert.ok(runtime.includes("COPY --from=build /app/dist dist"));
  assert.ok(
    !runtime.some((l) => /^COPY (?!--from)\S+ /.test(l) && !l.startsWith("COPY package.json")),
    "no sources",
  );
  assert.ok(runtime.includes("USER node"), "non-root");
  assert.ok(runtime.includes("ENV NODE_ENV=production"));
});

test("gateway and router targets: their entry point, port, health check, and a non-root user", () => {
  const targets = [
    { name: "gateway", main: "gateway/main.ts", portVar: "RT_GATEWAY_PORT", hostVar: "RT_GATEWAY_HOST" },
    { name: "router", main: "router/main.ts", portVar: "RT_ROUTER_PORT", hostVar: "RT_ROUTER_HOST" },
  ];
  const build = JSON.parse(readFileSync(join(REPO_ROOT, "tsconfig.build.json"), "utf8")) as {
    include: string[];
  };
  for (const t of targets) {
    const all = chain(t.name);
    const own = stage(t.name).lines;
    assert.equal(stage(t.name).from, "runtime");
    assert.ok(existsSync(join(REPO_ROOT, t.main)));
    assert.ok(build.include.includes(t.main.split("/")[0]!), `${t.main} is compiled by npm run build`);
    assert.ok(own.includes(`CMD ["node", "dist/${t.main.replace(/\.ts$/, ".js")}"]`), t.name);
    const env = own.find((l) => l.startsWith("ENV "))!;
    const port = new RegExp(`${t.portVar}=(\\d+)`).exec(env)?.[1];
    assert.ok(port !== undefined);
    assert.match(env, new RegExp(`${t.hostVar}=0\\.0\\.0\\.0`));
    assert.match(env, new RegExp(`RT_HEALTH_PORT_VAR=${t.portVar}`));
    assert.ok(own.includes(`EXPOSE ${port}`));
    const health = own.find((l) => l.startsWith("HEALTHCHECK "));
    assert.match(health ?? "", /CMD \["node", "dist\/infra\/docker\/healthcheck\.js"\]$/);
    assert.ok(all.includes("USER node") && !own.some((l) => l.startsWith("USER ") && l !== "USER node"));
  }
  assert.ok(existsSync(join(REPO_ROOT, "infra", "docker", "healthcheck.ts")));
  assert.ok(build.include.includes("infra"));
});

test("every file the build copies exists and is not excluded by .dockerignore", () => {
  const ignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  assert.ok(ignore.includes("node_modules") && ignore.includes(".git") && ignore.includes("dist"));
  const copied = lines
    .filter((l) => l.startsWith("COPY ") && !l.includes("--from="))
    .flatMap((l) => l.split(/\s+/).slice(1, -1));
  assert.ok(copied.length >= 10);
  for (const src of copied) {
    assert.ok(existsSync(join(REPO_ROOT, src)), `${src} exists`);
    const excluded = ignore.some((p) => p === src || src.startsWith(`${p}/`));
    assert.ok(!excluded, `${src} is excluded by .dockerignore`);
  }
  // tsconfig.build.json compiles these folders: the build stage must have all of them.
  const build = JSON.parse(readFileSync(join(REPO_ROOT, "tsconfig.build.json"), "utf8")) as {
    include: string[];
  };
  for (const dir of build.include) {
    assert.ok(
      copied.some((c) => c === dir || c.startsWith(`${dir}/`)),
      `${dir} (compiled by npm run build) is copied into the build stage`,
    );
  }
});

async function serve(status: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.statusCode = req.url === "/healthz" ? status : 404;
    res.end();
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr !== null ? addr.port : 0 };
}

/** Runs the health check (asynchronously, so the servers of this process can answer it). */
function healthcheck(variable: string, port: number): Promise<number | null> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, "infra", "docker", "healthcheck.ts")],
    {
      env: { ...process.env, RT_HEALTH_PORT_VAR: variable, [variable]: String(port) },
      stdio: "ignore",
    },
  );
  return new Promise((done) => child.on("exit", (code) => done(code)));
}

test("the health check exits 0 on /healthz 200, 1 on another status or no answer", async () => {
  const ok = await serve(200);
  const bad = await serve(503);
  const gone = await serve(200);
  await new Promise<void>((done) => gone.server.close(() => done()));
  try {
    assert.equal(await healthcheck("RT_ROUTER_PORT", ok.port), 0);
    assert.equal(await healthcheck("RT_GATEWAY_PORT", bad.port), 1);
    assert.equal(await healthcheck("RT_GATEWAY_PORT", gone.port), 1, "nothing listening");
  } finally {
    ok.server.close();
    bad.server.close();
  }
});
