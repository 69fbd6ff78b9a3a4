/**
 * OpenTelemetry for a service: traces through the Node SDK, configured by the standard OTEL_*
 * variables, and metrics scraped in Prometheus text format from the service's own port.
 *
 * Tracing is on only when an exporter is configured (OTEL_TRACES_EXPORTER, or an OTLP endpoint
 * variable) and the sampler can sample something. Otherwise the SDK is not started at all: no
 * tracer provider, no context manager, and callers check `tracing` before creating any span,
 * so the hot path allocates nothing for tracing. (The Node SDK's own default would be an OTLP
 * exporter to localhost; here "nothing configured" means "no exporter".)
 *
 * The active context is synchronous only (SyncContextManager below): code that needs a span
 * across an await passes it explicitly.
 *
 * Metrics always exist: a MeterProvider with a pull-only Prometheus reader, serialized on
 * demand by `metricsText()` for the service's `/metrics` route. OTEL_METRICS_EXPORTER and
 * OTEL_LOGS_EXPORTER are not used: metrics are scraped, logs are pino lines on stdout.
 *
 * The SDK reads its variables (OTEL_EXPORTER_OTLP_*, OTEL_BSP_*, OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_PROPAGATORS, the sampler) from process.env itself;
 * `readTelemetryConfig` checks the ones that decide whether and how to trace, so a typo stops the
 * service at start like any RT_* variable.
 */
import {
  ROOT_CONTEXT,
  trace,
  metrics as metricsApi,
  type Attributes,
  type Context,
  type ContextManager,
  type Meter,
  type ObservableResult,
  type Tracer,
} from "@opentelemetry/api";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { NodeSDK, metrics as sdkMetrics, resources } from "@opentelemetry/sdk-node";
import { ConfigError, readBool, readList, readString, type Env } from "./env.ts";

export const TRACE_EXPORTERS = ["otlp", "console", "zipkin", "none"] as const;
export const OTLP_PROTOCOLS = ["grpc", "http/protobuf", "http/json"] as const;
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface TelemetryConfig {
  /** service.name unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise. */
  readonly serviceName: string;
  /** service.instance.id: the node id, so spans and metrics name the process. */
  readonly instanceId: string;
  /** Spans are created and exported. */
  readonly tracing: boolean;
  /**
   * The sampler is a parentbased_* one: a span whose parent context is unsampled will not be
   * sampled either, so callers may skip creating it.
   */
  readonly followsParent: boolean;
  /** Why tracing is off, or the exporters and sampler when on: for the start log line. */
  readonly describe: string;
}

function readChoice<T extends string>(env: Env, name: string, allowed: readonly T[]): T | undefined {
  // Case matters: the SDK matches these values exactly.
  const v = readString(env, name);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v))
    throw new ConfigError(name, `one of ${allowed.join(", ")}`, v);
  return v as T;
}

/** Validates the OTEL_* variables that decide tracing; the SDK reads the rest itself. */
export function readTelemetryConfig(
  env: Env,
  defaults: { serviceName: string; instanceId: string },
): TelemetryConfig {
  const base = { serviceName: defaults.serviceName, instanceId: defaults.instanceId };
  const exporters = readList(env, "OTEL_TRACES_EXPORTER");
  for (const e of exporters ?? []) {
    if (!(TRACE_EXPORTERS as readonly string[]).includes(e)) {
      throw new ConfigError(
        "OTEL_TRACES_EXPORTER",
        `a comma list of ${TRACE_EXPORTERS.join(", ")}`,
        readString(env, "OTEL_TRACES_EXPORTER"),
      );
    }
  }
  readChoice(env, "OTEL_EXPORTER_OTLP_PROTOCOL", OTLP_PROTOCOLS);
  readChoice(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", OTLP_PROTOCOLS);
  const sampler = readChoice(env, "OTEL_TRACES_SAMPLER", SAMPLERS) ?? "parentbased_always_on";
  let ratio = 1;
  if (sampler.endsWith("traceidratio")) {
    const arg = readString(env, "OTEL_TRACES_SAMPLER_ARG") ?? "1";
    ratio = Number(arg);
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(arg) || !(ratio >= 0 && ratio <= 1)) {
      throw new ConfigError("OTEL_TRACES_SAMPLER_ARG", "a sampling ratio from 0 to 1 (e.g. 0.01)", arg);
    }
  }
  const followsParent = sampler.startsWith("parentbased_");
  const off = (why: string): TelemetryConfig =>
    Object.freeze({ ...base, tracing: false, followsParent, describe: why });
  if (readBool(env, "OTEL_SDK_DISABLED", false)) return off("tracing off: OTEL_SDK_DISABLED=true");
  const endpoint =
    readString(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? readString(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  const active = exporters ?? (endpoint === undefined ? [] : ["otlp"]);
  if (active.length === 0) return off("tracing off: no OTEL_TRACES_EXPORTER or OTLP endpoint set");
  if (active.includes("none") && active.length > 1) {
    throw new ConfigError("OTEL_TRACES_EXPORTER", "`none` alone, or a list without it", active.join(","));
  }
  if (active[0] === "none") return off("tracing off: OTEL_TRACES_EXPORTER=none");
  if (sampler === "always_off" || (sampler === "traceidratio" && ratio === 0)) {
    return off(`tracing off: OTEL_TRACES_SAMPLER=${sampler} samples nothing`);
  }
  const arg = sampler.endsWith("traceidratio") ? `(${ratio})` : "";
  return Object.freeze({
    ...base,
    tracing: true,
    followsParent,
    describe: `tracing on: ${active.join(",")} exporter, sampler ${sampler}${arg}`,
  });
}

export interface Telemetry {
  /** False: no span may be created (the tracer is the API's no-op one anyway). */
  readonly tracing: boolean;
  /** See TelemetryConfig.followsParent. */
  readonly followsParent: boolean;
  readonly tracer: Tracer;
  readonly meter: Meter;
  /** Every metric of this process in the Prometheus text exposition format. */
  metricsText(): Promise<string>;
  /** Exports the spans still buffered, then stops. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * A context manager for synchronous scopes: `with` makes a context active for the duration of
 * the call, and nothing follows async continuations (after an `await` inside `with`, the
 * context is the caller's again). The SDK's default, Node's AsyncLocalStorage, hooks every
 * promise of the process once any context has been entered, which doubles the cost of
 * promise-heavy code such as KafkaJS whether or not the current event is sampled. The services
 * only make spans active around synchronous work (writing an ack, a socket write, a log line)
 * and hand spans over explicitly across awaits, so they need no more than this.
 */
export class SyncContextManager implements ContextManager {
  #active: Context = ROOT_CONTEXT;

  active(): Context {
    return this.#active;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const previous = this.#active;
    this.#active = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.#active = previous;
    }
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== "function") return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    const with_ = (thisArg: unknown, args: unknown[]) => this.with(ctx, () => fn.apply(thisArg, args));
    return function (this: unknown, ...args: unknown[]) {
      return with_(this, args);
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#active = ROOT_CONTEXT;
    return this;
  }
}

/** Longest wait for the last spans to be exported at shutdown. */
const SHUTDOWN_WAIT_MS = 3_000;

/** Content type of `metricsText()`. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function startTelemetry(config: TelemetryConfig, version = "0.1.0"): Telemetry {
  const resource = resources
    .resourceFromAttributes({
      "service.name": config.serviceName,
      "service.instance.id": config.instanceId,
      "service.version": version,
    })
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults above.
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const reader = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new sdkMetrics.MeterProvider({ resource, readers: [reader] });
  metricsApi.setGlobalMeterProvider(meterProvider);
  // Scope labels on every series add nothing here: one scope per service.
  const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  let sdk: NodeSDK | null = null;
  if (config.tracing) {
    sdk = new NodeSDK({
      resource,
      contextManager: new SyncContextManager(),
      instrumentations: [],
      // Metrics and logs have their own paths (above, and pino); only traces go through the SDK.
      metricReaders: [],
      logRecordProcessors: [],
    });
    sdk.start();
  }
  let stopping: Promise<void> | null = null;
  return {
    tracing: config.tracing,
    followsParent: config.followsParent,
    tracer: trace.getTracer(config.serviceName, version),
    meter: meterProvider.getMeter(config.serviceName, version),
    async metricsText() {
      const { resourceMetrics } = await reader.collect();
      return serializer.serialize(resourceMetrics);
    },
    shutdown: () =>
      (stopping ??= (async () => {
        // An unreachable collector must not hold the process past its drain deadline.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([sdk?.shutdown(), meterProvider.shutdown()]),
          new Promise<void>((done) => (timer = setTimeout(done, SHUTDOWN_WAIT_MS))),
        ]);
        clearTimeout(timer);
      })()),
  };
}

/**
 * Cumulative counts per key, for observable counters: the hot path pays one map lookup per
 * event instead of the SDK's attribute hashing; each key's attributes are built once, on first
 * use. Keys must come from a bounded set (ops, reasons, codes).
 */
export class Counts {
  readonly #byKey = new Map<string, { readonly attributes: Attributes; n: number }>();

  constructor(private readonly attributesOf: (key: string) => Attributes) {}

  add(key: string, n = 1): void {
    const c = this.#byKey.get(key);
    if (c !== undefined) c.n += n;
    else this.#byKey.set(key, { attributes: this.attributesOf(key), n });
  }

  get(key: string): number {
    return this.#byKey.get(key)?.n ?? 0;
  }

  /** key → count, for /v1/stats. */
  toObject(): Record<string, number> {
    return Object.fromEntries([...this.#byKey].map(([k, c]) => [k, c.n]));
  }

  observe(result: ObservableResult): void {
    for (const c of this.#byKey.values()) result.observe(c.n, c.attributes);
  }
}
