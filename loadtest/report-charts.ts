/**
 * Which charts each scenario's HTML report shows, read from its result (the JSON the run
 * writes): throughput and latency over time for every scenario, plus what the scenario is about
 * (clients held and gateway memory for `connect`, resumes for `storm`, clients and CPU for
 * `churn`). Pure: a result in, a page (report-html.ts) out. Fields a result lacks are drawn as
 * gaps, never guessed.
 */
import type { Chart, ChartSeries, ReportPage } from "./report-html.ts";

type Obj = Readonly<Record<string, unknown>>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** The value at a dotted path, when it is a finite number. */
export function numAt(v: unknown, path: string): number | null {
  let cur: unknown = v;
  for (const key of path.split(".")) {
    if (!isObj(cur)) return null;
    cur = cur[key];
  }
  return typeof cur === "number" && Number.isFinite(cur) ? cur : null;
}

function strAt(v: unknown, path: string): string | null {
  let cur: unknown = v;
  for (const key of path.split(".")) {
    if (!isObj(cur)) return null;
    cur = cur[key];
  }
  return typeof cur === "string" ? cur : null;
}

function seriesOf(result: Obj): Obj[] {
  const s = result["series"];
  return Array.isArray(s) ? s.filter(isObj) : [];
}

/** The sum of a record of numbers at `path` (e.g. drops by close code). */
function sumAt(p: Obj, path: string): number | null {
  const r = p[path];
  if (!isObj(r)) return null;
  return Object.values(r).reduce<number>((a, v) => a + (typeof v === "number" ? v : 0), 0);
}

interface Field {
  readonly name: string;
  readonly get: (p: Obj) => number | null;
}

const field = (name: string, path: string): Field => ({ name, get: (p) => numAt(p, path) });

/** A latency percentile, or a gap in a second with no sample (its `count` is 0). */
const lat = (name: string, path: string): Field => ({
  name,
  get: (p) => {
    const count = numAt(p, path.replace(/\.[^.]+$/, ".count"));
    return count === 0 ? null : numAt(p, path);
  },
});

function chart(points: readonly Obj[], title: string, unit: string, fields: readonly Field[]): Chart {
  const x = points.map((p) => numAt(p, "second") ?? NaN);
  const series: ChartSeries[] = fields.map((f) => ({ name: f.name, values: points.map((p) => f.get(p)) }));
  return { title, unit, x, series };
}

/** The points where `path` has a value: a sparsely sampled series drawn as one line. */
function sampled(points: readonly Obj[], path: string): Obj[] {
  return points.filter((p) => numAt(p, path) !== null);
}

/** Cores per process, one line each, from a record field of every point (`cores`, `cpu_cores`). */
function coresChart(points: readonly Obj[], key: string, top = 8): Chart | null {
  const totals = new Map<string, number>();
  for (const p of points) {
    const r = p[key];
    if (!isObj(r)) continue;
    for (const [n, v] of Object.entries(r))
      if (typeof v === "number") totals.set(n, (totals.get(n) ?? 0) + v);
  }
  if (totals.size === 0) return null;
  const names = [...totals].sort((a, b) => b[1] - a[1]).map(([n]) => n);
  const shown = names.slice(0, top);
  const fields: Field[] = shown.map((n) => ({
    name: n,
    get: (p) => {
      const r = p[key];
      return isObj(r) && typeof r[n] === "number" ? r[n] : null;
    },
  }));
  if (names.length > top) {
    const rest = names.slice(top);
    fields.push({
      name: `${rest.length} others`,
      get: (p) => {
        const r = p[key];
        return isObj(r) ? rest.reduce((a, n) => a + (typeof r[n] === "number" ? r[n] : 0), 0) : null;
      },
    });
  }
  return chart(points, "CPU per process", "cores", fields);
}

/** Disruptions of a churn result (a kill, a replacement) as markers at their second. */
function churnMarkers(result: Obj): { x: number; label: string }[] {
  const d = result["disruptions"];
  if (!Array.isArray(d)) return [];
  return d.filter(isObj).flatMap((e) => {
    const x = numAt(e, "at_s");
    const label = typeof e["name"] === "string" ? e["name"] : "";
    return x === null ? [] : [{ x, label }];
  });
}

function chartsFor(schema: string, result: Obj): Chart[] {
  const pts = seriesOf(result);
  const out: (Chart | null)[] = [];
  switch (schema) {
    case "rt-loadtest-direct/1":
      out.push(
        chart(pts, "Throughput", "per second", [
          field("sent", "sent"),
          field("acked ok", "acked_ok"),
          field("delivered", "delivered"),
        ]),
        chart(pts, "End-to-end latency of the deliveries in each second", "ms", [
          lat("p50", "latency_ms.p50"),
          lat("p90", "latency_ms.p90"),
          lat("p99", "latency_ms.p99"),
          lat("max", "latency_ms.max"),
        ]),
      );
      break;
    case "rt-loadtest-churn/1":
      out.push(
        chart(pts, "Throughput", "per second", [
          field("sent", "sent"),
          field("acked ok", "acked_ok"),
          field("delivered", "delivered"),
        ]),
        chart(pts, "End-to-end latency of the deliveries in each second", "ms", [
          field("p99", "latency_p99_ms"),
        ]),
        chart(pts, "Clients", "clients", [
          field("live", "open"),
          field("waiting for a welcome", "waiting"),
          { name: "drops", get: (p) => sumAt(p, "drops") },
          { name: "welcomes", get: (p) => sumAt(p, "welcomes") },
        ]),
        coresChart(pts, "cpu_cores"),
      );
      break;
    case "rt-loadtest-room/1":
    case "rt-loadtest-broadcast/1":
      out.push(
        chart(pts, "Throughput", "per second", [
          field("sent", "sent"),
          field("accepted", "accepted"),
          field("delivered", "delivered"),
        ]),
        chart(pts, "End-to-end latency of the deliveries in each second", "ms", [
          lat("p50", "latency_ms.p50"),
          lat("p99", "latency_ms.p99"),
          lat("max", "latency_ms.max"),
        ]),
        coresChart(pts, "cores"),
      );
      break;
    case "rt-loadtest-connect/1":
      out.push(
        chart(pts, "Connections", "connections", [
          field("held (welcomed, not dropped)", "held"),
          field("failed to connect", "failed"),
          field("unexpected drops", "drops"),
        ]),
        chart(pts, "Connect rate", "per second", [field("welcomed", "welcomed_per_s")]),
        chart(pts, "Welcome latency of the connects started in each second", "ms", [
          lat("p50", "connect_ms.p50"),
          lat("p99", "connect_ms.p99"),
          lat("max", "connect_ms.max"),
        ]),
        chart(sampled(pts, "gateways_rss_mib"), "Gateways' memory (all gateways)", "MiB", [
          field("RSS", "gateways_rss_mib"),
          field("V8 heap used", "gateways_heap_mib"),
        ]),
        coresChart(pts, "cores"),
      );
      break;
    case "rt-loadtest-storm/1":
      out.push(
        chart(pts, "Sessions", "clients", [
          field("live", "live"),
          field("resumed so far", "resumed"),
          field("failed attempts so far", "failures"),
        ]),
        chart(pts, "Throughput", "per second", [
          field("resumes", "resumed_per_s"),
          field("failed attempts", "failures_per_s"),
          field("events delivered", "delivered"),
        ]),
        chart(pts, "Time from the storm to each welcome, for the welcomes in each second", "ms", [
          lat("p50", "to_welcome_ms.p50"),
          lat("p99", "to_welcome_ms.p99"),
          lat("max", "to_welcome_ms.max"),
        ]),
        coresChart(pts, "cores"),
      );
      break;
  }
  const markers = schema === "rt-loadtest-churn/1" ? churnMarkers(result) : [];
  return out.filter((c): c is Chart => c !== null).map((c) => (markers.length > 0 ? { ...c, markers } : c));
}

function facts(result: Obj): [string, string][] {
  const f: [string, string][] = [];
  const add = (k: string, v: string | number | null) => {
    if (v !== null) f.push([k, String(v)]);
  };
  add("run", strAt(result, "run_id"));
  add("started", strAt(result, "started_at"));
  add("completed", typeof result["completed"] === "boolean" ? String(result["completed"]) : null);
  add("aborted", strAt(result, "aborted"));
  const m = result["machine"];
  if (isObj(m)) {
    const mem = numAt(m, "total_memory_bytes");
    add(
      "machine",
      `${numAt(m, "cores") ?? "?"} cores (${strAt(m, "cpu_model") ?? "?"}), ` +
        `${mem === null ? "?" : (mem / 2 ** 30).toFixed(1)} GiB, ${strAt(m, "platform") ?? "?"} ${strAt(m, "os_release") ?? ""}`,
    );
    add("node / kafka", `${strAt(m, "node") ?? "?"} / ${strAt(m, "kafka_version") ?? "?"}`);
    add("commit", strAt(m, "git_commit"));
    add("load average at start", numAt(m, "load_average_1m_at_start"));
  }
  add("limited by", strAt(result, "limited_by"));
  return f;
}

/** The HTML report's content for a result of any scenario; `summary` is the text the run printed. */
export function reportPage(result: unknown, summary: string): ReportPage {
  const r: Obj = isObj(result) ? result : {};
  const schema = strAt(r, "schema") ?? "unknown";
  const scenario = strAt(r, "scenario") ?? schema.replace(/^rt-loadtest-|\/\d+$/g, "");
  const cmd = r["command_line"];
  const warnings = Array.isArray(r["warnings"])
    ? r["warnings"].filter((w): w is string => typeof w === "string")
    : [];
  return {
    title: `Load test: ${scenario}`,
    subtitle: Array.isArray(cmd) ? cmd.map(String).join(" ") : "",
    facts: facts(r),
    charts: chartsFor(schema, r),
    summary,
    warnings,
  };
}
