/**
 * CRC-64-AVRO, the Rabin fingerprint the Avro spec defines for schemas ("Schema Fingerprints"):
 * what single-object encoding puts in its header, and what Java's
 * `SchemaNormalization.fingerprint64` returns (there as a signed long).
 *
 * A table-driven CRC over the bytes of the schema's Parsing Canonical Form, in unsigned 64-bit
 * arithmetic; BigInt is slow but this runs once per schema, at load.
 */

const EMPTY = 0xc15d213aa4d7a795n;

const TABLE: readonly bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (fp & 1n ? EMPTY : 0n);
  return fp;
});

/** The CRC-64-AVRO fingerprint of `bytes`, as an unsigned 64-bit bigint. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const byte of bytes) fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(byte)) & 0xffn)]!;
  return fp;
}

/** The fingerprint of a schema's Parsing Canonical Form text (UTF-8). */
export function schemaFingerprint(canonicalForm: string): bigint {
  return crc64Avro(new TextEncoder().encode(canonicalForm));
}
