/**
 * Kafka's default partitioner for keyed records, bit for bit the Java client's
 * (`Utils.murmur2` + `Utils.toPositive` in `BuiltInPartitioner`), so a producer in any language
 * puts a user's events in the same partition as the gateways and the router compute.
 *
 * murmur2 here is MurmurHash2 (32-bit) with Kafka's seed. Java does it in wrapping `int`
 * arithmetic; `Math.imul` and `| 0` give the same wrapping in JavaScript, and `>>>` is Java's
 * unsigned shift.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

const utf8 = new TextEncoder();

/**
 * MurmurHash2 of `bytes` as Kafka computes it: a signed 32-bit integer, equal to Java's
 * `org.apache.kafka.common.utils.Utils.murmur2(bytes)`.
 */
export function murmur2(bytes: Uint8Array): number {
  const length = bytes.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = bytes[i4]! | (bytes[i4 + 1]! << 8) | (bytes[i4 + 2]! << 16) | (bytes[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The tail: Java's switch falls through from 3 to 2 to 1.
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= bytes[tail + 2]! << 16;
  if (rest >= 2) h ^= bytes[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= bytes[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Java's `Utils.toPositive`: clears the sign bit (not `Math.abs`, which differs for negatives). */
export function toPositive(hash: number): number {
  return hash & 0x7fffffff;
}

// A lone surrogate has no UTF-8 form: JavaScript encodes it as U+FFFD, Java's getBytes as '?'.
// The two would pick different partitions, so such a key is refused rather than misrouted.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The partition Kafka's default partitioner picks for a record keyed by `key` (UTF-8 bytes) in a
 * topic of `partitionCount` partitions: `toPositive(murmur2(utf8(key))) % partitionCount`.
 *
 * Throws RangeError (a broken invariant, not an expected outcome) when `partitionCount` is not a
 * positive integer or when `key` holds a lone surrogate; keys are validated ids long before this.
 */
export function partitionForKey(key: string, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount <= 0 || partitionCount > 0x7fffffff) {
    throw new RangeError(`partitionCount must be a positive 32-bit integer, got ${partitionCount}`);
  }
  if (LONE_SURROGATE.test(key)) {
    throw new RangeError("partition key holds a lone surrogate: it has no UTF-8 form");
  }
  return toPositive(murmur2(utf8.encode(key))) % partitionCount;
}
