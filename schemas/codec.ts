/**
 * The rt.v1.Delivery record (schemas/delivery.avsc, the single source of the schema) on
 * rt.deliveries, in either framing (see record-codec.ts). Kept as named functions because every
 * gateway hot path goes through them.
 */
import {
  RecordCodec,
  readSchemaFile,
  type DecodeOptions,
  type Framing,
  type RecordDecodeResult,
} from "./record-codec.ts";
import { earlierSchemas } from "./versions.ts";

export {
  CODEC_ERROR_CODES,
  CodecError,
  SINGLE_OBJECT,
  type CodecErrorCode,
  type DecodeOptions,
  type Framing,
} from "./record-codec.ts";

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

export type DecodeResult =
  | { ok: true; delivery: Delivery; framing: Framing }
  | Extract<RecordDecodeResult<Delivery>, { ok: false }>;

/** The schema as written in delivery.avsc. */
export const DELIVERY_SCHEMA: unknown = readSchemaFile("delivery.avsc");

export const deliveryCodec = new RecordCodec<Delivery>(
  DELIVERY_SCHEMA,
  (v) => ({
    id: v.id,
    type: v.type,
    sender: v.sender,
    recipient: v.recipient,
    room: v.room,
    ts: v.ts,
    data: v.data,
    attributes: v.attributes,
  }),
  // Every earlier version of the schema (schemas/history/, see versions.ts): none yet.
  earlierSchemas("delivery"),
);

/** Parsing Canonical Form of the schema. */
export const DELIVERY_CANONICAL_FORM: string = deliveryCodec.canonicalForm;
/** CRC-64-AVRO of the canonical form, unsigned. */
export const DELIVERY_FINGERPRINT: bigint = deliveryCodec.fingerprint;

/**
 * Encodes `d` in the given framing (single-object by default). Throws CodecError `bad_value`
 * when `d` does not match the schema (e.g. a non-integer or negative `ts`), naming the field, or has the
 * attribute key `__proto__` (which would not survive decoding into a plain object); throws
 * RangeError for a schema id that is not a non-negative 32-bit int (a configuration bug).
 */
export function encodeDelivery(d: Delivery, framing?: Framing): Buffer {
  return deliveryCodec.encode(d, framing);
}

/** Decodes a record in either framing; throws CodecError on anything else. */
export function decodeDelivery(bytes: Uint8Array, options?: DecodeOptions): Delivery {
  return deliveryCodec.decode(bytes, options);
}

/** Decodes a record in either framing. Never throws: a bad record is an expected outcome. */
export function tryDecodeDelivery(bytes: Uint8Array, options?: DecodeOptions): DecodeResult {
  const r = deliveryCodec.tryDecode(bytes, options);
  return r.ok ? { ok: true, delivery: r.value, framing: r.framing } : r;
}
