/**
 * The Compose cluster (infra/compose/compose.yaml). First the real validation of
 * `docker compose config`: with the Docker Compose plugin installed it runs that; otherwise, with
 * Go installed, it loads the file with compose-go (the library Docker Compose uses:
 * infra/compose/check), which checks the Compose schema, interpolation and merges. Then the
 * structure: three KRaft brokers with RF 3 / min ISR 2 / unclean election off, three gateways
 * with their own public URLs, two routers behind a load balancer health-checked on /readyz, the
 * collector, Jaeger, Prometheus and Grafana wired to the configurations in infra/, and service
 * settings the gateways and routers accept.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse } from "yaml";
import { readGatewayConfig } from "../../gateway/config.ts";
import { readRouterConfig } from "../../router/config.ts";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";

const DIR = join(REPO_ROOT, "infra", "compose");
const FILE = join(DIR, "compose.yaml");
// The file is whatever the YAML holds; the test reads fields dynamically.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
const SECRET = "compose-test-secret-that-is-at-least-32-bytes";

const compose = parse(readFileSync(FILE, "utf8"), { merge: true }) as Obj;
const services = compose.services as Record<string, Obj>;

/** `${VAR:-default}` / `${VAR:?message}` as Compose resolves them with `vars`. */
function interpolate(v: unknown, vars: Record<string, string>): string {
  return String(v).replace(
    /\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g,
    (_m, name: string, op?: string, arg?: string) => {
      const set = vars[name];
      if (set !== undefined && set !== "") return set;
      if (op === "-") return arg ?? "";
      throw new Error(`${name} is required: ${arg ?? ""}`);
    },
  );
}

/** The ENV of one Dockerfile stage (`ENV A=1 \ B=2`), which a service's environment extends. */
function imageEnv(target: string): Record<string, string> {
  const text = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8").replace(/\\\n\s*/g, " ");
  const stage = text.split(/^FROM /m).find((s) => new RegExp(`^\\S+ AS ${target}\\s`).test(s)) ?? "";
  const out: Record<string, string> = {};
  for (const line of stage.split("\n").filter((l) => l.startsWith("ENV "))) {
    for (const m of line.slice(4).matchAll(/([A-Z0-9_]+)=(\S+)/g)) out[m[1]!] = m[2]!;
  }
  return out;
}

function envOf(name: string): Record<string, string> {
  const s = services[name]!;
  const env = s.environment as Record<string, unknown>;
  return {
    ...(s.build?.target === undefined ? {} : imageEnv(s.build.target as string)),
    ...Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, interpolate(v, { RT_JWT_SECRET: SECRET })]),
    ),
  };
}

test("compose.yaml passes `docker compose config` (or compose-go's identical load)", (t) => {
  const env = { ...process.env, RT_JWT_SECRET: SECRET };
  const docker = spawnSync("docker", ["compose", "version"], { encoding: "utf8" });
  let r;
  if (docker.status === 0) {
    r = spawnSync("docker", ["compose", "-f", FILE, "config", "--quiet"], { encoding: "utf8", env });
  } else if (spawnSync("go", ["version"]).status === 0) {
    t.diagnostic("no Docker Compose plugin here: validating with compose-go (infra/compose/check)");
    r = spawnSync("go", ["-C", join(DIR, "check"), "run", ".", FILE], {
      encoding: "utf8",
      env,
      timeout: 300_000,
    });
  } else {
    t.skip("neither the Docker Compose plugin nor Go is installed; the structure checks below still run");
    return;
  }
  assert.equal(r.status, 0, `${r.stderr}${r.error?.message ?? ""}`);
  if (docker.status !== 0) {
    const resolved = parse(r.stdout) as Obj;
    assert.equal(resolved.services["gateway-2"].environment.RT_JWT_SECRET, SECRET);
    // Without the secret the file refuses to resolve, naming the variable.
    const { RT_JWT_SECRET: _unset, ...without } = env;
    const missing = spawnSync("go", ["-C", join(DIR, "check"), "run", ".", FILE], {
      encoding: "utf8",
      env: without,
      timeout: 300_000,
    });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /required variable RT_JWT_SECRET is missing a value/);
  }
});

test("three Kafka brokers in KRaft: one quorum, RF 3, min ISR 2, unclean election off", () => {
  const brokers = ["kafka-1", "kafka-2", "kafka-3"];
  const ids = new Set<string>();
  for (const b of brokers) {
    const env = envOf(b);
    ids.add(env.KAFKA_NODE_ID!);
    assert.equal(env.KAFKA_PROCESS_ROLES, "broker,controller");
    assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS, "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093");
    assert.equal(env.KAFKA_ADVERTISED_LISTENERS, `PLAINTEXT://${b}:9092`);
    assert.equal(env.KAFKA_DEFAULT_REPLICATION_FACTOR, "3");
    assert.equal(env.KAFKA_MIN_INSYNC_REPLICAS, "2");
    assert.equal(env.KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE, "false");
    assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, "false");
    assert.equal(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, "3");
    assert.match(env.CLUSTER_ID!, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(services[b]!.healthcheck.test.join(" ").includes("kafka-broker-api-versions.sh"));
    assert.ok(services[b]!.volumes.some((v: string) => v.endsWith(":/var/lib/kafka/data")));
  }
  assert.equal(ids.size, 3);
  assert.equal(new Set(brokers.map((b) => envOf(b).CLUSTER_ID)).size, 1, "one cluster id");
});

test("three gateways, each with its own public URL on its published port, and a config they accept", () => {
  const gateways = Object.keys(services).filter((s) => s.startsWith("gateway-"));
  assert.equal(gateways.length, 3);
  const urls = new Set<string>();
  for (const g of gateways) {
    const s = services[g]!;
    const env = envOf(g);
    const config = readGatewayConfig(env);
    assert.equal(config.host, "0.0.0.0", "the image listens on all interfaces");
    assert.equal(config.nodeId, g);
    assert.equal(config.topics.replicationFactor, 3);
    assert.deepEqual(config.kafka.brokers, ["kafka-1:9092", "kafka-2:9092", "kafka-3:9092"]);
    const [hostPort, containerPort] = String(s.ports[0]).split(":");
    assert.equal(containerPort, "8081");
    assert.equal(config.publicUrl, `ws://localhost:${hostPort}/v1/ws`);
    urls.add(config.publicUrl);
    assert.equal(s.build.target, "gateway");
    assert.equal(resolve(DIR, s.build.context), REPO_ROOT);
    for (const k of ["kafka-1", "kafka-2", "kafka-3"])
      assert.equal(s.depends_on[k].condition, "service_healthy");
    const graceS = Number(String(s.stop_grace_period).replace(/s$/, ""));
    assert.ok(graceS * 1000 > config.shutdownGraceMs, "Compose waits longer than the drain");
    assert.ok(s.healthcheck.test.includes("dist/infra/docker/healthcheck.js"));
  }
  assert.equal(urls.size, 3);
});

test("two routers behind a load balancer that checks /readyz", () => {
  const routers = Object.keys(services).filter((s) => /^router-\d+$/.test(s));
  assert.equal(routers.length, 2);
  for (const r of routers) {
    const config = readRouterConfig(envOf(r));
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.port, 8080);
    assert.equal(services[r]!.build.target, "router");
    assert.equal(services[r]!.ports, undefined, "routers are reached through the load balancer only");
  }
  const lb = services["router-lb"]!;
  assert.deepEqual([...lb.depends_on].sort(), routers);
  assert.deepEqual(lb.ports, ["8080:8080"]);
  const mount = lb.volumes.find((v: string) => v.includes("haproxy.cfg"));
  const cfg = readFileSync(resolve(DIR, mount.split(":")[0]), "utf8");
  assert.match(cfg, /option httpchk GET \/readyz/);
  assert.match(cfg, /http-check expect status 200/);
  for (const r of routers) assert.match(cfg, new RegExp(`server ${r} ${r}:8080`));
  assert.match(cfg, /bind :8080/);
});

test("every bind mount exists and every depends_on names a service", () => {
  for (const [name, s] of Object.entries(services)) {
    for (const v of (s.volumes ?? []) as string[]) {
      const src = v.split(":")[0]!;
      if (!src.startsWith(".")) {
        assert.ok(src in (compose.volumes ?? {}), `${name}: named volume ${src} is declared`);
        continue;
      }
      assert.ok(existsSync(resolve(DIR, src)), `${name}: ${src} exists`);
    }
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
    for (const d of deps) assert.ok(d in services, `${name} depends on ${d}, a service`);
  }
});

test("observability: services export to the collector, the collector to Jaeger, Prometheus scrapes all", () => {
  const gw = envOf("gateway-1");
  assert.equal(gw.OTEL_EXPORTER_OTLP_ENDPOINT, "http://otel-collector:4318");
  const collector = services["otel-collector"]!;
  assert.ok(collector.volumes.includes("../otel/collector.yaml:/etc/otelcol-contrib/config.yaml:ro"));
  const collectorCfg = parse(readFileSync(join(REPO_ROOT, "infra", "otel", "collector.yaml"), "utf8")) as Obj;
  assert.equal(collectorCfg.receivers.otlp.protocols.http.endpoint, "0.0.0.0:4318");
  assert.equal(collector.environment.TRACES_BACKEND, "jaeger:4317");
  assert.equal(services.jaeger!.environment.COLLECTOR_OTLP_ENABLED, "true");

  const prom = services.prometheus!;
  const promMount = prom.volumes.find((v: string) => v.endsWith(":/etc/prometheus/prometheus.yml:ro"));
  const promCfg = parse(readFileSync(resolve(DIR, promMount.split(":")[0]), "utf8")) as Obj;
  const targets = (job: string) =>
    promCfg.scrape_configs.find((j: Obj) => j.job_name === job).static_configs[0].targets as string[];
  assert.deepEqual(targets("rt-gateway"), ["gateway-1:8081", "gateway-2:8081", "gateway-3:8081"]);
  assert.deepEqual(targets("rt-router"), ["router-1:8080", "router-2:8080"]);
  const spanPort = collectorCfg.exporters.prometheus.endpoint.split(":")[1];
  assert.deepEqual(targets("otel-collector-spanmetrics"), [`otel-collector:${spanPort}`]);

  // The dashboard's job variables are the scrape jobs; its data source resolves when provisioned.
  const dashboard = JSON.parse(
    readFileSync(join(REPO_ROOT, "infra", "grafana", "rt-backbone.json"), "utf8"),
  ) as Obj;
  const vars = dashboard.templating.list as Obj[];
  assert.equal(vars.find((v) => v.name === "gateway_job")?.query, "rt-gateway");
  assert.equal(vars.find((v) => v.name === "router_job")?.query, "rt-router");
  const ds = vars.findIndex((v) => v.name === "DS_PROMETHEUS");
  assert.equal(ds, 0, "the data source variable comes before the variables that query it");
  assert.equal(vars[ds]!.type, "datasource");
  assert.equal(vars[ds]!.query, "prometheus");

  const grafana = services.grafana!;
  const provisioning = grafana.volumes.find((v: string) => v.includes(":/etc/grafana/provisioning"));
  const provDir = resolve(DIR, provisioning.split(":")[0]);
  const datasources = parse(readFileSync(join(provDir, "datasources", "prometheus.yaml"), "utf8")) as Obj;
  assert.equal(datasources.datasources[0].url, "http://prometheus:9090");
  assert.equal(datasources.datasources[0].isDefault, true);
  const providers = parse(readFileSync(join(provDir, "dashboards", "rt-backbone.yaml"), "utf8")) as Obj;
  const dashMount = grafana.volumes.find((v: string) => v.includes("rt-backbone.json")).split(":");
  assert.equal(dirname(dashMount[1]), providers.providers[0].options.path);
});
