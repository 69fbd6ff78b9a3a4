/**
 * A bounded structural check of an Avro binary value, run before handing untrusted bytes to avsc.
 *
 * Why: avsc trusts the counts it reads. A map or array block that claims 2^60 entries makes it
 * loop for ages on a 10-byte record (it reads zeros past the end of the buffer and only checks
 * the position afterwards), and anyone who can produce to rt.deliveries could stall every gateway
 * that way. This scanner walks the same bytes by the schema, with a cost linear in the input:
 * every length and count must fit in the bytes that remain, varints have at most 10 bytes, union
 * and enum indexes must exist. Only a value that passes is decoded by avsc.
 *
 * It reads the schema's JSON form (as avsc's `Type#schema()` gives it, names fully qualified), and
 * is compiled once per schema into closures.
 */

export type ScanResult =
  | { ok: true; end: number }
  | { ok: false; code: "truncated" | "bad_body"; message: string };

/** Zero-byte items (null, empty records) cannot be bounded by the input size; this caps them. */
export const MAX_ZERO_SIZE_ITEMS = 65_536;

type Step = (r: Reader) => void;

interface Reader {
  readonly buf: Uint8Array;
  pos: number;
}

class ScanFailure {
  constructor(
    readonly code: "truncated" | "bad_body",
    readonly message: string,
  ) {}
}

/** Compiles `schema` (Avro schema JSON) into a scanner. Throws on a schema it cannot walk. */
export function compileScanner(schema: unknown): (buf: Uint8Array, pos: number) => ScanResult {
  const named = new Map<string, { step: Step; minBytes: number }>();
  const root = compile(schema, named);
  return (buf, pos) => {
    const r: Reader = { buf, pos };
    try {
      root.step(r);
      return { ok: true, end: r.pos };
    } catch (e) {
      if (e instanceof ScanFailure) return { ok: false, code: e.code, message: e.message };
      // Stack exhaustion on deeply recursive schemas lands here: still bad input, not a crash.
      return { ok: false, code: "bad_body", message: `scan failed: ${String(e)}` };
    }
  };
}

interface Compiled {
  step: Step;
  /** The fewest bytes any value of this type takes, to bound counts by the bytes left. */
  minBytes: number;
}

const FIXED_WIDTH: Readonly<Record<string, number>> = { null: 0, float: 4, double: 8 };

function compile(schema: unknown, named: Map<string, Compiled>): Compiled {
  if (typeof schema === "string") {
    switch (schema) {
      case "null":
      case "float":
      case "double": {
        const width = FIXED_WIDTH[schema]!;
        return { step: (r) => take(r, width), minBytes: width };
      }
      case "boolean":
        return { step: (r) => void readBoolean(r), minBytes: 1 };
      case "int":
        return { step: (r) => void readVarint(r, 5), minBytes: 1 };
      case "long":
        return { step: (r) => void readVarint(r, 10), minBytes: 1 };
      case "bytes":
      case "string":
        return { step: (r) => take(r, readLength(r)), minBytes: 1 };
      default: {
        const ref = named.get(schema);
        if (ref === undefined) throw new Error(`avro-scan: unknown type ${schema}`);
        // Late-bound so recursive records work: the entry is filled in after its fields compile.
        return { step: (r) => ref.step(r), minBytes: ref.minBytes };
      }
    }
  }
  if (Array.isArray(schema)) {
    const branches = schema.map((s) => compile(s, named));
    return {
      step: (r) => {
        const index = readVarint(r, 5);
        const branch = branches[index];
        if (branch === undefined) throw new ScanFailure("bad_body", `union index ${index} out of range`);
        branch.step(r);
      },
      minBytes: 1,
    };
  }
  if (typeof schema !== "object" || schema === null) throw new Error("avro-scan: bad schema");
  const s = schema as Record<string, unknown>;
  switch (s["type"]) {
    case "record":
    case "error": {
      const entry: Compiled = { step: () => undefined, minBytes: 0 };
      named.set(String(s["name"]), entry);
      const fields = (s["fields"] as { type: unknown }[]).map((f) => compile(f.type, named));
      entry.step = (r) => {
        for (const f of fields) f.step(r);
      };
      entry.minBytes = fields.reduce((sum, f) => sum + f.minBytes, 0);
      return entry;
    }
    case "enum": {
      const count = (s["symbols"] as unknown[]).length;
      const entry: Compiled = {
        step: (r) => {
          const index = readVarint(r, 5);
          if (index < 0 || index >= count)
            throw new ScanFailure("bad_body", `enum index ${index} out of range`);
        },
        minBytes: 1,
      };
      named.set(String(s["name"]), entry);
      return entry;
    }
    case "fixed": {
      const size = Number(s["size"]);
      const entry: Compiled = { step: (r) => take(r, size), minBytes: size };
      named.set(String(s["name"]), entry);
      return entry;
    }
    case "array": {
      const items = compile(s["items"], named);
      return { step: (r) => readBlocks(r, items.minBytes, items.step), minBytes: 1 };
    }
    case "map": {
      const values = compile(s["values"], named);
      const entry: Step = (r) => {
        take(r, readLength(r));
        values.step(r);
      };
      return { step: (r) => readBlocks(r, 1 + values.minBytes, entry), minBytes: 1 };
    }
    default:
      // {"type": "long"} and friends, logical types included (their bytes are the base type's).
      if (typeof s["type"] === "string" || Array.isArray(s["type"])) return compile(s["type"], named);
      throw new Error("avro-scan: bad schema");
  }
}

function take(r: Reader, n: number): void {
  if (n > r.buf.length - r.pos) throw new ScanFailure("truncated", "value ends past the end of the input");
  r.pos += n;
}

function readBoolean(r: Reader): void {
  take(r, 1);
  if (r.buf[r.pos - 1]! > 1) throw new ScanFailure("bad_body", "boolean byte not 0 or 1");
}

/**
 * A zigzag varint of at most `maxBytes` bytes. Float arithmetic keeps it exact up to 2^53, and
 * beyond that only the magnitude matters: such a value is never a valid length, count or index.
 */
function readVarint(r: Reader, maxBytes: number): number {
  let raw = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (r.pos >= r.buf.length) throw new ScanFailure("truncated", "varint ends past the end of the input");
    const b = r.buf[r.pos++]!;
    raw += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return raw % 2 === 1 ? -(raw + 1) / 2 : raw / 2;
    scale *= 128;
  }
  throw new ScanFailure("bad_body", `varint longer than ${maxBytes} bytes`);
}

function readLength(r: Reader): number {
  const n = readVarint(r, 10);
  if (n < 0) throw new ScanFailure("bad_body", "negative length");
  return n;
}

/** Array and map blocks: count, then (if the count is negative) a byte size, then the items. */
function readBlocks(r: Reader, itemMinBytes: number, item: Step): void {
  let zeroSizeItems = 0;
  for (;;) {
    let count = readVarint(r, 10);
    if (count === 0) return;
    if (count < 0) {
      count = -count;
      readLength(r); // the block's byte size: a skipping hint, not trusted
    }
    if (itemMinBytes > 0) {
      if (count * itemMinBytes > r.buf.length - r.pos) {
        throw new ScanFailure("truncated", `block of ${count} items ends past the end of the input`);
      }
    } else {
      zeroSizeItems += count;
      if (zeroSizeItems > MAX_ZERO_SIZE_ITEMS) throw new ScanFailure("bad_body", "too many zero-size items");
    }
    for (let i = 0; i < count; i++) item(r);
  }
}
