/**
 * `rt replay` as a real child process against real Kafka: a time range of a known set of events
 * comes back exactly (JSON Lines and .avro), filters and offset ranges work, corrupt records are
 * reported without losing the valid ones, re-publishing produces the same events in the target
 * topic and never loops, ranges past retention are reported with a count, and bad arguments are
 * named with a non-zero exit.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import avro from "avsc";
import { Kafka as KafkaJs, logLevel } from "kafkajs";
import type { InRecord, OutRecord } from "../../common/kafka/kafka.ts";
import { createRangeReader } from "../../common/kafka/kafkajs-range.ts";
import { encodeDelivery, type Delivery } from "../../schemas/codec.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { REPLAYED_HEADER } from "../../schemas/records.ts";
import { readTopicsConfig, topicSpecs } from "../../schemas/topics.ts";
import { testKafka, testLogger, type TestKafka } from "../helpers/kafka.ts";
import { runToEnd } from "../helpers/proc.ts";

let t: TestKafka;
let dir: string;
let env: Record<string, string>;
const PARTITIONS = 3;
const USERS = ["ann", "bob", "cid", "dee", "eve"];

/** Kafka timestamps of the three groups of events: before, inside and after the range. */
const BASE = Date.now() - 3_600_000;
const FROM = BASE + 600_000;
const TO = BASE + 1_200_000;
const iso = (ms: number): string => new Date(ms).toISOString();

interface Sent {
  readonly delivery: Delivery;
  readonly timestampMs: number;
  readonly partition: number;
  offset?: string;
}
const sent: Sent[] = [];

function delivery(i: number, user: string, type: string): Delivery {
  return {
    id: `m${i}`,
    type,
    sender: i % 2 === 0 ? "service:feed" : "ann",
    recipient: user,
    room: i % 3 === 0 ? "lobby" : null,
    ts: BASE + i,
    data: JSON.stringify({ i, text: "héllo" }),
    attributes: { n: String(i) },
  };
}

before(async () => {
  t = await testKafka();
  dir = mkdtempSync(join(tmpdir(), "rt-replay-"));
  env = { RT_KAFKA_BROKERS: t.brokers.join(","), RT_TOPIC_PREFIX: t.prefix };
  const config = readTopicsConfig({
    RT_TOPIC_PREFIX: t.prefix,
    RT_DELIVERIES_PARTITIONS: String(PARTITIONS),
  });
  const specs = [
    ...topicSpecs(config),
    { name: t.prefix + "redrive", partitions: PARTITIONS, replicationFactor: -1, config: {} },
  ];
  // A broker that has just created topics may not serve their metadata yet: retry that.
  for (let attempt = 1; ; attempt++) {
    try {
      await t.admin.ensureTopics(specs);
      break;
    } catch (e) {
      if (attempt === 5 || !(e as { retriable?: boolean }).retriable) throw e;
      await sleep(500);
    }
  }
  // 30 events before the range, 60 inside, 30 after, spread over every partition, in time order;
  // in the middle of the range two corrupt records and one that a replay already re-published.
  const corrupt: OutRecord[] = [
    { key: "bob", value: Buffer.from('{"not":"avro"}'), partition: partitionForKey("bob", PARTITIONS) },
    {
      key: "bob",
      value: Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.alloc(8, 0xab), Buffer.from([0])]),
      partition: partitionForKey("bob", PARTITIONS),
    },
    {
      key: "ann",
      value: encodeDelivery(delivery(999, "ann", "chat.message")),
      partition: partitionForKey("ann", PARTITIONS),
      headers: { [REPLAYED_HEADER]: "elsewhere:0:1" },
    },
  ].map((r) => ({ ...r, timestampMs: FROM + 29_500 }));
  const records: { out: OutRecord; sent?: Sent }[] = [];
  let i = 0;
  for (const [start, count] of [
    [BASE, 30],
    [FROM, 60],
    [TO, 30],
  ] as const) {
    for (let k = 0; k < count; k++, i++) {
      if (start === FROM && k === 30) records.push(...corrupt.map((out) => ({ out })));
      const user = USERS[i % USERS.length]!;
      const d = delivery(i, user, i % 4 === 0 ? "chat.other" : "chat.message");
      const s: Sent = {
        delivery: d,
        timestampMs: start + k * 1000,
        partition: partitionForKey(user, PARTITIONS),
      };
      sent.push(s);
      records.push({
        out: { key: user, value: encodeDelivery(d), partition: s.partition, timestampMs: s.timestampMs },
        sent: s,
      });
    }
  }
  const producer = await t.kafka.producer();
  try {
    const positions = await producer.send(
      t.names.deliveries,
      records.map((r) => r.out),
    );
    positions.forEach((p, k) => {
      if (records[k]!.sent !== undefined) records[k]!.sent!.offset = p.offset;
    });
  } finally {
    await producer.close();
  }
});
after(async () => {
  await t.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const inRange = (s: Sent) => s.timestampMs >= FROM && s.timestampMs < TO;

interface Row {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string;
  headers: Record<string, string>;
  value: Delivery;
}

const jsonl = (text: string): Row[] =>
  text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Row);

/** Rows of the expected events, in the replay's order (partition by partition, by offset). */
function expectedRows(pick: (s: Sent) => boolean): Row[] {
  return sent
    .filter(pick)
    .map((s) => ({
      topic: t.names.deliveries,
      partition: s.partition,
      offset: Number(s.offset),
      timestamp: s.timestampMs,
      key: s.delivery.recipient,
      headers: {},
      value: s.delivery,
    }))
    .sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** Order across partitions is not defined; within a partition it is the offset order. */
const byPosition = (rows: Row[]) =>
  [...rows].sort((a, b) => a.partition - b.partition || a.offset - b.offset);

function replay(args: string[]) {
  return runToEnd("cli/rt.ts", ["replay", ...args], env, 120_000);
}

async function readTopic(topic: string): Promise<InRecord[]> {
  const offsets = await t.admin.partitionOffsets(topic);
  const reader = createRangeReader({ brokers: t.brokers, clientId: "replay-test", logger: testLogger() });
  const out: InRecord[] = [];
  await reader.read(
    topic,
    offsets.map((o) => ({ partition: o.partition, from: o.low, to: o.high })),
    { eachBatch: async (b) => void out.push(...b.records) },
  );
  return out;
}

test("a time range comes back exactly as JSON Lines; bad records are reported, not fatal", async () => {
  const file = join(dir, "range.jsonl");
  const r = await replay(["--topic", "rt.deliveries", "--from", iso(FROM), "--to", iso(TO), "--out", file]);
  assert.equal(r.code, 0, r.output);
  const rows = jsonl(readFileSync(file, "utf8"));
  assert.deepEqual(byPosition(rows), expectedRows(inRange));
  assert.equal(rows.length, 60);
  // The two corrupt records are named on stderr; the replayed one is skipped; 60 come through.
  assert.match(r.output, /skipped .* offset \d+: bad_magic/);
  assert.match(r.output, /skipped .* offset \d+: unknown_fingerprint: schema fingerprint abababababababab/);
  assert.match(
    r.output,
    /rt replay done: .*rt\.deliveries: 63 records read from 3\/3 partitions .*60 written to .*range\.jsonl, 0 filtered out, 1 skipped as replayed, 2 undecodable \(bad_magic 1, unknown_fingerprint 1\)/,
  );
  // No progress line when stderr is not a terminal.
  assert.doesNotMatch(r.output, /records\/s, \d+\/\d+ partitions done|\r/);
});

test("the same range as an Avro container file, with the documented row schema", async () => {
  const file = join(dir, "range.avro");
  const r = await replay(["--topic", "deliveries", "--from", iso(FROM), "--to", iso(TO), "--out", file]);
  assert.equal(r.code, 0, r.output);
  const rows: Row[] = [];
  let schema: { name?: string } = {};
  await new Promise<void>((done, fail) =>
    avro
      .createFileDecoder(file)
      .on("metadata", (type: avro.Type) => (schema = type.schema() as { name?: string }))
      .on("data", (row: Row) => rows.push(JSON.parse(JSON.stringify(row)) as Row))
      .on("end", done)
      .on("error", fail),
  );
  assert.equal(schema.name, "rt.v1.replay.DeliveryRow");
  assert.deepEqual(byPosition(rows), expectedRows(inRange));
});

test("filters: user, type and room; offsets and partitions", async () => {
  const users = await replay([
    "--topic",
    "rt.deliveries",
    "--user",
    "bob",
    "--user",
    "cid",
    "--type",
    "chat.other",
  ]);
  assert.equal(users.code, 0, users.output);
  const pick = (s: Sent) => ["bob", "cid"].includes(s.delivery.recipient) && s.delivery.type === "chat.other";
  const stdout = users.output.split("\n").filter((l) => l.startsWith("{"));
  assert.deepEqual(byPosition(jsonl(stdout.join("\n"))), expectedRows(pick));
  assert.ok(stdout.length > 0);

  const rooms = await replay(["--topic", "rt.deliveries", "--room", "lobby", "--to", iso(FROM)]);
  assert.equal(rooms.code, 0, rooms.output);
  const roomRows = jsonl(
    rooms.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .join("\n"),
  );
  assert.deepEqual(
    byPosition(roomRows),
    expectedRows((s) => s.delivery.room === "lobby" && s.timestampMs < FROM),
  );

  const p = sent[10]!.partition;
  const mine = sent.filter((s) => s.partition === p);
  const from = mine[3]!.offset!;
  const to = mine[8]!.offset!;
  const offsets = await replay([
    "--topic",
    "rt.deliveries",
    "--partition",
    String(p),
    "--from-offset",
    from,
    "--to-offset",
    to,
  ]);
  assert.equal(offsets.code, 0, offsets.output);
  const offsetRows = jsonl(
    offsets.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .join("\n"),
  );
  assert.deepEqual(
    offsetRows,
    expectedRows(
      (s) => s.partition === p && BigInt(s.offset!) >= BigInt(from) && BigInt(s.offset!) < BigInt(to),
    ),
  );
  assert.equal(offsetRows.length, 5);
});

test("re-publish produces the same events in the target topic, and never loops", async () => {
  const target = t.prefix + "redrive";
  const r = await replay([
    "--topic",
    "rt.deliveries",
    "--from",
    iso(FROM),
    "--to",
    iso(TO),
    "--republish",
    target,
  ]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, new RegExp(`60 written to topic ${target.replace(/\./g, "\\.")}`));
  const copied = await readTopic(target);
  assert.equal(copied.length, 60);
  const originals = new Map(
    sent.filter(inRange).map((s) => [`${t.names.deliveries}:${s.partition}:${s.offset}`, s]),
  );
  for (const c of copied) {
    const source = c.headers[REPLAYED_HEADER]!;
    const s = originals.get(source);
    assert.ok(s, `header ${REPLAYED_HEADER}=${source} names a replayed record`);
    assert.deepEqual(c.value, encodeDelivery(s.delivery), "the same value bytes");
    assert.equal(c.key?.toString(), s.delivery.recipient);
    assert.equal(c.partition, partitionForKey(s.delivery.recipient, PARTITIONS));
    originals.delete(source);
  }
  assert.equal(originals.size, 0, "each event exactly once");

  // Replays skip what a replay wrote, unless asked to include it.
  const skip = await replay(["--topic", "rt.deliveries", "--republish", "rt.deliveries"]);
  assert.equal(skip.code, 0, skip.output);
  // Into its own topic: the range was fixed at the start, the copies are not read again.
  assert.match(skip.output, /120 written to topic .*rt\.deliveries.*1 skipped as replayed/);
  const second = await replay([
    "--topic",
    "rt.deliveries",
    "--from",
    iso(FROM),
    "--to",
    iso(TO),
    "--out",
    "-",
  ]);
  assert.match(second.output, /60 written to stdout, 0 filtered out, 1 skipped as replayed/);
  const all = await replay([
    "--topic",
    "rt.deliveries",
    "--include-replayed",
    "--out",
    join(dir, "all.jsonl"),
  ]);
  assert.match(all.output, /243 records read .*241 written/);
});

test("a range past retention is reported with the count of what is missing", async () => {
  const admin = new KafkaJs({ brokers: t.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.fetchTopicMetadata({ topics: [t.names.deliveries] });
  const p = sent[0]!.partition;
  const deleteBefore = sent.filter((s) => s.partition === p)[4]!.offset!;
  try {
    await admin.deleteTopicRecords({
      topic: t.names.deliveries,
      partitions: [{ partition: p, offset: deleteBefore }],
    });
  } finally {
    await admin.disconnect();
  }
  const r = await replay([
    "--topic",
    "rt.deliveries",
    "--partition",
    String(p),
    "--from-offset",
    "0",
    "--to-offset",
    "10",
  ]);
  assert.equal(r.code, 0, r.output);
  assert.match(
    r.output,
    new RegExp(
      `warning: .*rt\\.deliveries partition ${p}: the range starts before the oldest retained record ` +
        `\\(offset ${deleteBefore}\\); ${deleteBefore} records of the range were deleted by retention`,
    ),
  );
  assert.match(
    r.output,
    new RegExp(`${10 - Number(deleteBefore)} written .*, ${deleteBefore} missing \\(retention\\)`),
  );
  const byTime = await replay([
    "--topic",
    "rt.deliveries",
    "--partition",
    String(p),
    "--from",
    iso(BASE - 60_000),
  ]);
  assert.match(byTime.output, new RegExp(`up to ${deleteBefore} records of the range were deleted`));
});

test("bad arguments are named, exit 2, and nothing is read", async () => {
  const cases: ReadonlyArray<readonly [string[], RegExp]> = [
    [["--topic", "rt.nope"], /bad --topic "rt\.nope": expected one of rt\.deliveries, rt\.room-events/],
    [["--topic", "rt.deliveries", "--from", iso(TO), "--to", iso(FROM)], /--from .* is after --to/],
    [
      ["--topic", "rt.deliveries", "--from", "yesterday"],
      /bad --from "yesterday": expected an ISO 8601 time/,
    ],
    [["--topic", "rt.deliveries", "--to", "2025-02-30"], /bad --to "2025-02-30".*no such date/],
    [["--topic", "rt.deliveries", "--from", "2025-01-01T10:00"], /add Z for UTC/],
    [["--topic", "rt.deliveries", "--partition", "7"], /bad --partition 7: the topic has partitions 0 to 2/],
    [["--topic", "rt.deliveries", "--channel", "x"], /--channel does not apply to rt\.deliveries/],
    [["--topic", "rt.deliveries", "--frm", "x"], /unknown argument "--frm"/],
    [["--topic", "rt.deliveries", "--republish", "rt.channels"], /cannot go to rt\.channels/],
    [
      ["--topic", "rt.deliveries", "--republish", "no-such-topic"],
      /bad --republish: topic "no-such-topic" does not exist/,
    ],
    [["--topic", "rt.deliveries", "--out", join(dir, "no", "such", "dir.jsonl")], /bad --out .*ENOENT/],
  ];
  for (const [args, message] of cases) {
    const r = await replay(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.output}`);
    assert.match(r.output, message);
  }
  const elsewhere = await runToEnd("cli/rt.ts", ["replay", "--topic", "rt.deliveries"], {
    ...env,
    RT_TOPIC_PREFIX: "nothere.",
  });
  assert.equal(elsewhere.code, 2);
  assert.match(
    elsewhere.output,
    /bad --topic: topic "nothere\.rt\.deliveries" does not exist on the cluster/,
  );
});
