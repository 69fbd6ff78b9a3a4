/**
 * One Avro record schema and its two framings on Kafka, for every record type of the topics
 * (Delivery, RoomEvent, Membership, ChannelEvent):
 *
 * - single-object (the default; Avro spec "Single object encoding"): C3 01, the 8-byte
 *   CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, little-endian, then the
 *   Avro binary body. Self-describing: any Avro library holding the schema reads it, no registry.
 * - confluent: 00, a 4-byte big-endian schema-registry id, then the body. For consumers that go
 *   through a schema registry (Kafka Connect, ksqlDB). Registry lookups are I/O and live
 *   elsewhere; decoding trusts the id unless told which ids to accept, and reads the body with
 *   the current schema.
 *
 * Evolution: records written with an earlier version of a schema keep that version's
 * fingerprint. A codec built with `earlier` writer schemas recognises their fingerprints and
 * resolves such records to the current schema (Avro schema resolution: added fields take their
 * defaults). The decoder tells the framing from the first byte. Every failure is a CodecError with
 * a stable code; untrusted bytes are checked by a bounded scan before avsc sees them (see
 * avro-scan.ts).
 */
import { readFileSync } from "node:fs";
import avro from "avsc";
import { compileScanner, type ScanResult } from "./avro-scan.ts";
import { schemaFingerprint } from "./fingerprint.ts";

export const CODEC_ERROR_CODES = {
  bad_magic: "the first bytes are neither single-object (C3 01) nor Confluent (00) framing",
  unknown_fingerprint: "single-object framing, but with a schema fingerprint this codec does not know",
  unknown_schema_id: "Confluent framing with a schema id the caller does not accept",
  truncated: "the input ends before the record does",
  bad_body: "the Avro body is not a valid record of the schema, or bytes follow it",
  bad_value: "encode: the value does not match the schema",
} as const;
export type CodecErrorCode = keyof typeof CODEC_ERROR_CODES;

/** A record that cannot be encoded or decoded. Never retriable: the same bytes fail the same way. */
export class CodecError extends Error {
  override readonly name = "CodecError";
  readonly retriable = false;
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type Framing = { framing: "single-object" } | { framing: "confluent"; schemaId: number };

export interface DecodeOptions {
  /** Confluent framing: the schema ids to accept; others fail with `unknown_schema_id`. Default: any. */
  readonly confluentSchemaIds?: ReadonlySet<number>;
}

export type RecordDecodeResult<T> =
  | { ok: true; value: T; framing: Framing; fingerprint: bigint }
  | { ok: false; error: CodecError };

export const SINGLE_OBJECT: Framing = Object.freeze({ framing: "single-object" });

const CONFLUENT_MAGIC = 0x00;
const CONFLUENT_HEADER_BYTES = 5;
const SINGLE_OBJECT_HEADER_BYTES = 10;

/** Reads a schema file next to this module (schemas/*.avsc). */
export function readSchemaFile(file: string): unknown {
  return JSON.parse(readFileSync(new URL(`./${file}`, import.meta.url), "utf8"));
}

interface Reader {
  readonly scan: (buf: Uint8Array, pos: number) => ScanResult;
  readonly read: (buf: Buffer, pos: number) => { value: unknown; offset: number };
}

export class RecordCodec<T extends object> {
  /** The record's full name, e.g. rt.v1.Delivery. */
  readonly name: string;
  /** The current schema as written in its .avsc file. */
  readonly schema: unknown;
  /** Parsing Canonical Form of the current schema: avsc's `schema()` with no options is exactly that. */
  readonly canonicalForm: string;
  /** CRC-64-AVRO of the canonical form, unsigned. */
  readonly fingerprint: bigint;
  readonly #type: avro.Type;
  readonly #header: Buffer;
  /** Readers by writer fingerprint: the current schema and every earlier version. */
  readonly #readers = new Map<bigint, Reader>();
  readonly #current: Reader;
  readonly #toPlain: (v: T) => T;

  /**
   * `schema`: the current version. `earlier`: every earlier version still found on the topics,
   * each resolvable to the current one. `toPlain` copies avsc's record instances into plain objects.
   */
  constructor(schema: unknown, toPlain: (v: T) => T, earlier: readonly unknown[] = []) {
    this.schema = schema;
    this.#type = avro.Type.forSchema(schema as avro.Schema);
    this.name = this.#type.name ?? "record";
    this.canonicalForm = JSON.stringify(this.#type.schema());
    this.fingerprint = schemaFingerprint(this.canonicalForm);
    this.#toPlain = toPlain;
    this.#header = Buffer.alloc(SINGLE_OBJECT_HEADER_BYTES);
    this.#header[0] = 0xc3;
    this.#header[1] = 0x01;
    this.#header.writeBigUInt64LE(this.fingerprint, 2);
    const type = this.#type;
    this.#current = {
      scan: compileScanner(type.schema()),
      read: (buf, pos) => type.decode(buf, pos),
    };
    this.#readers.set(this.fingerprint, this.#current);
    for (const old of earlier) {
      const writer = avro.Type.forSchema(old as avro.Schema);
      const fp = schemaFingerprint(JSON.stringify(writer.schema()));
      // Throws for a version that cannot be resolved: a schema change that broke the rules.
      const resolver = type.createResolver(writer);
      this.#readers.set(fp, {
        scan: compileScanner(writer.schema()),
        read: (buf, pos) => type.decode(buf, pos, resolver),
      });
    }
  }

  /** Fingerprints this codec reads, the current one first. */
  get knownFingerprints(): bigint[] {
    return [...this.#readers.keys()];
  }

  /**
   * Encodes `v` with the current schema in the given framing (single-object by default). Throws
   * CodecError `bad_value` when `v` does not match the schema, naming the field; throws RangeError
   * for a schema id that is not a non-negative 32-bit int (a configuration bug).
   */
  encode(v: T, framing: Framing = SINGLE_OBJECT): Buffer {
    const header = framing.framing === "confluent" ? confluentHeader(framing.schemaId) : this.#header;
    const attributes = (v as { attributes?: unknown }).attributes;
    // avsc decodes maps into plain objects, where a "__proto__" key would vanish: refuse it here.
    if (attributes !== null && typeof attributes === "object" && Object.hasOwn(attributes, "__proto__")) {
      throw new CodecError("bad_value", `not an ${this.name}: attribute key "__proto__" is reserved`);
    }
    for (const [key, value] of Object.entries(v)) {
      // avsc mis-encodes negative longs below -2^52; no timestamp of ours is negative.
      if (typeof value === "number" && value < 0 && /ts$/.test(key)) {
        throw new CodecError("bad_value", `not an ${this.name}: bad field ${key} (negative)`);
      }
    }
    let body: Buffer;
    try {
      body = this.#type.toBuffer(v);
    } catch (cause) {
      throw new CodecError("bad_value", `not an ${this.name}: ${this.#invalidPath(v)}`, { cause });
    }
    return Buffer.concat([header, body], header.length + body.length);
  }

  /** Decodes a record in either framing; throws CodecError on anything else. */
  decode(bytes: Uint8Array, options?: DecodeOptions): T {
    const r = this.tryDecode(bytes, options);
    if (!r.ok) throw r.error;
    return r.value;
  }

  /** Decodes a record in either framing. Never throws: a bad record is an expected outcome. */
  tryDecode(bytes: Uint8Array, options?: DecodeOptions): RecordDecodeResult<T> {
    const buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buf.length === 0) return fail("truncated", "empty input");
    let framing: Framing;
    let bodyStart: number;
    let reader: Reader;
    let fingerprint = this.fingerprint;
    if (buf[0] === 0xc3) {
      if (buf.length < 2) return fail("truncated", "input ends inside the single-object header");
      if (buf[1] !== 0x01)
        return fail("bad_magic", `single-object marker C3 ${hex(buf[1]!)}, expected C3 01`);
      if (buf.length < SINGLE_OBJECT_HEADER_BYTES) {
        return fail("truncated", "input ends inside the single-object header");
      }
      fingerprint = buf.readBigUInt64LE(2);
      const known = this.#readers.get(fingerprint);
      if (known === undefined) {
        const got = fingerprint.toString(16).padStart(16, "0");
        return fail("unknown_fingerprint", `schema fingerprint ${got} is not a version of ${this.name}`);
      }
      reader = known;
      framing = SINGLE_OBJECT;
      bodyStart = SINGLE_OBJECT_HEADER_BYTES;
    } else if (buf[0] === CONFLUENT_MAGIC) {
      if (buf.length < CONFLUENT_HEADER_BYTES)
        return fail("truncated", "input ends inside the Confluent header");
      const schemaId = buf.readUInt32BE(1);
      if (options?.confluentSchemaIds !== undefined && !options.confluentSchemaIds.has(schemaId)) {
        return fail("unknown_schema_id", `schema id ${schemaId} is not accepted`);
      }
      framing = { framing: "confluent", schemaId };
      bodyStart = CONFLUENT_HEADER_BYTES;
      reader = this.#current;
    } else {
      return fail("bad_magic", `first byte ${hex(buf[0]!)} is neither C3 (single-object) nor 00 (Confluent)`);
    }

    const scan = reader.scan(buf, bodyStart);
    if (!scan.ok) return fail(scan.code, scan.message);
    if (scan.end !== buf.length) return fail("bad_body", `${buf.length - scan.end} bytes after the record`);
    let value: unknown;
    try {
      // The scan proved the bytes well-formed, but avsc still refuses e.g. longs beyond 2^53.
      const decoded = reader.read(buf, bodyStart);
      if (decoded.offset !== scan.end)
        return fail("bad_body", "avsc and the scan disagree on the record's end");
      value = decoded.value;
    } catch (cause) {
      return fail("bad_body", `body does not decode: ${String(cause)}`, cause);
    }
    return { ok: true, value: this.#toPlain(value as T), framing, fingerprint };
  }

  #invalidPath(value: unknown): string {
    let where = "value";
    this.#type.isValid(value, {
      errorHook: (path) => {
        where = path.length > 0 ? `field ${path.join(".")}` : "value";
      },
    });
    return `bad ${where}`;
  }
}

function confluentHeader(schemaId: number): Buffer {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0x7fffffff) {
    throw new RangeError(`Confluent schema id must be a non-negative 32-bit int, got ${schemaId}`);
  }
  const header = Buffer.alloc(CONFLUENT_HEADER_BYTES);
  header[0] = CONFLUENT_MAGIC;
  header.writeUInt32BE(schemaId, 1);
  return header;
}

function fail(code: CodecErrorCode, message: string, cause?: unknown): { ok: false; error: CodecError } {
  return { ok: false, error: new CodecError(code, message, cause === undefined ? undefined : { cause }) };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0").toUpperCase();
}
