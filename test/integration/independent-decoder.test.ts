/**
 * "Readable by anyone": records our code writes to real Kafka topics, read back as raw bytes and
 * decoded by fastavro (Python, test/python/decode_rt.py) from nothing but the .avsc files and the
 * framing docs/DATA.md describes: the single-object header's fingerprint checked against
 * fastavro's own CRC-64-AVRO of the schema, the body read with schemaless_reader. The frames of
 * the rt.v1.avro subprotocol, and the Avro container file of `rt replay`, likewise.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { InRecord, OutRecord } from "../../common/kafka/kafka.ts";
import { createRangeReader } from "../../common/kafka/kafkajs-range.ts";
import { encodeDelivery, type Delivery } from "../../schemas/codec.ts";
import { encodeClientFrameAvro, encodeServerFrameAvro } from "../../schemas/frame-codec.ts";
import type { ClientFrame, ServerFrame } from "../../schemas/frames.ts";
import { GOLDENS } from "../../schemas/golden/values.ts";
import {
  channelEventCodec,
  membershipCodec,
  membershipKey,
  roomEventCodec,
  roomPartition,
  type ChannelEvent,
  type Membership,
  type RoomEvent,
} from "../../schemas/records.ts";
import { readTopicsConfig, topicSpecs, type TopicRole } from "../../schemas/topics.ts";
import { SCHEMAS, type SchemaKind } from "../../schemas/versions.ts";
import { testKafka, testLogger, type TestKafka } from "../helpers/kafka.ts";
import { runToEnd } from "../helpers/proc.ts";
import { runDecoder } from "../helpers/python.ts";

let t: TestKafka;
let dir: string;
const PARTITIONS = 3;

before(async () => {
  t = await testKafka();
  dir = mkdtempSync(join(tmpdir(), "rt-indep-"));
  const config = readTopicsConfig({
    RT_TOPIC_PREFIX: t.prefix,
    RT_DELIVERIES_PARTITIONS: String(PARTITIONS),
    RT_ROOM_PARTITIONS: String(PARTITIONS),
    RT_CHANNELS_PARTITIONS: String(PARTITIONS),
  });
  await t.admin.ensureTopics(topicSpecs(config));
});
after(async () => {
  await t.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const TS = Date.now() - 60_000;
const SCHEMA_DIR = new URL("../../schemas/", import.meta.url);
const schemaPath = (kind: SchemaKind): string => new URL(SCHEMAS[kind].file, SCHEMA_DIR).pathname;

const DELIVERIES: Delivery[] = [
  {
    id: "m1",
    type: "chat.message",
    sender: "alice",
    recipient: "bob",
    room: null,
    ts: TS,
    data: '{"text":"hi"}',
    attributes: {},
  },
  {
    id: "m2",
    type: "chat.message",
    sender: "service:billing",
    recipient: "user-ü-1",
    room: "lobby",
    ts: 4_102_444_800_000, // 2100-01-01: Python datetimes end at year 9999
    data: '{"text":"héllo 🌍","n":[1,2.5,null]}',
    attributes: { "rt.source": "3:1041", emoji: "🌍" },
  },
];
const ROOM_EVENTS: RoomEvent[] = [
  {
    id: "r1",
    kind: "message",
    room: "lobby",
    sender: "alice",
    member: null,
    type: "chat.message",
    ts: TS,
    data: "[1]",
    attributes: {},
  },
  {
    id: "r2",
    kind: "leave",
    room: "lobby",
    sender: "service:mod",
    member: "bob",
    type: "rt.left",
    ts: TS + 1,
    data: "null",
    attributes: { why: "spam" },
  },
];
const MEMBERSHIPS: Membership[] = [
  { room: "lobby", user: "bob", joined_ts: TS, by: "bob", source: "1:7" },
  { room: "kitchen", user: "user/with/slashes", joined_ts: TS + 5, by: "service:admin", source: "0:0" },
];
const CHANNEL_EVENTS: ChannelEvent[] = [
  {
    id: "c1",
    channel: "*",
    sender: "service:ops",
    type: "maintenance",
    ts: TS,
    data: '{"in_s":300}',
    attributes: {},
  },
];

async function readTopic(topic: string): Promise<InRecord[]> {
  const offsets = await t.admin.partitionOffsets(topic);
  const reader = createRangeReader({ brokers: t.brokers, clientId: "indep-test", logger: testLogger() });
  const out: InRecord[] = [];
  await reader.read(
    topic,
    offsets.map((o) => ({ partition: o.partition, from: o.low, to: o.high })),
    { eachBatch: async (b) => void out.push(...b.records) },
  );
  return out;
}

interface Decoded {
  id: string;
  framing: string;
  header_fingerprint: string | null;
  schema_fingerprint: string;
  value: Record<string, unknown>;
}

/** The 8 fingerprint bytes as the header holds them (little-endian), in hex. */
const headerHex = (fp: bigint): string => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(fp);
  return b.toString("hex");
};

test("fastavro decodes every topic's records from the .avsc files alone", async () => {
  const produced = new Map<string, { kind: SchemaKind; value: object }>();
  const producer = await t.kafka.producer();
  const send = async (role: TopicRole, kind: SchemaKind, records: [OutRecord, object][]) => {
    const positions = await producer.send(
      t.names[role],
      records.map(([r]) => r),
    );
    positions.forEach((p, i) =>
      produced.set(`${p.topic}:${p.partition}:${p.offset}`, { kind, value: records[i]![1] }),
    );
  };
  const partition = (key: string) => roomPartition(key, PARTITIONS);
  try {
    await send("deliveries", "delivery", [
      ...DELIVERIES.map((d): [OutRecord, object] => [
        { key: d.recipient, value: encodeDelivery(d), partition: partition(d.recipient) },
        d,
      ]),
      // The Confluent wire format, for consumers that go through a schema registry.
      [
        {
          key: "bob",
          value: encodeDelivery(DELIVERIES[0]!, { framing: "confluent", schemaId: 7 }),
          partition: partition("bob"),
        },
        DELIVERIES[0]!,
      ],
    ]);
    await send(
      "roomEvents",
      "roomEvent",
      ROOM_EVENTS.map((e) => [
        { key: e.room, value: roomEventCodec.encode(e), partition: partition(e.room) },
        e,
      ]),
    );
    await send(
      "roomMembers",
      "membership",
      MEMBERSHIPS.map((m) => [
        {
          key: membershipKey(m.room, m.user),
          value: membershipCodec.encode(m),
          partition: partition(m.room),
        },
        m,
      ]),
    );
    await send(
      "channels",
      "channelEvent",
      CHANNEL_EVENTS.map((c) => [
        { key: c.channel, value: channelEventCodec.encode(c), partition: partition(c.channel) },
        c,
      ]),
    );
  } finally {
    await producer.close();
  }

  const raw: InRecord[] = [];
  for (const role of ["deliveries", "roomEvents", "roomMembers", "channels"] as const) {
    raw.push(...(await readTopic(t.names[role])));
  }
  assert.equal(raw.length, produced.size, "every produced record is read back");
  const manifest = {
    schemas: Object.fromEntries(
      (["delivery", "roomEvent", "membership", "channelEvent"] as const).map((k) => [k, schemaPath(k)]),
    ),
    records: raw.map((r) => {
      const id = `${r.topic}:${r.partition}:${r.offset}`;
      return { id, kind: produced.get(id)!.kind, value_b64: r.value!.toString("base64") };
    }),
  };
  const file = join(dir, "records.json");
  writeFileSync(file, JSON.stringify(manifest));
  const out = (await runDecoder(["records", file])) as { fastavro: string; records: Decoded[] };
  assert.equal(out.fastavro, "1.12.2");
  assert.equal(out.records.length, raw.length);
  let confluent = 0;
  for (const d of out.records) {
    const { kind, value } = produced.get(d.id)!;
    if (d.framing === "single-object") {
      // fastavro's fingerprint of the .avsc is the one in our header, and the one we pin.
      assert.equal(d.header_fingerprint, d.schema_fingerprint, d.id);
      const pinned = SCHEMAS[kind].versions[SCHEMAS[kind].versions.length - 1]!.fingerprint;
      assert.equal(d.schema_fingerprint, headerHex(pinned), d.id);
    } else {
      assert.equal(d.framing, "confluent:7", d.id);
      confluent++;
    }
    // Field by field: the same values, timestamps in ms, the payload as JSON text.
    assert.deepEqual(d.value, value, d.id);
  }
  assert.equal(confluent, 1);
});

test("fastavro decodes every rt.v1.avro frame from the frame schemas", async () => {
  const frames = GOLDENS.filter((g) => g.kind === "clientFrame" || g.kind === "serverFrame");
  const manifest = {
    schemas: { clientFrame: schemaPath("clientFrame"), serverFrame: schemaPath("serverFrame") },
    records: frames.map((g) => ({
      id: g.file,
      kind: g.kind,
      value_b64: (g.kind === "clientFrame"
        ? encodeClientFrameAvro(g.value as ClientFrame)
        : encodeServerFrameAvro(g.value as ServerFrame)
      ).toString("base64"),
    })),
  };
  const file = join(dir, "frames.json");
  writeFileSync(file, JSON.stringify(manifest));
  const out = (await runDecoder(["records", file])) as { records: Decoded[] };
  assert.equal(out.records.length, frames.length);
  for (const [i, d] of out.records.entries()) {
    const g = frames[i]!;
    assert.equal(d.header_fingerprint, d.schema_fingerprint, d.id);
    const { branch, value } = d.value["frame"] as { branch: string; value: Record<string, unknown> };
    const { op, ...fields } = g.value as unknown as Record<string, unknown>;
    // The branch names the op; absent optional fields are null; data is JSON text.
    assert.equal(branch.split(".").pop()!.toLowerCase(), op, d.id);
    for (const [name, v] of Object.entries(value)) {
      if (name === "data") assert.deepEqual(JSON.parse(v as string), fields["data"], d.id);
      else if (name === "ok" && v === false) assert.equal(fields["ok"], false);
      else assert.deepEqual(v, fields[name] ?? null, `${d.id} ${name}`);
    }
  }
});

test("fastavro reads the Avro container file that rt replay writes", async () => {
  const env = { RT_KAFKA_BROKERS: t.brokers.join(","), RT_TOPIC_PREFIX: t.prefix };
  for (const [role, values] of [
    ["rt.deliveries", DELIVERIES],
    ["rt.room-members", MEMBERSHIPS],
  ] as const) {
    const file = join(dir, `${role}.avro`);
    const r = await runToEnd("cli/rt.ts", ["replay", "--topic", role, "--out", file], env);
    assert.equal(r.code, 0, r.output);
    const out = (await runDecoder(["container", file])) as {
      schema: { name: string; fields: { name: string }[] };
      records: { topic: string; partition: number; offset: number; key: string; value: object }[];
    };
    assert.deepEqual(
      out.schema.fields.map((f) => f.name),
      ["topic", "partition", "offset", "timestamp", "key", "headers", "value"],
    );
    const expected = [...values, ...(role === "rt.deliveries" ? [DELIVERIES[0]!] : [])];
    assert.equal(out.records.length, expected.length, r.output);
    for (const rec of out.records) {
      assert.equal(rec.topic, t.prefix + role);
      assert.ok(
        expected.some((v) => isDeepStrictEqual(v, rec.value)),
        JSON.stringify(rec.value),
      );
    }
  }
});
