/**
 * Resume by cursor against a real gateway process and Kafka: gaps are replayed exactly once
 * and in order, limits and bad cursors give `recovered: false` (never another user's events),
 * events produced during a catch-up are neither lost nor duplicated. Both ways of serving a
 * resume are covered: from the resume window (memory, no scan) and by a catch-up seek (a gateway
 * with the window off, or a cursor older than the window), where many resumes share one scan.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { partitionForKey } from "../../schemas/partition.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type Frame, type TestClient } from "../helpers/ws-client.ts";

let t: TestKafka;
let gw: GatewayProc;
let limited: GatewayProc;
let seekOnly: GatewayProc;
const open: TestClient[] = [];

before(async () => {
  t = await testKafka();
  // A 1 MiB window: 256 KiB for each of the 4 partitions, which a few large events overflow.
  gw = await startGatewayProc(
    gatewayEnv(t.brokers, t.prefix, {
      RT_GATEWAY_NODE_ID: "resume",
      RT_SENDS_PER_S: "2000",
      RT_RESUME_WINDOW_MB: "1",
    }),
  );
  // Other clusters on the same broker (own prefix): a tiny scan limit; no window (every
  // recovered resume is a catch-up seek).
  limited = await startGatewayProc(gatewayEnv(t.brokers, `${t.prefix}lim.`, { RT_RESUME_SCAN_MAX: "10" }));
  seekOnly = await startGatewayProc(
    gatewayEnv(t.brokers, `${t.prefix}seek.`, { RT_RESUME_WINDOW_MB: "0", RT_SENDS_PER_S: "2000" }),
  );
  await waitAllReady([gw, limited, seekOnly]);
});

after(async () => {
  for (const c of open) c.close();
  await Promise.all([gw, limited, seekOnly].map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

async function user(name: string, url = gw.url, cursor?: string) {
  const r = await connectUser(url, await token(name), cursor === undefined ? {} : { cursor });
  open.push(r.client);
  return r;
}

async function sendAll(c: TestClient, to: string, ids: string[]): Promise<void> {
  for (const id of ids) c.send({ op: "send", id, to: `user:${to}`, type: "t", data: id });
  for (const id of ids) {
    const ack = await c.waitFor((f) => f.op === "ack" && f.id === id, 20_000);
    assert.equal(ack.ok, true, JSON.stringify(ack));
  }
}

const events = (c: TestClient): Frame[] => c.frames.filter((f) => f.op === "event");

interface ResumeStats {
  catchUp: { scans: number; rewindResumes: number };
  resumeWindow: { hits: number; records: number; bytes: number };
}
async function stats(g: GatewayProc): Promise<ResumeStats> {
  return (await (await fetch(`${g.http}/v1/stats`)).json()) as ResumeStats;
}

/** The two ways a recovered resume is served, each by its own gateway. */
const PATHS = [
  { path: "window", gateway: () => gw },
  { path: "seek", gateway: () => seekOnly },
] as const;

/** Asserts how the resumes between two stats reads were served: all from memory, or by scans. */
function assertServedBy(path: "window" | "seek", before: ResumeStats, after: ResumeStats, resumes: number) {
  const hits = after.resumeWindow.hits - before.resumeWindow.hits;
  const scans = after.catchUp.scans - before.catchUp.scans;
  if (path === "window") {
    assert.equal(hits, resumes, "served from the window");
    assert.equal(scans, 0, "no catch-up seek");
  } else {
    assert.equal(hits, 0, "the window is off");
    assert.ok(scans >= 1, "served by a catch-up seek");
  }
}
const range = (p: string, n: number, from = 0) => Array.from({ length: n }, (_, i) => `${p}${from + i}`);

for (const { path, gateway } of PATHS) {
  test(`a short disconnect is replayed exactly once, in order, then live continues (${path})`, async () => {
    const g = gateway();
    const a = await user(`ra-${path}-${t.prefix}`, g.url);
    const bName = `rb-${path}-${t.prefix}`;
    const b1 = await user(bName, g.url);
    await sendAll(a.client, bName, range("x", 5));
    await b1.client.waitForCount((f) => f.op === "event", 5);
    const cursor = events(b1.client)[4]!.cursor as string;
    b1.client.close();
    await b1.client.closed;
    await sendAll(a.client, bName, range("x", 20, 5));
    const before = await stats(g);
    const b2 = await user(bName, g.url, cursor);
    assert.equal(b2.welcome.recovered, true);
    assert.equal(b2.welcome.cursor, cursor);
    await sendAll(a.client, bName, range("x", 5, 25));
    const got = await b2.client.waitForCount((f) => f.op === "event", 25);
    await sleep(300);
    assert.deepEqual(
      events(b2.client).map((e) => e.id),
      range("x", 25, 5),
      "the 20 missed events, then the 5 live ones, each once",
    );
    assert.ok(got.every((e) => e.to === `user:${bName}`));
    assertServedBy(path, before, await stats(g), 1);
  });
}

test("a welcome cursor before any event resumes from the start of the log", async () => {
  const name = `fresh-${t.prefix}`;
  const first = await user(name);
  const cursor = first.welcome.cursor as string;
  // The epoch: the partition count (4) and the topic's ID (schemas/cursor.ts epochOf).
  assert.match(cursor, /^4t[0-9a-z]{1,11}:\d+:-?\d+$/);
  first.client.close();
  await first.client.closed;
  const a = await user(`fresh-sender-${t.prefix}`);
  await sendAll(a.client, name, ["f0", "f1"]);
  const again = await user(name, gw.url, cursor);
  assert.equal(again.welcome.recovered, true);
  await again.client.waitForCount((f) => f.op === "event", 2);
  assert.deepEqual(
    events(again.client).map((e) => e.id),
    ["f0", "f1"],
  );
});

test("past the scan limit the welcome says recovered: false and the session is live from now", async () => {
  const a = await user(`la-${t.prefix}`, limited.url);
  const bName = `lb-${t.prefix}`;
  const b1 = await user(bName, limited.url);
  await sendAll(a.client, bName, ["l0"]);
  const cursor = (await b1.client.waitFor((f) => f.op === "event")).cursor as string;
  b1.client.close();
  await b1.client.closed;
  await sendAll(a.client, bName, range("gap", 30));
  const b2 = await user(bName, limited.url, cursor);
  assert.equal(b2.welcome.recovered, false);
  assert.equal(b2.welcome.reason, "scan_limit");
  await sendAll(a.client, bName, ["live0"]);
  await b2.client.waitFor((f) => f.op === "event" && f.id === "live0");
  assert.deepEqual(
    events(b2.client).map((e) => e.id),
    ["live0"],
    "nothing from the gap: the client resyncs from its application",
  );
});

test("bad cursors: malformed is an error frame, others give recovered: false, never other users' events", async () => {
  const name = `bc-${t.prefix}`;
  const p = partitionForKey(name, 4);
  const other = (p + 1) % 4;
  // This log's epoch, from a welcome of another user.
  const probe = await user(`bc-epoch-${t.prefix}`);
  const epoch = String(probe.welcome.cursor).split(":")[0]!;
  probe.client.close();
  const bad = await connectUser(gw.url, await token(name), { cursor: "not-a-cursor" }).catch(
    (e: { frame: Frame; closed: { code: number } }) => e,
  );
  assert.ok(!("client" in bad));
  assert.equal(bad.frame.code, "bad_cursor");
  assert.equal(bad.closed.code, 4002);
  const cases: [string, string][] = [
    [`zz:${p}:0`, "epoch_changed"],
    [`${epoch}:${other}:0`, "wrong_partition"],
    [`${epoch}:${p}:9000000000000000000`, "future_cursor"],
    // The old epoch format (the partition count alone) is another log.
    [`p4:${p}:0`, "epoch_changed"],
  ];
  for (const [cursor, reason] of cases) {
    const r = await user(name, gw.url, cursor);
    assert.equal(r.welcome.recovered, false, cursor);
    assert.equal(r.welcome.reason, reason, cursor);
    r.client.close();
  }
  // A cursor at the start of the user's partition replays only this user's events.
  const victim = `victim-${t.prefix}`;
  const a = await user(`bc-sender-${t.prefix}`);
  await sendAll(a.client, victim, ["secret"]);
  const snoop = await user(name, gw.url, `${epoch}:${partitionForKey(victim, 4)}:-1`);
  await sleep(500);
  assert.ok(!events(snoop.client).some((e) => e.id === "secret"), "another user's events never leak");
});

for (const { path, gateway } of PATHS) {
  test(`events produced while a user is mid catch-up are neither lost nor duplicated (${path})`, async () => {
    const g = gateway();
    const a = await user(`race-a-${path}-${t.prefix}`, g.url);
    const bName = `race-b-${path}-${t.prefix}`;
    const b1 = await user(bName, g.url);
    await sendAll(a.client, bName, ["r0"]);
    const cursor = (await b1.client.waitFor((f) => f.op === "event")).cursor as string;
    b1.client.close();
    await b1.client.closed;
    await sendAll(a.client, bName, range("r", 200, 1));
    // Keep sending while the resume happens.
    const during = range("r", 100, 201);
    const sending = (async () => {
      for (const id of during) {
        a.client.send({ op: "send", id, to: `user:${bName}`, type: "t", data: id });
        await sleep(2);
      }
    })();
    const before = await stats(g);
    const b2 = await user(bName, g.url, cursor);
    await sending;
    await b2.client.waitForCount((f) => f.op === "event", 300, 30_000);
    await sleep(300);
    assert.equal(b2.welcome.recovered, true);
    assert.deepEqual(
      events(b2.client).map((e) => e.id),
      range("r", 300, 1),
    );
    assertServedBy(path, before, await stats(g), 1);
  });
}

for (const { path, gateway } of PATHS) {
  test(`many resumes on one partition: ${path === "window" ? "no scan at all" : "one shared scan"}`, async () => {
    const g = gateway();
    // Users of one partition, each a few events behind.
    const p = 2;
    const names: string[] = [];
    for (let i = 0; names.length < 25; i++) {
      const n = `crowd-${path}-${t.prefix}${i}`;
      if (partitionForKey(n, 4) === p) names.push(n);
    }
    const sessions = await Promise.all(names.map((n) => user(n, g.url)));
    const a = await user(`crowd-sender-${path}-${t.prefix}`, g.url);
    for (const n of names) await sendAll(a.client, n, [`${n}-a`]);
    const cursors = await Promise.all(
      sessions.map(async (s) => (await s.client.waitFor((f) => f.op === "event")).cursor as string),
    );
    for (const s of sessions) s.client.close();
    await Promise.all(sessions.map((s) => s.client.closed));
    for (const n of names) await sendAll(a.client, n, [`${n}-b`]);
    const before = await stats(g);
    const resumed = await Promise.all(names.map((n, i) => user(n, g.url, cursors[i])));
    for (const [i, r] of resumed.entries()) {
      assert.equal(r.welcome.recovered, true);
      const ev = await r.client.waitFor((f) => f.op === "event");
      assert.equal(ev.id, `${names[i]}-b`);
    }
    const after = await stats(g);
    const scans = after.catchUp.scans - before.catchUp.scans;
    console.log(`# ${names.length} resumes on partition ${p} caused ${scans} scan(s) (${path})`);
    assertServedBy(path, before, after, names.length);
    if (path === "seek") assert.ok(scans <= 3, `${names.length} resumes caused ${scans} scans`);
  });
}

test("a cursor older than the window is served by a catch-up seek, and a recent one again from memory", async () => {
  // Each 60 KB event counts about 120 KB in the window (value and decoded frame): ten overflow
  // the whole 1 MiB, whatever share of it this user's partition has, and push the first ones out.
  const bName = `old-${t.prefix}`;
  const a = await user(`old-sender-${t.prefix}`);
  const b1 = await user(bName);
  await sendAll(a.client, bName, ["o0"]);
  const cursor = (await b1.client.waitFor((f) => f.op === "event")).cursor as string;
  b1.client.close();
  await b1.client.closed;
  const big = "y".repeat(60_000);
  for (let i = 1; i <= 10; i++) {
    a.client.send({ op: "send", id: `o${i}`, to: `user:${bName}`, type: "t", data: big });
    assert.equal((await a.client.waitFor((f) => f.op === "ack" && f.id === `o${i}`, 20_000)).ok, true);
  }
  const before = await stats(gw);
  const b2 = await user(bName, gw.url, cursor);
  assert.equal(b2.welcome.recovered, true);
  await b2.client.waitForCount((f) => f.op === "event", 10, 20_000);
  const middle = await stats(gw);
  assertServedBy("seek", before, middle, 1);
  assert.deepEqual(
    events(b2.client).map((e) => e.id),
    range("o", 10, 1),
  );
  assert.ok(events(b2.client).every((e) => e.data === big));
  assert.ok(middle.resumeWindow.bytes <= 1024 * 1024, `window holds ${middle.resumeWindow.bytes} bytes`);
  // A cursor one event back is still in the window.
  const recent = events(b2.client)[8]!.cursor as string;
  b2.client.close();
  await b2.client.closed;
  const b3 = await user(bName, gw.url, recent);
  await b3.client.waitFor((f) => f.op === "event");
  await sleep(200);
  assert.deepEqual(
    events(b3.client).map((e) => e.id),
    ["o10"],
  );
  assertServedBy("window", middle, await stats(gw), 1);
});
