/**
 * Schemas as a product: every schema has its versions under schemas/history/ with pinned
 * fingerprints (schemas/versions.ts), every version follows the evolution rules from the one
 * before (schemas/evolution.ts), and golden bytes written by every version (schemas/golden/)
 * still decode with the current code. Editing a current .avsc in a way that changes its
 * fingerprint, without adding a history version, fails here; so does an incompatible version.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import avro from "avsc";
import { deliveryCodec } from "../../schemas/codec.ts";
import { evolutionViolations } from "../../schemas/evolution.ts";
import { schemaFingerprint } from "../../schemas/fingerprint.ts";
import {
  clientFrameCodec,
  decodeClientFrameAvro,
  decodeServerFrameAvro,
  serverFrameCodec,
} from "../../schemas/frame-codec.ts";
import { encodeGolden } from "../../schemas/golden/make-golden.ts";
import { GOLDENS, type Golden } from "../../schemas/golden/values.ts";
import type { RecordCodec } from "../../schemas/record-codec.ts";
import { channelEventCodec, membershipCodec, roomEventCodec } from "../../schemas/records.ts";
import { SCHEMAS, SCHEMA_KINDS, type SchemaKind, type SchemaVersion } from "../../schemas/versions.ts";

const SCHEMAS_DIR = new URL("../../schemas/", import.meta.url);
const readJson = (file: string): unknown => JSON.parse(readFileSync(new URL(file, SCHEMAS_DIR), "utf8"));

/** What this test uses of a RecordCodec, whatever its record type. */
type AnyCodec = Pick<RecordCodec<object>, "name" | "fingerprint" | "knownFingerprints"> & {
  decode(bytes: Uint8Array): unknown;
};

const CODECS: Readonly<Record<SchemaKind, AnyCodec>> = {
  delivery: deliveryCodec,
  roomEvent: roomEventCodec,
  membership: membershipCodec,
  channelEvent: channelEventCodec,
  clientFrame: clientFrameCodec,
  serverFrame: serverFrameCodec,
};

function canonical(schema: unknown): string {
  return JSON.stringify(avro.Type.forSchema(schema as avro.Schema).schema());
}
const fingerprintOf = (schema: unknown): bigint => schemaFingerprint(canonical(schema));
const hex = (fp: bigint): string => `0x${fp.toString(16).padStart(16, "0")}n`;

/**
 * What is wrong with a schema's history, given its current schema: the check the real files
 * must pass, and that an edited current schema must fail.
 */
function historyProblems(kind: SchemaKind, current: unknown): string[] {
  const entry = SCHEMAS[kind];
  const versions: readonly SchemaVersion[] = entry.versions;
  const problems: string[] = [];
  versions.forEach((v, i) => {
    if (v.version !== i + 1) problems.push(`${kind}: version ${v.version} listed at position ${i + 1}`);
    const schema = readJson(v.file);
    const fp = fingerprintOf(schema);
    if (fp !== v.fingerprint) {
      problems.push(
        `${v.file}: fingerprint ${hex(fp)}, pinned ${hex(v.fingerprint)}: history files never change`,
      );
    }
    if (i > 0) {
      const before = readJson(versions[i - 1]!.file);
      for (const p of evolutionViolations(before, schema)) problems.push(`${v.file}: ${p}`);
    }
  });
  const last = versions[versions.length - 1]!;
  const fp = fingerprintOf(current);
  if (fp !== last.fingerprint) {
    const next = last.file.replace(/-v\d+\.avsc$/, `-v${last.version + 1}.avsc`);
    problems.push(
      `${entry.file} changed (fingerprint ${hex(fp)}) without a history version: copy it to ` +
        `schemas/${next}, pin ${hex(fp)} in schemas/versions.ts, add its golden values and run make-golden`,
    );
  }
  // Also when the fingerprint is the same: the canonical form drops logical types and defaults.
  for (const p of evolutionViolations(readJson(last.file), current)) problems.push(`${entry.file}: ${p}`);
  return problems;
}

test("the fingerprints are pinned", () => {
  // The header of every record on the topics and of every binary frame carries one of these.
  const pinned = Object.fromEntries(
    SCHEMA_KINDS.map((k) => [k, SCHEMAS[k].versions.map((v) => hex(v.fingerprint))]),
  );
  assert.deepEqual(pinned, {
    delivery: ["0xcaa51b1e00b17a4dn"],
    roomEvent: ["0x9854cacda5310e90n"],
    membership: ["0x0b84dc01baba3fd6n"],
    channelEvent: ["0x8406d14dc430483fn"],
    clientFrame: ["0xdafbbe137bc3f5d1n"],
    serverFrame: ["0xa8c12ae2773a6499n"],
  });
});

test("every schema's history is complete, pinned and follows the rules", () => {
  for (const kind of SCHEMA_KINDS) {
    assert.deepEqual(historyProblems(kind, readJson(SCHEMAS[kind].file)), [], kind);
  }
});

test("every codec reads every version of its schema, and writes the current one", () => {
  for (const kind of SCHEMA_KINDS) {
    const codec = CODECS[kind];
    const versions: readonly SchemaVersion[] = SCHEMAS[kind].versions;
    assert.equal(codec.name, SCHEMAS[kind].name);
    assert.equal(codec.fingerprint, versions[versions.length - 1]!.fingerprint, kind);
    assert.deepEqual(
      new Set(codec.knownFingerprints),
      new Set(versions.map((v) => v.fingerprint)),
      `${kind}: the codec must get every earlier version as \`earlier\` (earlierSchemas("${kind}"))`,
    );
  }
});

test("every .avsc documents its records and every field", () => {
  const files = [
    ...readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith(".avsc")),
    ...readdirSync(new URL("history/", SCHEMAS_DIR)).map((f) => `history/${f}`),
  ];
  assert.deepEqual(
    new Set(files.filter((f) => !f.startsWith("history/"))),
    new Set(SCHEMA_KINDS.map((k) => SCHEMAS[k].file)),
    "every schema file is in the catalogue",
  );
  const undocumented: string[] = [];
  const walk = (s: unknown, where: string): void => {
    if (Array.isArray(s)) return s.forEach((b, i) => walk(b, `${where}<${i}>`));
    if (typeof s !== "object" || s === null) return;
    const o = s as Record<string, unknown>;
    if (o["type"] === "record" || o["type"] === "enum") {
      if (typeof o["doc"] !== "string" || o["doc"] === "")
        undocumented.push(`${where} (${String(o["name"])})`);
    }
    for (const f of (o["fields"] ?? []) as Record<string, unknown>[]) {
      if (typeof f["doc"] !== "string" || f["doc"] === "") undocumented.push(`${where}.${String(f["name"])}`);
      walk(f["type"], `${where}.${String(f["name"])}`);
    }
    if (o["type"] === "array") walk(o["items"], `${where}[]`);
    if (o["type"] === "map") walk(o["values"], `${where}{}`);
  };
  for (const f of files) walk(readJson(f), f);
  assert.deepEqual(undocumented, []);
});

/** The value a golden of an earlier version decodes to now: added fields take their defaults. */
function upgraded(g: Golden): unknown {
  if (g.kind === "clientFrame" || g.kind === "serverFrame") return g.value;
  const writer = readJson(SCHEMAS[g.kind].versions[g.version - 1]!.file) as { fields: { name: string }[] };
  const current = readJson(SCHEMAS[g.kind].file) as { fields: { name: string; default?: unknown }[] };
  const had = new Set(writer.fields.map((f) => f.name));
  const out: Record<string, unknown> = { ...g.value };
  for (const f of current.fields) if (!had.has(f.name)) out[f.name] = f.default;
  return out;
}

function decodeCurrent(g: Golden, bytes: Buffer): unknown {
  if (g.kind === "clientFrame") {
    const r = decodeClientFrameAvro(bytes);
    assert.ok(r.ok, `${g.file}: ${r.ok ? "" : r.error.message}`);
    return r.frame;
  }
  if (g.kind === "serverFrame") {
    const r = decodeServerFrameAvro(bytes);
    assert.ok(r.ok, `${g.file}: ${r.ok ? "" : r.error.message}`);
    return r.frame;
  }
  return CODECS[g.kind].decode(bytes);
}

test("golden bytes of every version decode with the current code", () => {
  for (const g of GOLDENS) {
    const path = new URL(`golden/${g.file}`, SCHEMAS_DIR);
    assert.ok(existsSync(path), `${g.file} is missing: run npx tsx schemas/golden/make-golden.ts`);
    const bytes = readFileSync(path);
    const version = SCHEMAS[g.kind].versions[g.version - 1]!;
    // Written by that version: its fingerprint, and a body its own schema reads back to the bytes.
    assert.deepEqual([...bytes.subarray(0, 2)], [0xc3, 0x01], g.file);
    assert.equal(hex(bytes.readBigUInt64LE(2)), hex(version.fingerprint), g.file);
    const writer = avro.Type.forSchema(readJson(version.file) as avro.Schema);
    assert.deepEqual(writer.toBuffer(writer.fromBuffer(bytes.subarray(10))), bytes.subarray(10), g.file);
    // If this fails, records already in Kafka (or frames of deployed clients) no longer decode.
    assert.deepEqual(decodeCurrent(g, bytes), upgraded(g), g.file);
    const versions: readonly SchemaVersion[] = SCHEMAS[g.kind].versions;
    if (g.version === versions[versions.length - 1]!.version) {
      assert.deepEqual(encodeGolden(g), bytes, `${g.file}: the current version writes the same bytes`);
    }
  }
});

test("every version of every schema has golden bytes", () => {
  for (const kind of SCHEMA_KINDS) {
    for (const v of SCHEMAS[kind].versions) {
      assert.ok(
        GOLDENS.some((g) => g.kind === kind && g.version === v.version),
        `${kind} v${v.version} has no golden value in schemas/golden/values.ts`,
      );
    }
  }
  const frames = (kind: SchemaKind) =>
    new Set(GOLDENS.filter((g) => g.kind === kind).map((g) => (g.value as { op: string }).op));
  assert.equal(frames("clientFrame").size, 9, "a golden per client op");
  assert.equal(frames("serverFrame").size, 7, "a golden per server op");
});

// ---- the rules themselves ----

type Schema = Record<string, unknown> & { fields: Record<string, unknown>[] };
const clone = (file: string): Schema => structuredClone(readJson(file)) as Schema;
const field = (s: Schema, name: string) => s.fields.find((f) => f["name"] === name)!;

test("incompatible edits of a current schema fail the history check, naming the problem", () => {
  const cases: ReadonlyArray<readonly [SchemaKind, string, (s: Schema) => void, RegExp]> = [
    [
      "delivery",
      "remove a field",
      (s) => (s.fields = s.fields.filter((f) => f["name"] !== "room")),
      /room: field removed/,
    ],
    [
      "delivery",
      "rename a field",
      (s) => (field(s, "sender")["name"] = "from"),
      /sender: field removed or renamed/,
    ],
    [
      "delivery",
      "add a field without default",
      (s) => s.fields.push({ name: "x", type: "string", doc: "d" }),
      /x: field added without a default/,
    ],
    [
      "delivery",
      "change a type",
      (s) => (field(s, "ts")["type"] = "string"),
      /ts: type changed from long to string/,
    ],
    ["delivery", "drop a logical type", (s) => (field(s, "ts")["type"] = "long"), /ts: logical type changed/],
    ["delivery", "rename the record", (s) => (s["name"] = "Delivered"), /renamed to rt\.v1\.Delivered/],
    [
      "roomEvent",
      "remove an enum symbol",
      (s) => ((field(s, "kind")["type"] as { symbols: string[] }).symbols = ["message", "join"]),
      /enum symbol leave removed/,
    ],
    [
      "roomEvent",
      "make a nullable field required",
      (s) => {
        field(s, "member")["type"] = "string";
        delete field(s, "member")["default"];
      },
      /member: type changed from union to string/,
    ],
    [
      "clientFrame",
      "remove an op",
      (s) => (field(s, "frame")["type"] as unknown[]).pop(),
      /frame: union branches removed/,
    ],
    [
      "serverFrame",
      "reorder ops",
      (s) => (field(s, "frame")["type"] as unknown[]).reverse(),
      /frame<0>: record rt\.v1\.server\.Welcome renamed/,
    ],
  ];
  for (const [kind, what, edit, problem] of cases) {
    const s = clone(SCHEMAS[kind].file);
    edit(s);
    const problems = historyProblems(kind, s);
    assert.ok(
      problems.some((p) => problem.test(p)),
      `${what}: ${problems.join("; ")}`,
    );
    if (fingerprintOf(s) !== CODECS[kind].fingerprint) {
      assert.ok(
        problems.some((p) => /without a history version/.test(p)),
        `${what}: ${problems.join("; ")}`,
      );
    }
  }
});

test("allowed edits pass the rules (and Avro resolves old records with them)", () => {
  const cases: ReadonlyArray<readonly [SchemaKind, string, (s: Schema) => void]> = [
    [
      "delivery",
      "add a field with a default",
      (s) => s.fields.push({ name: "lang", type: ["null", "string"], default: null, doc: "d" }),
    ],
    ["delivery", "change docs", (s) => (field(s, "id")["doc"] = "another doc")],
    [
      "roomEvent",
      "add an enum symbol at the end",
      (s) => (field(s, "kind")["type"] as { symbols: string[] }).symbols.push("kick"),
    ],
    [
      "serverFrame",
      "promote an int to a long",
      (s) => {
        const welcome = (field(s, "frame")["type"] as Schema[])[0]!;
        field(welcome, "heartbeat_s")["type"] = "long";
      },
    ],
    [
      "clientFrame",
      "add an op at the end",
      (s) =>
        (field(s, "frame")["type"] as unknown[]).push({
          type: "record",
          name: "Typing",
          namespace: "rt.v1.client",
          doc: "d",
          fields: [{ name: "id", type: "string", doc: "d" }],
        }),
    ],
  ];
  for (const [kind, what, edit] of cases) {
    const before = readJson(SCHEMAS[kind].file);
    const after = clone(SCHEMAS[kind].file);
    edit(after);
    assert.deepEqual(evolutionViolations(before, after), [], what);
    const reader = avro.Type.forSchema(after as unknown as avro.Schema);
    assert.doesNotThrow(() => reader.createResolver(avro.Type.forSchema(before as avro.Schema)), what);
  }
});

test("docs/DATA.md lists every schema with its current header fingerprint", () => {
  const doc = readFileSync(new URL("../../docs/DATA.md", import.meta.url), "utf8");
  for (const kind of SCHEMA_KINDS) {
    const versions: readonly SchemaVersion[] = SCHEMAS[kind].versions;
    const le = Buffer.alloc(8);
    le.writeBigUInt64LE(versions[versions.length - 1]!.fingerprint);
    const row = new RegExp(
      `\\| \`${SCHEMAS[kind].name.replace(/\./g, "\\.")}\` \\|.*\\| \`${le.toString("hex")}\` \\|`,
    );
    assert.match(doc, row, kind);
  }
});
