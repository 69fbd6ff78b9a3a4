/**
 * Typed readers over an environment map. Each service reads `process.env` once, in its
 * `main.ts`, through these; a bad value throws a ConfigError naming the variable and what
 * was expected, so the service stops at start with one clear line.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  readonly code = "bad_config";
  constructor(
    readonly variable: string,
    readonly expected: string,
    readonly got: string | undefined,
  ) {
    super(
      got === undefined
        ? `${variable} is required: expected ${expected}`
        : `${variable}=${JSON.stringify(got)} is invalid: expected ${expected}`,
    );
    this.name = "ConfigError";
  }
}

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

export function readString(env: Env, name: string, fallback: string): string;
export function readString(env: Env, name: string): string | undefined;
export function readString(env: Env, name: string, fallback?: string): string | undefined {
  return raw(env, name) ?? fallback;
}

export function readInt(
  env: Env,
  name: string,
  fallback: number,
  bounds: { min: number; max: number },
): number {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  const expected = `an integer from ${bounds.min} to ${bounds.max}`;
  if (!/^-?\d+$/.test(v)) throw new ConfigError(name, expected, v);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < bounds.min || n > bounds.max) throw new ConfigError(name, expected, v);
  return n;
}

export function readBool(env: Env, name: string, fallback: boolean): boolean {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(name, "true or false", v);
}

export function readEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(v))
    throw new ConfigError(name, `one of ${allowed.join(", ")}`, v);
  return v as T;
}

export function readList(env: Env, name: string): string[] | undefined {
  const v = raw(env, name);
  if (v === undefined) return undefined;
  const items = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return items.length > 0 ? items : undefined;
}

/** `host:port` pairs, e.g. Kafka bootstrap servers. */
export function readHostPorts(env: Env, name: string): string[] | undefined {
  const items = readList(env, name);
  if (items === undefined) return undefined;
  for (const item of items) {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
    if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new ConfigError(
        name,
        "a comma-separated list of host:port (e.g. 127.0.0.1:9092)",
        raw(env, name),
      );
    }
  }
  return items;
}

export function readUrl(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const v = raw(env, name);
  if (v === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError(name, `an absolute URL (${protocols.join(" or ")})`, v);
  }
  if (!protocols.includes(url.protocol)) throw new ConfigError(name, `a ${protocols.join(" or ")} URL`, v);
  return v;
}

/** Topic names and prefixes: Kafka's legal characters. */
export function readTopicPrefix(env: Env, name: string, fallback: string): string {
  const v = raw(env, name) ?? fallback;
  if (!/^[A-Za-z0-9._-]{0,100}$/.test(v)) {
    throw new ConfigError(name, "up to 100 characters of A-Z a-z 0-9 . _ -", v);
  }
  return v;
}
