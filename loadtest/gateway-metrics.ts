/**
 * What a run reads from a gateway's own GET /metrics (Prometheus text): its memory
 * (`process_memory_usage`, the RSS, and `v8js_memory_heap_used` over every heap space), the
 * upgrades it refused and the sockets it closed, by reason. The parser is pure and reads only
 * plain `name{labels} value` samples; anything else is skipped.
 */
import { getText } from "./services.ts";

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (m === null) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, "$1");
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** The sum of every sample of `name` (all label sets); null when there is none. */
export function sumOf(samples: readonly Sample[], name: string): number | null {
  let found = false;
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    found = true;
    sum += s.value;
  }
  return found ? sum : null;
}

/** Samples of `name` by the value of `label`, summed. */
export function byLabel(samples: readonly Sample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    const k = s.labels[label] ?? "";
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

export interface GatewayReading {
  readonly rssBytes: number | null;
  readonly heapUsedBytes: number | null;
  readonly upgradesRefused: Record<string, number>;
  readonly closes: Record<string, number>;
}

export function readingOf(samples: readonly Sample[]): GatewayReading {
  const closes = byLabel(samples, "rt_ws_closes_total", "rt_close_reason");
  for (const k of Object.keys(closes)) if (closes[k] === 0) delete closes[k];
  return {
    rssBytes: sumOf(samples, "process_memory_usage"),
    heapUsedBytes: sumOf(samples, "v8js_memory_heap_used"),
    upgradesRefused: byLabel(samples, "rt_ws_upgrades_refused_total", "rt_reason"),
    closes,
  };
}

/** The `http://host:port` of a gateway from its WebSocket URL. */
export function httpBase(wsUrl: string): string {
  const u = new URL(wsUrl);
  return `${u.protocol === "wss:" ? "https:" : "http:"}//${u.host}`;
}

/** Reads one gateway's /metrics; null when it does not answer. */
export async function readGateway(wsUrl: string, timeoutMs = 5000): Promise<GatewayReading | null> {
  const text = await getText(`${httpBase(wsUrl)}/metrics`, timeoutMs);
  return text === null ? null : readingOf(parsePrometheus(text));
}
