/**
 * The Metadata v10 codec behind topic IDs: the request's bytes, a response built field by field
 * the way Kafka writes it, truncation at every byte, and Kafka's error codes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { KafkaError } from "../../common/kafka/errors.ts";
import { decodeMetadataResponse, encodeMetadataRequest } from "../../common/kafka/topic-identity.ts";

const uv = (n: number): number[] => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
};
const i16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const i32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const str = (s: string | null) => (s === null ? [0] : [...uv(Buffer.byteLength(s) + 1), ...Buffer.from(s)]);
const arr = <T>(items: readonly T[], each: (x: T) => number[]) => [
  ...uv(items.length + 1),
  ...items.flatMap(each),
];

interface P {
  leader: number;
}
interface T {
  error: number;
  name: string;
  id: string;
  partitions: P[];
}

/** A Metadata v10 response body (after the size prefix), as a broker writes it. */
function response(correlationId: number, topics: T[]): Buffer {
  return Buffer.from([
    ...i32(correlationId),
    0, // header tagged fields
    ...i32(0), // throttle
    ...arr([{ id: 1, host: "127.0.0.1", port: 9092, rack: null as string | null }], (b) => [
      ...i32(b.id),
      ...str(b.host),
      ...i32(b.port),
      ...str(b.rack),
      0,
    ]),
    ...str("cluster-1"),
    ...i32(1), // controller
    ...arr(topics, (t) => [
      ...i16(t.error),
      ...str(t.name),
      ...Buffer.from(t.id, "hex"),
      0, // is_internal
      ...arr(t.partitions, (p) => [
        ...i16(0),
        ...i32(0),
        ...i32(p.leader),
        ...i32(3),
        ...arr([1], i32),
        ...arr([1], i32),
        ...arr([] as number[], i32),
        // one tagged field, to be skipped
        1,
        ...uv(7),
        2,
        0xaa,
        0xbb,
      ]),
      ...i32(-2147483648),
      0,
    ]),
    ...i32(-2147483648), // cluster authorized operations
    0,
  ]);
}

const ID = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";

test("the request is Metadata v10 for one topic by name, with its size prefix", () => {
  const b = encodeMetadataRequest(7, "probe", "rt.deliveries");
  assert.equal(b.readInt32BE(0), b.length - 4);
  assert.equal(b.readInt16BE(4), 3, "api key Metadata");
  assert.equal(b.readInt16BE(6), 10, "version 10");
  assert.equal(b.readInt32BE(8), 7, "correlation id");
  assert.equal(b.readInt16BE(12), 5);
  assert.equal(b.subarray(14, 19).toString(), "probe");
  const rest = [...b.subarray(19)];
  assert.deepEqual(rest, [
    0, // header tags
    2, // one topic
    ...Array<number>(16).fill(0),
    14,
    ...Buffer.from("rt.deliveries"),
    0,
    0,
    0,
    0,
    0,
  ]);
});

test("a response names the topic's ID, partition count and leaderless partitions", () => {
  const body = response(9, [
    { error: 0, name: "other", id: OTHER, partitions: [{ leader: 1 }] },
    { error: 0, name: "rt.deliveries", id: ID, partitions: [{ leader: 1 }, { leader: -1 }, { leader: 2 }] },
  ]);
  assert.deepEqual(decodeMetadataResponse(body, 9, "rt.deliveries"), {
    exists: true,
    identity: { topicId: ID, partitions: 3, leaderless: 1 },
  });
  assert.deepEqual(decodeMetadataResponse(body, 9, "missing"), { exists: false });
});

test("UNKNOWN_TOPIC_OR_PARTITION is a missing topic; other errors are refusals", () => {
  const unknown = response(1, [{ error: 3, name: "t", id: "0".repeat(32), partitions: [] }]);
  assert.deepEqual(decodeMetadataResponse(unknown, 1, "t"), { exists: false });
  const denied = response(1, [{ error: 29, name: "t", id: "0".repeat(32), partitions: [] }]);
  assert.throws(
    () => decodeMetadataResponse(denied, 1, "t"),
    (e: unknown) => e instanceof KafkaError && !e.retriable && /error code 29/.test(e.message),
  );
});

test("a response cut at any byte, or for another request, is a RangeError", () => {
  const body = response(5, [{ error: 0, name: "t", id: ID, partitions: [{ leader: 1 }, { leader: 1 }] }]);
  for (let n = 0; n < body.length; n++) {
    assert.throws(() => decodeMetadataResponse(body.subarray(0, n), 5, "t"), RangeError, `cut at ${n}`);
  }
  assert.throws(() => decodeMetadataResponse(body, 6, "t"), /correlation id 5, expected 6/);
});
