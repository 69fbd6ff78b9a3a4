import { test } from "node:test";
import assert from "node:assert/strict";
import { parseReplayArgs, parseTime, topicRole, type ReplayArgs } from "../../cli/replay-args.ts";
import { topicNames } from "../../schemas/topics.ts";

const names = topicNames("p.");

function ok(argv: string[]): ReplayArgs {
  const r = parseReplayArgs(argv, names);
  assert.ok(r.ok, r.ok ? "" : r.message);
  return r.args;
}
function bad(argv: string[], message: RegExp): void {
  const r = parseReplayArgs(argv, names);
  assert.equal(r.ok, false, `expected an error for ${argv.join(" ")}`);
  if (!r.ok) assert.match(r.message, message);
}

test("topics: basename, short name or prefixed name, and the role picks the codec", () => {
  for (const given of ["rt.deliveries", "deliveries", "p.rt.deliveries"]) {
    assert.equal(topicRole(given, names), "deliveries");
  }
  assert.equal(topicRole("room-members", names), "roomMembers");
  assert.equal(topicRole("rt.deliveries.x", names), undefined);
  const a = ok(["--topic", "rt.room-events"]);
  assert.equal(a.role, "roomEvents");
  assert.equal(a.topic, "p.rt.room-events");
  assert.equal(a.format, "jsonl");
  assert.equal(a.out, undefined);
  bad([], /--topic is required/);
  bad(["--topic", "rt.nope"], /bad --topic "rt\.nope": expected one of rt\.deliveries, rt\.room-events/);
});

test("times: ISO dates and date-times with a zone, strict", () => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ["2025-01-31", Date.UTC(2025, 0, 31)],
    ["2025-01-31T12:00:00Z", Date.UTC(2025, 0, 31, 12)],
    ["2025-01-31T12:00Z", Date.UTC(2025, 0, 31, 12)],
    ["2025-01-31 12:00:00.250Z", Date.UTC(2025, 0, 31, 12, 0, 0, 250)],
    ["2025-01-31T12:00:00.123456+01:00", Date.UTC(2025, 0, 31, 11, 0, 0, 123)],
    ["2025-01-31T12:00:00-0530", Date.UTC(2025, 0, 31, 17, 30)],
    ["2024-02-29T00:00:00Z", Date.UTC(2024, 1, 29)],
  ];
  for (const [text, ms] of cases) assert.equal(parseTime("--from", text), ms, text);
  for (const text of [
    "yesterday",
    "2025-13-01",
    "2025-02-30",
    "2023-02-29",
    "2025-01-31T24:00Z",
    "1738000000",
    "",
  ]) {
    const r = parseTime("--from", text);
    assert.equal(typeof r, "string", text);
    assert.match(r as string, /^bad --from /);
  }
  assert.match(parseTime("--to", "2025-01-31T12:00") as string, /add Z for UTC/);
  assert.equal(parseTime("--to", undefined), undefined);
});

test("ranges: time or offsets per side, never both, never backwards", () => {
  const a = ok(["--topic", "deliveries", "--from", "2025-01-01", "--to", "2025-01-02"]);
  assert.equal(a.fromMs, Date.UTC(2025, 0, 1));
  assert.equal(a.toMs, Date.UTC(2025, 0, 2));
  const b = ok(["--topic", "deliveries", "--from-offset", "10", "--to-offset", "9223372036854775807"]);
  assert.equal(b.fromOffset, 10n);
  assert.equal(b.toOffset, 2n ** 63n - 1n);
  ok(["--topic", "deliveries", "--from", "2025-01-01", "--to-offset", "5"]);
  bad(
    ["--topic", "deliveries", "--from", "2025-01-02", "--to", "2025-01-01"],
    /--from 2025-01-02 is after --to 2025-01-01/,
  );
  bad(
    ["--topic", "deliveries", "--from-offset", "9", "--to-offset", "3"],
    /--from-offset 9 is after --to-offset 3/,
  );
  bad(["--topic", "deliveries", "--from", "2025-01-01", "--from-offset", "1"], /exclude each other/);
  bad(["--topic", "deliveries", "--from-offset", "-1"], /bad --from-offset "-1"/);
  bad(["--topic", "deliveries", "--to-offset", "9223372036854775808"], /bad --to-offset/);
  bad(["--topic", "deliveries", "--to-offset", "01"], /bad --to-offset "01"/);
});

test("partitions: lists and repeats, sorted and distinct", () => {
  assert.deepEqual(
    ok(["--topic", "deliveries", "--partition", "4,1", "--partition", "1"]).partitions,
    [1, 4],
  );
  bad(["--topic", "deliveries", "--partition", "x"], /bad --partition "x"/);
  bad(["--topic", "deliveries", "--partition", "1,,2"], /bad --partition/);
});

test("filters: repeatable, and only where they apply", () => {
  const a = ok(["--topic", "deliveries", "--user", "bob", "--user", "ann", "--type", "t", "--room", "r"]);
  assert.deepEqual(a.filters, { users: ["bob", "ann"], rooms: ["r"], channels: [], types: ["t"] });
  ok(["--topic", "channels", "--channel", "*", "--user", "u"]);
  bad(["--topic", "channels", "--room", "r"], /--room does not apply to rt\.channels/);
  bad(["--topic", "room-members", "--type", "t"], /--type does not apply to rt\.room-members/);
  bad(["--topic", "deliveries", "--channel", "c"], /--channel does not apply to rt\.deliveries/);
  bad(["--topic", "deliveries", "--user", ""], /--user needs a non-empty value/);
});

test("outputs: file format from the name, --format, stdout, re-publish", () => {
  assert.equal(ok(["--topic", "deliveries", "--out", "x.avro"]).format, "avro");
  assert.equal(ok(["--topic", "deliveries", "--out", "x.jsonl"]).format, "jsonl");
  assert.equal(ok(["--topic", "deliveries", "--out", "x.avro", "--format", "jsonl"]).format, "jsonl");
  const stdout = ok(["--topic", "deliveries", "--out", "-", "--format", "avro"]);
  assert.equal(stdout.out, undefined);
  assert.equal(stdout.format, "avro");
  bad(["--topic", "deliveries", "--format", "csv"], /bad --format "csv": expected jsonl or avro/);
  assert.deepEqual(ok(["--topic", "deliveries", "--republish", "rt.deliveries"]).republish, {
    topic: "p.rt.deliveries",
    role: "deliveries",
  });
  assert.deepEqual(ok(["--topic", "deliveries", "--republish", "incident-42"]).republish, {
    topic: "incident-42",
  });
  bad(["--topic", "deliveries", "--republish", "rt.channels"], /cannot go to rt\.channels/);
  bad(["--topic", "deliveries", "--republish", "x", "--out", "f"], /--out and --format do not apply/);
  bad(["--topic", "deliveries", "--republish", "x", "--include-replayed"], /would loop/);
  bad(["--topic", "room-members", "--republish", "x"], /only the router writes memberships/);
});

test("unknown, missing and repeated arguments are named", () => {
  bad(["--topic", "deliveries", "--frm", "x"], /unknown argument "--frm"/);
  bad(["--topic", "deliveries", "--from"], /--from needs a value/);
  bad(["--topic", "deliveries", "--from", "--to"], /--from needs a value/);
  bad(["--topic", "deliveries", "--topic", "channels"], /--topic given twice/);
  bad(["deliveries"], /unknown argument "deliveries"/);
});
