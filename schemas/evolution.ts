/**
 * The project's schema evolution rules as a check of two versions of one schema (docs/DATA.md,
 * "Schema evolution"). Stricter than Avro's own resolution, which also accepts changes that
 * break readers still on the older schema (a removed field, a field made nullable):
 *
 * - allowed: adding a field with a default; adding an enum symbol or a union branch at the end;
 *   the promotions Avro resolves (int to long, float or double; long to float or double; float
 *   to double; string to bytes and back); changing docs, defaults of existing fields and order.
 * - not allowed: removing or renaming a field or a named type, adding a field without a
 *   default, any other change of a type (including its logical type), removing or reordering
 *   enum symbols or union branches.
 *
 * Pure: takes schema JSON (as in the .avsc files), returns every violation found, with where.
 */

type Json = unknown;
type Obj = Readonly<Record<string, Json>>;

const PROMOTIONS: Readonly<Record<string, readonly string[]>> = {
  int: ["long", "float", "double"],
  long: ["float", "double"],
  float: ["double"],
  string: ["bytes"],
  bytes: ["string"],
};

const PRIMITIVES = new Set(["null", "boolean", "int", "long", "float", "double", "bytes", "string"]);

/** Violations of the rules when `newer` replaces `older`; empty when the change is allowed. */
export function evolutionViolations(older: Json, newer: Json): string[] {
  const out: string[] = [];
  compare(older, newer, "", new Map(), new Map(), out, new Set());
  return out;
}

interface Named {
  readonly name: string;
  readonly schema: Obj;
}

function fullName(s: Obj, namespace: string): string {
  const name = String(s["name"]);
  if (name.includes(".")) return name;
  const ns = typeof s["namespace"] === "string" ? s["namespace"] : namespace;
  return ns === "" ? name : `${ns}.${name}`;
}

function namespaceOf(full: string): string {
  const dot = full.lastIndexOf(".");
  return dot < 0 ? "" : full.slice(0, dot);
}

/** A type's kind and, for named types, its full name; references are resolved. */
function resolve(
  s: Json,
  ns: string,
  names: Map<string, Named>,
): { kind: string; name?: string; schema: Json; ns: string } {
  if (typeof s === "string") {
    if (PRIMITIVES.has(s)) return { kind: s, schema: s, ns };
    const full = s.includes(".") ? s : ns === "" ? s : `${ns}.${s}`;
    const named = names.get(full) ?? names.get(s);
    if (named === undefined) return { kind: `unknown ${s}`, schema: s, ns };
    return {
      kind: String(named.schema["type"]),
      name: named.name,
      schema: named.schema,
      ns: namespaceOf(named.name),
    };
  }
  if (Array.isArray(s)) return { kind: "union", schema: s, ns };
  const o = s as Obj;
  const type = o["type"];
  if (typeof type === "string" && ["record", "error", "enum", "fixed"].includes(type)) {
    const name = fullName(o, ns);
    names.set(name, { name, schema: o });
    return { kind: type === "error" ? "record" : type, name, schema: o, ns: namespaceOf(name) };
  }
  if (typeof type === "string" && PRIMITIVES.has(type)) {
    return { kind: type, schema: o, ns };
  }
  if (type === "array" || type === "map") return { kind: type, schema: o, ns };
  return resolve(type, ns, names);
}

function logicalType(s: Json): string | undefined {
  if (typeof s !== "object" || s === null || Array.isArray(s)) return undefined;
  const lt = (s as Obj)["logicalType"];
  return typeof lt === "string" ? lt : undefined;
}

function compare(
  older: Json,
  newer: Json,
  where: string,
  olderNames: Map<string, Named>,
  newerNames: Map<string, Named>,
  out: string[],
  seen: Set<string>,
): void {
  const a = resolve(older, "", olderNames);
  const b = resolve(newer, "", newerNames);
  compareResolved(a, b, where, olderNames, newerNames, out, seen);
}

function compareResolved(
  a: ReturnType<typeof resolve>,
  b: ReturnType<typeof resolve>,
  where: string,
  olderNames: Map<string, Named>,
  newerNames: Map<string, Named>,
  out: string[],
  seen: Set<string>,
): void {
  const at = where === "" ? "the schema" : where;
  if (a.kind !== b.kind) {
    if (!(PROMOTIONS[a.kind] ?? []).includes(b.kind)) {
      out.push(`${at}: type changed from ${a.kind} to ${b.kind}`);
    }
    return;
  }
  if (logicalType(a.schema) !== logicalType(b.schema)) {
    out.push(
      `${at}: logical type changed from ${logicalType(a.schema) ?? "none"} to ${logicalType(b.schema) ?? "none"}`,
    );
  }
  if (a.name !== b.name) {
    out.push(`${at}: ${a.kind} ${a.name ?? ""} renamed to ${b.name ?? ""}`);
    return;
  }
  const sub = (x: Json, xs: string, y: Json, ys: string, w: string) =>
    compareResolved(
      resolve(x, xs, olderNames),
      resolve(y, ys, newerNames),
      w,
      olderNames,
      newerNames,
      out,
      seen,
    );
  switch (a.kind) {
    case "record": {
      // Named types recurse; compare each pair once.
      if (seen.has(a.name!)) return;
      seen.add(a.name!);
      const fa = ((a.schema as Obj)["fields"] ?? []) as Obj[];
      const fb = ((b.schema as Obj)["fields"] ?? []) as Obj[];
      const byName = new Map(fb.map((f) => [String(f["name"]), f]));
      const prefix = where === "" ? "" : `${where}.`;
      for (const f of fa) {
        const name = String(f["name"]);
        const g = byName.get(name);
        if (g === undefined) {
          out.push(`${prefix}${name}: field removed or renamed`);
          continue;
        }
        sub(f["type"], a.ns, g["type"], b.ns, `${prefix}${name}`);
      }
      const had = new Set(fa.map((f) => String(f["name"])));
      for (const g of fb) {
        const name = String(g["name"]);
        if (!had.has(name) && !Object.hasOwn(g, "default")) {
          out.push(`${prefix}${name}: field added without a default`);
        }
      }
      return;
    }
    case "enum": {
      const sa = ((a.schema as Obj)["symbols"] ?? []) as string[];
      const sb = ((b.schema as Obj)["symbols"] ?? []) as string[];
      sa.forEach((sym, i) => {
        if (sb[i] !== sym) out.push(`${at}: enum symbol ${sym} removed or moved`);
      });
      return;
    }
    case "fixed": {
      if ((a.schema as Obj)["size"] !== (b.schema as Obj)["size"]) out.push(`${at}: fixed size changed`);
      return;
    }
    case "array":
      sub((a.schema as Obj)["items"], a.ns, (b.schema as Obj)["items"], b.ns, `${where}[]`);
      return;
    case "map":
      sub((a.schema as Obj)["values"], a.ns, (b.schema as Obj)["values"], b.ns, `${where}{}`);
      return;
    case "union": {
      const ua = a.schema as Json[];
      const ub = b.schema as Json[];
      if (ub.length < ua.length) out.push(`${at}: union branches removed`);
      ua.forEach((branch, i) => {
        if (i < ub.length) sub(branch, a.ns, ub[i], b.ns, `${where}<${i}>`);
      });
      return;
    }
    default:
      return;
  }
}
