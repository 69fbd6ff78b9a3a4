import { test } from "node:test";
import assert from "node:assert/strict";
import { crc64Avro, schemaFingerprint } from "../../schemas/fingerprint.ts";

// From the Avro project's share/test/data/schema-tests.txt (Java SchemaNormalization.fingerprint64,
// signed), as reproduced by several Avro implementations' test suites.
const SPEC_VECTORS: ReadonlyArray<readonly [string, bigint]> = [
  ['"null"', 7195948357588979594n],
  ['"boolean"', -6970731678124411036n],
  ['"int"', 8247732601305521295n],
  ['"long"', -3434872931120570953n],
  ['"float"', 5583340709985441680n],
  ['"double"', -8181574048448539266n],
  ['"bytes"', 5746618253357095269n],
  ['"string"', -8142146995180207161n],
  ['{"name":"foo","type":"fixed","size":15}', 1756455273707447556n],
  ['{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651n],
  [
    '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    -1759257747318642341n,
  ],
];

test("CRC-64-AVRO matches the Avro spec's fingerprints", () => {
  for (const [canonical, signed] of SPEC_VECTORS) {
    assert.equal(BigInt.asIntN(64, schemaFingerprint(canonical)), signed, canonical);
  }
  assert.equal(schemaFingerprint('"null"'), 0x63dd24e7cc258f8an);
});

test("CRC-64-AVRO of no bytes is the EMPTY constant, and results are unsigned 64-bit", () => {
  assert.equal(crc64Avro(new Uint8Array(0)), 0xc15d213aa4d7a795n);
  for (let b = 0; b < 256; b++) {
    const fp = crc64Avro(Uint8Array.of(b));
    assert.ok(fp >= 0n && fp < 2n ** 64n);
  }
});
