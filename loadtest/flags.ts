/**
 * The pieces every scenario's flag parser shares, as pure functions: splitting argv into
 * `--flag value` / `--flag=value` pairs (every flag at most once), and reading numbers and lists
 * with a one-line error that names the flag.
 */

/** The most messages one run may send: 9 bytes of state each, so this bounds memory (90 MB). */
export const MAX_MESSAGES_PER_RUN = 10_000_000;

/**
 * The most sends per second one connection is given by default: under the gateway's
 * RT_SENDS_PER_S (50), so a run measures the backbone and not the rate limiter.
 */
export const PER_CONNECTION_MAX_DEFAULT = 40;

/** A bad command line; its message is one line that starts with the flag (or says what is wrong). */
export class FlagError extends Error {}

export function fail(flag: string, message: string): never {
  throw new FlagError(`--${flag}: ${message}`);
}

export function integer(flag: string, text: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(text)) fail(flag, `${JSON.stringify(text)} is not a whole number`);
  const n = Number(text);
  if (n < min || n > max) fail(flag, `${n} is out of range [${min}, ${max}]`);
  return n;
}

export function decimal(flag: string, text: string, min: number, max: number): number {
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(text)) fail(flag, `${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (n < min || n > max) fail(flag, `${n} is out of range [${min}, ${max}]`);
  return n;
}

export interface ProcessRef {
  readonly name: string;
  readonly pid: number;
}

export function processList(text: string): ProcessRef[] {
  const list: ProcessRef[] = [];
  for (const item of text.split(",")) {
    const m = /^([A-Za-z0-9_.-]{1,32})=(\d{1,9})$/.exec(item);
    if (m === null) fail("pids", `${JSON.stringify(item)} is not name=pid (name: 1-32 of [A-Za-z0-9_.-])`);
    const pid = Number(m[2]);
    if (pid < 1) fail("pids", `pid of ${m[1]} must be >= 1`);
    if (list.some((p) => p.name === m[1])) fail("pids", `name ${m[1]} is given twice`);
    list.push({ name: m[1]!, pid });
  }
  if (list.length > 32) fail("pids", `at most 32 processes, got ${list.length}`);
  return list;
}

export interface SplitFlags<V extends string, B extends string> {
  readonly values: ReadonlyMap<V, string>;
  readonly booleans: ReadonlySet<B>;
}

/**
 * Splits the arguments after the scenario into value flags and boolean flags, refusing unknown
 * flags, repeated flags, missing or empty values and values given to a boolean flag.
 */
export function splitFlags<V extends string, B extends string>(
  rest: readonly string[],
  valueFlags: readonly V[],
  booleanFlags: readonly B[],
  scenario: string,
): SplitFlags<V, B> {
  const values = new Map<V, string>();
  const booleans = new Set<B>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (m === null) throw new FlagError(`unexpected argument ${JSON.stringify(arg)} (flags start with --)`);
    const name = m[1]!;
    if ((booleanFlags as readonly string[]).includes(name)) {
      if (m[2] !== undefined) fail(name, "takes no value");
      if (booleans.has(name as B)) fail(name, "is given twice");
      booleans.add(name as B);
      continue;
    }
    if (!(valueFlags as readonly string[]).includes(name)) {
      throw new FlagError(`unknown flag --${name} for ${scenario} (see --help)`);
    }
    const flag = name as V;
    if (values.has(flag)) fail(name, "is given twice");
    let value = m[2];
    if (value === undefined) {
      value = rest[i + 1];
      if (value === undefined || value.startsWith("--")) fail(name, "needs a value");
      i++;
    }
    if (value === "") fail(name, "needs a non-empty value");
    values.set(flag, value);
  }
  return { values, booleans };
}
