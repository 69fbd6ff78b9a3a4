/**
 * The Kubernetes manifests (infra/k8s): every built-in object validates against the Kubernetes
 * OpenAPI schema (kubernetes-models, offline; kubeconform would need schemas from the network),
 * the Strimzi resources have the cluster and topic settings the design needs (KRaft, RF 3,
 * min ISR 2, unclean election off, the design's topics and partition counts), and gateways and
 * routers have what a safe rollout needs: probes on the real endpoints, a preStop hook and a
 * grace period that fits the drain, disruption budgets, resource requests, autoscaling on
 * connections (capped at the partition count), and a configuration the services accept.
 * With kubectl on PATH, `kubectl kustomize` must also build the kustomization.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, parse } from "yaml";
import { readGatewayConfig } from "../../gateway/config.ts";
import { readRouterConfig } from "../../router/config.ts";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";

const DIR = join(REPO_ROOT, "infra", "k8s");
// Manifests are whatever the YAML holds; the test reads fields dynamically.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const files = readdirSync(DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const objects: (Obj & { file: string })[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), "utf8")).map((doc) => {
    assert.deepEqual(doc.errors, [], `${file}: YAML errors`);
    return { ...(doc.toJS() as Obj), file };
  }),
);

function one(kind: string, name: string): Obj {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  assert.equal(found.length, 1, `exactly one ${kind} ${name}`);
  return found[0]!;
}

const configMap = one("ConfigMap", "rt-config");
const configEnv: Record<string, string> = { ...configMap.data };

test("the kustomization lists every manifest, and kubectl builds it when available", () => {
  const k = parse(readFileSync(join(DIR, "kustomization.yaml"), "utf8")) as Obj;
  assert.equal(k.kind, "Kustomization");
  assert.deepEqual([...k.resources].sort(), [...files].sort());
  const kubectl = spawnSync("kubectl", ["kustomize", DIR], { encoding: "utf8", timeout: 60_000 });
  if (kubectl.error !== undefined) return; // no kubectl here: the structure checks below still run
  assert.equal(kubectl.status, 0, kubectl.stderr);
  const built = parseAllDocuments(kubectl.stdout).map((d) => d.toJS() as Obj);
  assert.equal(built.length, objects.length);
  assert.ok(built.every((o) => o.kind === "Namespace" || o.metadata?.namespace === "rt"));
});

test("every built-in object validates against the Kubernetes schema", async () => {
  let validated = 0;
  for (const o of objects) {
    assert.ok(
      typeof o.apiVersion === "string" && typeof o.kind === "string",
      `${o.file}: apiVersion and kind`,
    );
    if (o.apiVersion.startsWith("kafka.strimzi.io/")) continue;
    const path = o.apiVersion.includes("/") ? o.apiVersion : `v1`;
    const mod = (await import(`kubernetes-models/${path}/${o.kind}`)) as Record<
      string,
      new (data: Obj) => { validate(): void }
    >;
    const Model = mod[o.kind];
    assert.ok(Model !== undefined, `no schema for ${o.apiVersion} ${o.kind}`);
    const { file, ...data } = o;
    assert.doesNotThrow(() => new Model(data).validate(), `${file}: ${o.kind} ${o.metadata?.name}`);
    validated += 1;
  }
  assert.ok(validated >= 14, `validated ${validated} objects`);
});

test("a broken object fails the schema check (the check can fail)", async () => {
  const { Deployment } = await import("kubernetes-models/apps/v1/Deployment");
  const bad = structuredClone(one("Deployment", "rt-router"));
  delete bad.file;
  bad.spec.template.spec.containers[0].ports[0].containerPort = "eighty";
  assert.throws(() => new Deployment(bad).validate(), /containerPort must be integer/);
});

test("Strimzi runs Kafka in KRaft with RF 3, min ISR 2, unclean election off, three nodes", () => {
  const kafka = one("Kafka", "rt-kafka");
  assert.equal(kafka.apiVersion, "kafka.strimzi.io/v1beta2");
  assert.equal(kafka.metadata.annotations["strimzi.io/kraft"], "enabled");
  assert.equal(kafka.metadata.annotations["strimzi.io/node-pools"], "enabled");
  const c = kafka.spec.kafka.config;
  assert.equal(c["default.replication.factor"], 3);
  assert.equal(c["min.insync.replicas"], 2);
  assert.equal(c["unclean.leader.election.enable"], false);
  assert.equal(c["auto.create.topics.enable"], false);
  assert.equal(c["offsets.topic.replication.factor"], 3);
  assert.ok(kafka.spec.entityOperator.topicOperator !== undefined, "the Topic Operator manages KafkaTopics");
  const pools = objects.filter((o) => o.kind === "KafkaNodePool");
  assert.equal(pools.length, 1);
  const pool = pools[0]!;
  assert.equal(pool.metadata.labels["strimzi.io/cluster"], "rt-kafka");
  assert.equal(pool.spec.replicas, 3);
  assert.deepEqual([...pool.spec.roles].sort(), ["broker", "controller"]);
  const plain = kafka.spec.kafka.listeners.find((l: Obj) => l.name === "plain");
  assert.equal(configEnv.RT_KAFKA_BROKERS, `rt-kafka-kafka-bootstrap.rt.svc:${plain.port}`);
});

test("the KafkaTopics are the design's topics, with the configured partitions, RF 3 and min ISR 2", () => {
  const specs = topicSpecs(readTopicsConfig(configEnv));
  const topics = objects.filter((o) => o.kind === "KafkaTopic");
  assert.equal(topics.length, specs.length);
  for (const spec of specs) {
    const t = topics.find((o) => o.spec.topicName === spec.name);
    assert.ok(t !== undefined, `a KafkaTopic for ${spec.name}`);
    assert.equal(t.metadata.labels["strimzi.io/cluster"], "rt-kafka");
    assert.equal(t.spec.partitions, spec.partitions, spec.name);
    assert.equal(t.spec.replicas, 3, spec.name);
    assert.equal(t.spec.config["min.insync.replicas"], 2, spec.name);
    for (const [k, v] of Object.entries(spec.config))
      assert.equal(String(t.spec.config[k]), v, `${spec.name} ${k}`);
  }
});

function container(workload: Obj): Obj {
  const cs = workload.spec.template.spec.containers;
  assert.equal(cs.length, 1);
  return cs[0];
}

function envOf(c: Obj): Record<string, string> {
  const out: Record<string, string> = { ...configEnv, RT_JWT_SECRET: "x".repeat(48) };
  for (const e of c.env ?? []) if (e.value !== undefined) out[e.name] = e.value;
  return out;
}

function checkProbesAndStop(workload: Obj, port: string, graceMs: number): void {
  const spec = workload.spec.template.spec;
  const c = container(workload);
  assert.equal(c.ports[0].name, port);
  assert.equal(c.livenessProbe.httpGet.path, "/healthz");
  assert.equal(c.livenessProbe.httpGet.port, port);
  assert.equal(c.readinessProbe.httpGet.path, "/readyz");
  assert.equal(c.readinessProbe.httpGet.port, port);
  assert.equal(c.startupProbe.httpGet.path, "/healthz");
  const preStop = c.lifecycle.preStop.exec.command as string[];
  assert.equal(preStop[0], "sleep");
  const preStopS = Number(preStop[1]);
  assert.ok(
    spec.terminationGracePeriodSeconds >= preStopS + graceMs / 1000 + 2,
    `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} leaves the drain (${graceMs} ms) and preStop (${preStopS} s) time`,
  );
  assert.ok(c.resources.requests.cpu !== undefined && c.resources.requests.memory !== undefined);
  assert.ok(c.resources.limits.memory !== undefined);
  assert.equal(spec.securityContext.runAsNonRoot, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  const names = c.envFrom.map((e: Obj) => e.configMapRef?.name ?? e.secretRef?.name);
  assert.deepEqual(names, ["rt-config", "rt-auth"]);
}

function selects(selector: Obj, workload: Obj): boolean {
  const labels = workload.spec.template.metadata.labels;
  return Object.entries(selector.matchLabels ?? selector).every(([k, v]) => labels[k] === v);
}

test("gateways: StatefulSet with a per-pod public URL, probes, drain-sized grace, PDB, HPA on connections", () => {
  const sts = one("StatefulSet", "rt-gateway");
  const c = container(sts);
  const env = envOf(c);
  const config = readGatewayConfig(env);
  checkProbesAndStop(sts, "ws", config.shutdownGraceMs);
  assert.equal(c.ports[0].containerPort, config.port);
  assert.equal(config.host, "0.0.0.0");
  // $(POD_NAME) expands only if POD_NAME is defined earlier in the list.
  const names = c.env.map((e: Obj) => e.name);
  assert.equal(c.env[0].name, "POD_NAME");
  assert.equal(c.env[0].valueFrom.fieldRef.fieldPath, "metadata.name");
  assert.ok(names.indexOf("RT_GATEWAY_PUBLIC_URL") > 0);
  assert.match(env.RT_GATEWAY_PUBLIC_URL!, /^wss:\/\/[^/]+\/gw\/\$\(POD_NAME\)\/v1\/ws$/);
  assert.equal(env.RT_GATEWAY_NODE_ID, "$(POD_NAME)");

  const svc = one("Service", sts.spec.serviceName);
  assert.equal(svc.spec.clusterIP, "None", "headless: one DNS name per pod");
  assert.ok(selects(svc.spec.selector, sts));
  assert.equal(svc.spec.ports[0].port, config.port);

  const pdb = one("PodDisruptionBudget", "rt-gateway");
  assert.ok(selects(pdb.spec.selector, sts));
  assert.equal(pdb.spec.maxUnavailable, 1);

  const hpa = one("HorizontalPodAutoscaler", "rt-gateway");
  assert.deepEqual(hpa.spec.scaleTargetRef, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    name: "rt-gateway",
  });
  const conns = hpa.spec.metrics.find((m: Obj) => m.type === "Pods");
  assert.equal(conns.pods.metric.name, "rt_ws_connections");
  const target = Number(conns.pods.target.averageValue);
  assert.ok(
    target > 0 && target < Number(env.RT_MAX_CONNECTIONS ?? 100_000),
    "target below the connection cap",
  );
  assert.ok(
    hpa.spec.maxReplicas <= config.topics.deliveriesPartitions,
    "never more gateways than partitions",
  );
  assert.ok(hpa.spec.minReplicas >= 2);
  assert.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 300, "scale-in is slow");
});

test("routers: Deployment with probes, grace, PDB, HPA and a config the router accepts", () => {
  const dep = one("Deployment", "rt-router");
  const env = envOf(container(dep));
  const config = readRouterConfig(env);
  checkProbesAndStop(dep, "http", config.shutdownGraceMs);
  assert.equal(container(dep).ports[0].containerPort, config.port);
  assert.equal(config.host, "0.0.0.0");
  assert.ok(dep.spec.replicas >= 2);
  const svc = one("Service", "rt-router");
  assert.ok(selects(svc.spec.selector, dep));
  const pdb = one("PodDisruptionBudget", "rt-router");
  assert.ok(selects(pdb.spec.selector, dep));
  assert.equal(pdb.spec.minAvailable, 1);
  const hpa = one("HorizontalPodAutoscaler", "rt-router");
  assert.equal(hpa.spec.scaleTargetRef.name, "rt-router");
  assert.equal(hpa.spec.scaleTargetRef.kind, "Deployment");
});

test("the edge routes /v1/connect to the routers and /gw/<pod>/v1/ws to that gateway pod only", () => {
  const conf = one("ConfigMap", "rt-edge").data["default.conf"] as string;
  assert.match(
    conf,
    /location = \/v1\/connect \{\s*proxy_pass http:\/\/rt-router\.rt\.svc\.cluster\.local:8080;/,
  );
  const gw =
    /location ~ \^\/gw\/\(\?<pod>(rt-gateway-\[0-9\]\+)\)\/v1\/ws\$ \{\s*proxy_pass http:\/\/\$pod\.rt-gateway\.rt\.svc\.cluster\.local:8081\/v1\/ws;/;
  assert.match(conf, gw);
  assert.match(conf, /proxy_set_header Upgrade \$http_upgrade;/);
  // The pattern admits exactly the StatefulSet's pod names.
  const pod = new RegExp(`^/gw/(rt-gateway-[0-9]+)/v1/ws$`);
  assert.ok(pod.test("/gw/rt-gateway-11/v1/ws"));
  assert.ok(!pod.test("/gw/evil.example.com/v1/ws"));
  const url = (envOf(container(one("StatefulSet", "rt-gateway"))).RT_GATEWAY_PUBLIC_URL ?? "").replace(
    "$(POD_NAME)",
    "rt-gateway-3",
  );
  assert.ok(pod.test(new URL(url).pathname), url);
  const edge = one("Deployment", "rt-edge");
  assert.ok(selects(one("Service", "rt-edge").spec.selector, edge));
  assert.ok(selects(one("PodDisruptionBudget", "rt-edge").spec.selector, edge));
});
