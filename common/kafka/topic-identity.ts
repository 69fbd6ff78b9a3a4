/**
 * A topic's identity: the topic ID Kafka (2.8 and later) gives every topic when it is created.
 * Deleting a topic and creating it again under the same name, with the same partition count,
 * gives it a new ID, so the ID tells two incarnations of one log apart where the name and the
 * partition count cannot.
 *
 * KafkaJS 2.2.4 speaks Metadata only up to v6, which has no topic IDs, so this module sends one
 * Metadata v10 request (the first version with IDs; brokers from 2.8 to 4.x answer it) over a
 * plain TCP connection to a bootstrap broker. The codec is pure and tested byte by byte; the I/O
 * shell below it is one request and one response per connection. Plaintext only, like the rest of
 * the backbone's Kafka access (docs/SECURITY.md).
 */
import { connect } from "node:net";
import { kafkaRejected, kafkaUnavailable, KafkaError } from "./errors.ts";

const METADATA_API_KEY = 3;
const METADATA_VERSION = 10;
/** Kafka's UNKNOWN_TOPIC_OR_PARTITION. */
const UNKNOWN_TOPIC = 3;
/** A response larger than this is not a Metadata answer about one topic. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface TopicIdentity {
  /** The topic ID as 32 lowercase hex digits. */
  readonly topicId: string;
  readonly partitions: number;
  /** Partitions that have no leader right now (leader id -1). */
  readonly leaderless: number;
}

/** What Metadata says about the topic: its identity, or that it does not exist. */
export type TopicLookup =
  | { readonly exists: true; readonly identity: TopicIdentity }
  | { readonly exists: false };

// ---- codec (pure) ----

function uvarint(n: number): Buffer {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

/** One Metadata v10 request for `topic`, with its 4-byte size prefix. */
export function encodeMetadataRequest(correlationId: number, clientId: string, topic: string): Buffer {
  const client = Buffer.from(clientId, "utf8");
  const name = Buffer.from(topic, "utf8");
  const header = Buffer.alloc(10);
  header.writeInt16BE(METADATA_API_KEY, 0);
  header.writeInt16BE(METADATA_VERSION, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(client.length, 8);
  const body = Buffer.concat([
    header,
    client,
    uvarint(0), // header tagged fields
    uvarint(2), // topics: one (compact arrays store length + 1)
    Buffer.alloc(16), // topic_id: zero, the name is what is asked
    uvarint(name.length + 1),
    name,
    uvarint(0), // topic tagged fields
    Buffer.from([0, 0, 0]), // allow_auto_topic_creation, include_cluster_ops, include_topic_ops
    uvarint(0), // body tagged fields
  ]);
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length, 0);
  return Buffer.concat([size, body]);
}

/** Reads a response; every read is bounds-checked and throws RangeError past the end. */
class Reader {
  #at = 0;
  constructor(private readonly buf: Buffer) {}
  #need(n: number): number {
    const at = this.#at;
    if (at + n > this.buf.length) throw new RangeError(`metadata response ends at byte ${this.buf.length}`);
    this.#at += n;
    return at;
  }
  int8(): number {
    return this.buf.readInt8(this.#need(1));
  }
  int16(): number {
    return this.buf.readInt16BE(this.#need(2));
  }
  int32(): number {
    return this.buf.readInt32BE(this.#need(4));
  }
  uvarint(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.buf.readUInt8(this.#need(1));
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    throw new RangeError("unsigned varint longer than 5 bytes");
  }
  bytes(n: number): Buffer {
    const at = this.#need(n);
    return this.buf.subarray(at, at + n);
  }
  /** COMPACT_(NULLABLE_)STRING; null for a null string. */
  compactString(): string | null {
    const n = this.uvarint();
    return n === 0 ? null : this.bytes(n - 1).toString("utf8");
  }
  /** COMPACT_ARRAY length; 0 for null. */
  compactLength(): number {
    const n = this.uvarint();
    return n === 0 ? 0 : n - 1;
  }
  taggedFields(): void {
    const count = this.uvarint();
    for (let i = 0; i < count; i++) {
      this.uvarint();
      this.bytes(this.uvarint());
    }
  }
}

/**
 * Decodes a Metadata v10 response (without its size prefix) and returns what it says about
 * `topic`. Throws RangeError on a response that is cut short or not Metadata v10, and a
 * non-retriable KafkaError when the broker refuses the topic for another reason than "unknown".
 */
export function decodeMetadataResponse(buf: Buffer, correlationId: number, topic: string): TopicLookup {
  const r = new Reader(buf);
  const got = r.int32();
  if (got !== correlationId) throw new RangeError(`correlation id ${got}, expected ${correlationId}`);
  r.taggedFields();
  r.int32(); // throttle_time_ms
  for (let i = r.compactLength(); i > 0; i--) {
    r.int32(); // node_id
    r.compactString(); // host
    r.int32(); // port
    r.compactString(); // rack
    r.taggedFields();
  }
  r.compactString(); // cluster_id
  r.int32(); // controller_id
  let found: TopicLookup = { exists: false };
  for (let i = r.compactLength(); i > 0; i--) {
    const error = r.int16();
    const name = r.compactString();
    const id = r.bytes(16).toString("hex");
    r.int8(); // is_internal
    let partitions = 0;
    let leaderless = 0;
    for (let j = r.compactLength(); j > 0; j--) {
      r.int16(); // error_code
      r.int32(); // partition_index
      if (r.int32() < 0) leaderless += 1; // leader_id
      r.int32(); // leader_epoch
      for (let k = 0; k < 3; k++) for (let n = r.compactLength(); n > 0; n--) r.int32(); // replicas, isr, offline
      r.taggedFields();
      partitions += 1;
    }
    r.int32(); // topic_authorized_operations
    r.taggedFields();
    if (name !== topic) continue;
    if (error === UNKNOWN_TOPIC) found = { exists: false };
    else if (error !== 0) throw kafkaRejected(`metadata for ${topic}: Kafka error code ${error}`);
    else found = { exists: true, identity: { topicId: id, partitions, leaderless } };
  }
  r.int32(); // cluster_authorized_operations
  r.taggedFields();
  return found;
}

// ---- I/O shell ----

let correlation = 0;

/** One request to one broker ("host:port"); rejects with a retriable KafkaError on a timeout or a dropped connection. */
function askBroker(broker: string, topic: string, clientId: string, timeoutMs: number): Promise<TopicLookup> {
  const sep = broker.lastIndexOf(":");
  const host = broker.slice(0, sep).replace(/^\[|\]$/g, "");
  const port = Number(broker.slice(sep + 1));
  correlation = (correlation + 1) & 0x7fffffff;
  const id = correlation;
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let got = Buffer.alloc(0);
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      f();
    };
    const timer = setTimeout(
      () => finish(() => reject(kafkaUnavailable(`metadata from ${broker}: no answer in ${timeoutMs} ms`))),
      timeoutMs,
    );
    socket.on("connect", () => socket.write(encodeMetadataRequest(id, clientId, topic)));
    socket.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 4) return;
      const size = got.readInt32BE(0);
      if (size < 0 || size > MAX_RESPONSE_BYTES) {
        finish(() => reject(kafkaRejected(`metadata from ${broker}: a response of ${size} bytes`)));
        return;
      }
      if (got.length < 4 + size) return;
      finish(() => {
        try {
          resolve(decodeMetadataResponse(got.subarray(4, 4 + size), id, topic));
        } catch (e) {
          reject(
            e instanceof KafkaError
              ? e
              : kafkaRejected(`metadata from ${broker}: ${(e as Error).message}`, e),
          );
        }
      });
    });
    socket.on("error", (e) =>
      finish(() => reject(kafkaUnavailable(`metadata from ${broker}: ${e.message}`, e))),
    );
    // A broker that does not speak Metadata v10 (Kafka before 2.8) closes the connection.
    socket.on("close", () =>
      finish(() =>
        reject(kafkaUnavailable(`metadata from ${broker}: the connection closed before an answer`)),
      ),
    );
  });
}

/**
 * Asks the bootstrap brokers in turn, until one answers, what `topic` is. Rejects with the last
 * broker's KafkaError when none answers within `timeoutMs` each.
 */
export async function readTopicIdentity(
  brokers: readonly string[],
  topic: string,
  opts: { readonly timeoutMs: number; readonly clientId: string },
): Promise<TopicLookup> {
  let last: unknown = kafkaUnavailable("no bootstrap brokers");
  for (const broker of brokers) {
    try {
      return await askBroker(broker, topic, opts.clientId, opts.timeoutMs);
    } catch (e) {
      if (e instanceof KafkaError && !e.retriable) throw e;
      last = e;
    }
  }
  throw last;
}
