/**
 * The rt.v1.Delivery record (schemas/delivery.avsc, the single source of the schema) and its two
 * framings on Kafka:
 *
 * - single-object (the default; Avro spec "Single object encoding"): C3 01, the 8-byte
 *   CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, little-endian, then the Avro
 *   binary body. Self-describing: any Avro library holding the schema reads it, no registry.
 * - confluent: 00, a 4-byte big-endian schema-registry id, then the body. For consumers that go
 *   through a schema registry (Kafka Connect, ksqlDB). Registry lookups are I/O and live
 *   elsewhere; decoding trusts the id unless told which ids to accept.
 *
 * The decoder tells the framing from the first byte. Every failure is a CodecError with a stable
 * code; untrusted bytes are checked by a bounded scan before avsc sees them (see avro-scan.ts).
 */
import { readFileSync } from "node:fs";
import avro from "avsc";
import { compileScanner } from "./avro-scan.ts";
import { schemaFingerprint } from "./fingerprint.ts";

/** One durable event for one recipient: a record of rt.deliveries. Field docs are in the .avsc. */
export interface Delivery {
  readonly id: string;
  readonly type: string;
  /** A user id, or `service:<name>` for a backend. */
  readonly sender: string;
  /** The recipient's user id; also the Kafka record key. */
  readonly recipient: string;
  readonly room: string | null;
  /**
   * Accept time, milliseconds since the Unix epoch (Avro long, timestamp-millis): an integer in
   * [0, 2^53 - 2]. avsc refuses larger longs, and mis-encodes negative ones below -2^52.
   */
  readonly ts: number;
  /** The payload as JSON text. */
  readonly data: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export const CODEC_ERROR_CODES = {
  bad_magic: "the first bytes are neither single-object (C3 01) nor Confluent (00) framing",
  unknown_fingerprint: "single-object framing, but not with rt.v1.Delivery's schema fingerprint",
  unknown_schema_id: "Confluent framing with a schema id the caller does not accept",
  truncated: "the input ends before the record does",
  bad_body: "the Avro body is not a valid rt.v1.Delivery, or bytes follow it",
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

export type DecodeResult =
  | { ok: true; delivery: Delivery; framing: Framing }
  | { ok: false; error: CodecError };

export const SINGLE_OBJECT: Framing = Object.freeze({ framing: "single-object" });

/** The schema as written in delivery.avsc. */
export const DELIVERY_SCHEMA: unknown = JSON.parse(
  readFileSync(new URL("./delivery.avsc", import.meta.url), "utf8"),
);
const deliveryType = avro.Type.forSchema(DELIVERY_SCHEMA as avro.Schema);

/** Parsing Canonical Form of the schema: avsc's `schema()` with no options is exactly that. */
export const DELIVERY_CANONICAL_FORM: string = JSON.stringify(deliveryType.schema());
/** CRC-64-AVRO of the canonical form, unsigned. */
export const DELIVERY_FINGERPRINT: bigint = schemaFingerprint(DELIVERY_CANONICAL_FORM);

const SINGLE_OBJECT_HEADER = Buffer.alloc(10);
SINGLE_OBJECT_HEADER[0] = 0xc3;
SINGLE_OBJECT_HEADER[1] = 0x01;
SINGLE_OBJECT_HEADER.writeBigUInt64LE(DELIVERY_FINGERPRINT, 2);
const CONFLUENT_MAGIC = 0x00;
const CONFLUENT_HEADER_BYTES = 5;

const scanBody = compileScanner(deliveryType.schema());

/**
 * Encodes `d` in the given framing (single-object by default). Throws CodecError `bad_value`
 * when `d` does not match the schema (e.g. a non-integer or negative `ts`), naming the field, or has the
 * attribute key `__proto__` (which would not survive decoding into a plain object); throws
 * RangeError for a schema id that is not a non-negative 32-bit int (a configuration bug).
 */
export function encodeDelivery(d: Delivery, framing: Framing = SINGLE_OBJECT): Buffer {
  const header = framing.framing === "confluent" ? confluentHeader(framing.schemaId) : SINGLE_OBJECT_HEADER;
  // avsc decodes maps into plain objects, where a "__proto__" key would vanish: refuse it here.
  if (d.attributes !== null && typeof d.attributes === "object" && Object.hasOwn(d.attributes, "__proto__")) {
    throw new CodecError("bad_value", 'not an rt.v1.Delivery: attribute key "__proto__" is reserved');
  }
  if (typeof d.ts === "number" && d.ts < 0) {
    throw new CodecError("bad_value", "not an rt.v1.Delivery: bad field ts (negative)");
  }
  let body: Buffer;
  try {
    body = deliveryType.toBuffer(d);
  } catch (cause) {
    throw new CodecError("bad_value", `not an rt.v1.Delivery: ${invalidPath(d)}`, { cause });
  }
  return Buffer.concat([header, body], header.length + body.length);
}

/** Decodes a record in either framing; throws CodecError on anything else. */
export function decodeDelivery(bytes: Uint8Array, options?: DecodeOptions): Delivery {
  const r = tryDecodeDelivery(bytes, options);
  if (!r.ok) throw r.error;
  return r.delivery;
}

/** Decodes a record in either framing. Never throws: a bad record is an expected outcome. */
export function tryDecodeDelivery(bytes: Uint8Array, options?: DecodeOptions): DecodeResult {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) return fail("truncated", "empty input");
  let framing: Framing;
  let bodyStart: number;
  if (buf[0] === 0xc3) {
    if (buf.length < 2) return fail("truncated", "input ends inside the single-object header");
    if (buf[1] !== 0x01) return fail("bad_magic", `single-object marker C3 ${hex(buf[1]!)}, expected C3 01`);
    if (buf.length < SINGLE_OBJECT_HEADER.length) {
      return fail("truncated", "input ends inside the single-object header");
    }
    if (!buf.subarray(2, 10).equals(SINGLE_OBJECT_HEADER.subarray(2))) {
      const got = buf.readBigUInt64LE(2).toString(16).padStart(16, "0");
      return fail("unknown_fingerprint", `schema fingerprint ${got} is not rt.v1.Delivery's`);
    }
    framing = SINGLE_OBJECT;
    bodyStart = SINGLE_OBJECT_HEADER.length;
  } else if (buf[0] === CONFLUENT_MAGIC) {
    if (buf.length < CONFLUENT_HEADER_BYTES)
      return fail("truncated", "input ends inside the Confluent header");
    const schemaId = buf.readUInt32BE(1);
    if (options?.confluentSchemaIds !== undefined && !options.confluentSchemaIds.has(schemaId)) {
      return fail("unknown_schema_id", `schema id ${schemaId} is not accepted`);
    }
    framing = { framing: "confluent", schemaId };
    bodyStart = CONFLUENT_HEADER_BYTES;
  } else {
    return fail("bad_magic", `first byte ${hex(buf[0]!)} is neither C3 (single-object) nor 00 (Confluent)`);
  }

  const scan = scanBody(buf, bodyStart);
  if (!scan.ok) return fail(scan.code, scan.message);
  if (scan.end !== buf.length) return fail("bad_body", `${buf.length - scan.end} bytes after the record`);
  let value: unknown;
  try {
    // The scan proved the bytes well-formed, but avsc still refuses e.g. longs beyond 2^53.
    const decoded = deliveryType.decode(buf, bodyStart);
    if (decoded.offset !== scan.end)
      return fail("bad_body", "avsc and the scan disagree on the record's end");
    value = decoded.value;
  } catch (cause) {
    return fail("bad_body", `body does not decode: ${String(cause)}`, cause);
  }
  return { ok: true, delivery: toPlain(value as Delivery), framing };
}

function toPlain(v: Delivery): Delivery {
  // avsc returns instances of a generated record class; callers get a plain object.
  return {
    id: v.id,
    type: v.type,
    sender: v.sender,
    recipient: v.recipient,
    room: v.room,
    ts: v.ts,
    data: v.data,
    attributes: v.attributes,
  };
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

function invalidPath(value: unknown): string {
  let where = "value";
  deliveryType.isValid(value, {
    errorHook: (path) => {
      where = path.length > 0 ? `field ${path.join(".")}` : "value";
    },
  });
  return `bad ${where}`;
}

function fail(code: CodecErrorCode, message: string, cause?: unknown): { ok: false; error: CodecError } {
  return { ok: false, error: new CodecError(code, message, cause === undefined ? undefined : { cause }) };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0").toUpperCase();
}
