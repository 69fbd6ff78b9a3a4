/**
 * Rooms, live channels, the publish API and revocation, end to end: three real gateway processes,
 * a real router process (fanout with Kafka transactions), one real Kafka, real signed tokens.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { SignJWT } from "jose";
import { partitionForKey } from "../../schemas/partition.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { routerEnv, startRouterProc, type RouterProc } from "../helpers/router-proc.ts";
import { TEST_SECRET, connectUser, token, type Frame, type TestClient } from "../helpers/ws-client.ts";

const PARTITIONS = 6;
const ROOM_PARTITIONS = 2;
const ROOM_CLAIMS = { rt_rooms: ["team-*"], rt_channels: ["news"], rt_publish: ["news"] };

let t: TestKafka;
let gw: GatewayProc[] = [];
let router: RouterProc;
const clients: TestClient[] = [];
let env: Record<string, string>;
let rEnv: Record<string, string>;

async function startRouter(): Promise<RouterProc> {
  const r = await startRouterProc(rEnv);
  // The fanout runs once it owns every room partition and has rebuilt their membership.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${r.url}/v1/stats`).catch(() => null);
    const body =
      res === null
        ? null
        : ((await res.json()) as { fanout: { owned: number[]; rebuilding: number[] } | null });
    if (body?.fanout !== null && body?.fanout !== undefined) {
      if (body.fanout.owned.length === ROOM_PARTITIONS && body.fanout.rebuilding.length === 0) return r;
    }
    if (Date.now() > deadline) throw new Error(`router fanout not running: ${JSON.stringify(body)}`);
    await sleep(200);
  }
}

before(async () => {
  t = await testKafka();
  const topicEnv = {
    RT_DELIVERIES_PARTITIONS: String(PARTITIONS),
    RT_ROOM_PARTITIONS: String(ROOM_PARTITIONS),
  };
  env = gatewayEnv(t.brokers, t.prefix, { ...topicEnv, RT_SENDS_PER_S: "2000", RT_ROOM_SENDS_PER_S: "2000" });
  rEnv = routerEnv(t.brokers, t.prefix, {
    ...topicEnv,
    RT_ROUTER_ID: `r-${t.prefix}`,
    RT_MAX_ROOM_MEMBERS: "5",
  });
  gw = await Promise.all(
    ["a", "b", "c"].map((n) => startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: `gw-${n}` })),
  );
  await waitAllReady(gw);
  router = await startRouter();
});

after(async () => {
  for (const c of clients) c.close();
  await router?.proc.stop("SIGTERM", 20_000);
  await Promise.all(gw.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

/** The gateway that owns a user's partition, by asking the gateways' stats. */
async function ownerOf(user: string): Promise<string> {
  const p = partitionForKey(user, PARTITIONS);
  for (const g of gw) {
    const stats = (await (await fetch(`${g.http}/v1/stats`)).json()) as { owned: number[]; node: string };
    if (stats.owned.includes(p)) return stats.node;
  }
  throw new Error(`nobody owns partition ${p}`);
}

/** Users on three different gateways. */
async function spreadUsers(tag: string, n: number): Promise<string[]> {
  const byNode = new Map<string, string>();
  for (let i = 0; byNode.size < n && i < 500; i++) {
    const u = `${tag}-${t.prefix}-${i}`;
    const node = await ownerOf(u);
    if (!byNode.has(node)) byNode.set(node, u);
  }
  assert.equal(byNode.size, n, "users on distinct gateways");
  return [...byNode.values()];
}

async function live(user: string, claims: Record<string, unknown> = ROOM_CLAIMS, cursor?: string) {
  const jwt = await token(user, { claims });
  const { client, welcome } = await connectUser(gw[0]!.url, jwt, cursor === undefined ? {} : { cursor });
  clients.push(client);
  return { client, welcome };
}

let reqId = 0;
async function request(c: TestClient, frame: Frame): Promise<Frame> {
  const id = `r${(reqId += 1)}`;
  const from = c.frames.length;
  c.send({ ...frame, id });
  return c.waitFor((f) => f.op === "ack" && f.id === id, 15_000, from);
}

const roomEvents = (c: TestClient, room: string) =>
  c.frames.filter((f) => f.op === "event" && f.to === `room:${room}` && !String(f.type).startsWith("rt."));

test("three members on three gateways get every room message once, in the room's order", async () => {
  const room = `team-${t.prefix}-a`;
  const users = await spreadUsers("m", 3);
  const members = await Promise.all(users.map((u) => live(u)));
  for (const m of members)
    assert.deepEqual(await request(m.client, { op: "join", room }), { op: "ack", id: `r${reqId}`, ok: true });
  for (const [i, m] of members.entries()) {
    await m.client.waitFor((f) => f.op === "event" && f.type === "rt.joined" && f.to === `room:${room}`);
    assert.equal(m.client.frames.find((f) => f.type === "rt.joined")!.from, users[i]);
  }
  const perSender = 10;
  for (let k = 0; k < perSender; k++) {
    for (const [i, m] of members.entries()) {
      m.client.send({
        op: "send",
        id: `s${i}-${k}`,
        to: `room:${room}`,
        type: "chat.message",
        data: { k, i },
      });
    }
  }
  const total = perSender * members.length;
  const seen = await Promise.all(
    members.map((m) =>
      m.client.waitForCount(
        (f) => f.op === "event" && f.to === `room:${room}` && f.type === "chat.message",
        total,
        30_000,
      ),
    ),
  );
  const orders = seen.map((events) => events.map((e) => `${e.from}/${e.id}`));
  for (const order of orders) {
    assert.equal(new Set(order).size, total, "no duplicates");
    assert.deepEqual(order, orders[0], "every member sees the room's one order");
  }
  for (const [i, u] of users.entries()) {
    const mine = orders[0]!.filter((x) => x.startsWith(`${u}/`)).map((x) => x.split("/")[1]);
    assert.deepEqual(
      mine,
      Array.from({ length: perSender }, (_, k) => `s${i}-${k}`),
      "each sender's order kept",
    );
  }
  // Each delivery is in the member's own inbox: cursors on its partition, growing.
  for (const [i, events] of seen.entries()) {
    const p = partitionForKey(users[i]!, PARTITIONS);
    const offsets = events.map((e) => {
      const [, part, off] = String(e.cursor).split(":");
      assert.equal(Number(part), p);
      return BigInt(off!);
    });
    for (let k = 1; k < offsets.length; k++) assert.ok(offsets[k]! > offsets[k - 1]!);
  }
  // A member who was away gets what was said meanwhile on resume, and nothing twice.
  const away = members[2]!;
  const cursor = String(seen[2]!.at(-1)!.cursor);
  away.client.close();
  await away.client.closed;
  for (let k = 0; k < 5; k++) {
    const ack = await request(members[0]!.client, {
      op: "send",
      to: `room:${room}`,
      type: "chat.message",
      data: { late: k },
    });
    assert.equal(ack.ok, true);
  }
  const back = await live(users[2]!, ROOM_CLAIMS, cursor);
  assert.equal(back.welcome.recovered, true);
  const late = await back.client.waitForCount(
    (f) => f.op === "event" && f.type === "chat.message",
    5,
    20_000,
  );
  assert.deepEqual(
    late.map((e) => e.data.late),
    [0, 1, 2, 3, 4],
  );
  await sleep(300);
  assert.equal(roomEvents(back.client, room).length, 5, "exactly the five it missed");
});

test("room requests without the claim, from non-members, or with bad names are refused with typed errors", async () => {
  const [u] = await spreadUsers("x", 1);
  const { client } = await live(u!);
  const denied = await request(client, { op: "join", room: `lobby-${t.prefix}` });
  assert.equal(denied.ok, false);
  assert.equal(denied.error.code, "forbidden");
  const badName = await request(client, { op: "join", room: "has space" });
  assert.equal(badName.error.code, "bad_target");
  const longName = await request(client, { op: "join", room: `team-${"x".repeat(200)}` });
  assert.equal(longName.error.code, "bad_target");
  const reserved = await request(client, { op: "send", to: `user:${u}`, type: "rt.revoke", data: {} });
  assert.equal(reserved.error.code, "forbidden");
  const notClaimed = await request(client, {
    op: "send",
    to: `room:lobby-${t.prefix}`,
    type: "chat.message",
    data: 1,
  });
  assert.equal(notClaimed.error.code, "forbidden");
  // Allowed by the claim but not a member: the router refuses it, and tells the sender.
  const room = `team-${t.prefix}-closed`;
  const ack = await request(client, {
    op: "send",
    id: "nm1",
    to: `room:${room}`,
    type: "chat.message",
    data: 1,
  });
  assert.equal(ack.ok, true);
  const rejected = await client.waitFor((f) => f.op === "event" && f.type === "rt.rejected", 20_000);
  assert.equal(rejected.data.code, "not_member");
  assert.equal(rejected.data.room, room);
  assert.equal(rejected.from, "service:rt-router");
  // A room over RT_MAX_ROOM_MEMBERS (5) refuses the next join.
  const full = `team-${t.prefix}-full`;
  const joiners = await Promise.all(Array.from({ length: 6 }, (_, i) => live(`full-${t.prefix}-${i}`)));
  for (const j of joiners.slice(0, 5))
    assert.equal((await request(j.client, { op: "join", room: full })).ok, true);
  for (const j of joiners.slice(0, 5)) await j.client.waitFor((f) => f.type === "rt.joined", 20_000);
  assert.equal((await request(joiners[5]!.client, { op: "join", room: full })).ok, true);
  const refused = await joiners[5]!.client.waitFor((f) => f.type === "rt.rejected", 20_000);
  assert.equal(refused.data.code, "limit_reached");
});

test("membership survives a router restart, and a router killed mid-fanout loses and repeats nothing", async () => {
  const room = `team-${t.prefix}-k`;
  const users = await spreadUsers("k", 3);
  const members = await Promise.all(users.map((u) => live(u)));
  for (const m of members) assert.equal((await request(m.client, { op: "join", room })).ok, true);
  for (const m of members)
    await m.client.waitFor((f) => f.type === "rt.joined" && f.to === `room:${room}`, 20_000);
  await router.proc.stop("SIGTERM", 20_000);
  router = await startRouter();
  const after1 = await request(members[0]!.client, {
    op: "send",
    to: `room:${room}`,
    type: "chat.message",
    data: { n: -1 },
  });
  assert.equal(after1.ok, true);
  for (const m of members)
    await m.client.waitFor((f) => f.type === "chat.message" && f.data.n === -1, 20_000);

  // Kill the router while a burst is being fanned out; its replacement (same RT_ROUTER_ID) takes over.
  const n = 1000;
  const sender = members[1]!.client;
  for (let i = 0; i < n; i++)
    sender.send({ op: "send", id: `b${i}`, to: `room:${room}`, type: "chat.message", data: { n: i } });
  await members[0]!.client.waitFor((f) => f.type === "chat.message" && f.data.n >= 0, 30_000);
  await router.proc.stop("SIGKILL");
  const seenAtKill = members[0]!.client.frames.filter(
    (f) => f.type === "chat.message" && f.data.n >= 0,
  ).length;
  assert.ok(seenAtKill < n, `the router died mid-fanout (${seenAtKill}/${n} fanned out)`);
  await sender.waitForCount(
    (f) => f.op === "ack" && String(f.id).startsWith("b") && f.ok === true,
    n,
    30_000,
  );
  router = await startRouter();
  for (const m of members) {
    const got = await m.client.waitForCount(
      (f) => f.type === "chat.message" && typeof f.data.n === "number" && f.data.n >= 0,
      n,
      60_000,
    );
    await sleep(500);
    const all = m.client.frames
      .filter((f) => f.type === "chat.message" && f.data.n >= 0)
      .map((f) => f.data.n as number);
    assert.deepEqual(
      all,
      Array.from({ length: n }, (_, i) => i),
      "every message once, in order",
    );
    assert.equal(got.length, n);
  }
});

test("live channels reach subscribers only; broadcast reaches everyone on every gateway", async () => {
  const users = await spreadUsers("c", 3);
  const [sub, other, pub] = await Promise.all(users.map((u) => live(u)));
  assert.equal((await request(sub!.client, { op: "subscribe", channel: "news" })).ok, true);
  const refused = await request(other!.client, { op: "subscribe", channel: "secret" });
  assert.equal(refused.error.code, "forbidden");
  // Subscriptions take effect at once; the channel consumer reads from its live end.
  const ack = await request(pub!.client, {
    op: "send",
    id: "n1",
    to: "channel:news",
    type: "news.flash",
    data: { h: 1 },
  });
  assert.equal(ack.ok, true);
  assert.equal(ack.cursor, undefined, "channel events have no cursor");
  const ev = await sub!.client.waitFor((f) => f.op === "event" && f.to === "channel:news", 20_000);
  assert.equal(ev.from, users[2]);
  assert.equal(ev.cursor, undefined);
  const noPublish = await request(sub!.client, { op: "send", to: "channel:*", type: "x.y", data: 1 });
  assert.equal(noPublish.error.code, "forbidden");
  // Broadcast through the router's publish API, by a service.
  const svc = await serviceToken("ops", "rt:publish");
  const res = await publish(svc, { to: "channel:*", type: "ops.notice", data: { msg: "maintenance" } });
  assert.equal(res.status, 200);
  for (const c of [sub!, other!, pub!]) {
    const b = await c.client.waitFor((f) => f.op === "event" && f.to === "channel:*", 20_000);
    assert.equal(b.from, "service:ops");
    assert.deepEqual(b.data, { msg: "maintenance" });
  }
  await sleep(300);
  assert.equal(
    other!.client.frames.filter((f) => f.to === "channel:news").length,
    0,
    "non-subscriber got nothing",
  );
  assert.equal(sub!.client.frames.filter((f) => f.to === "channel:news").length, 1);
  assert.equal((await request(sub!.client, { op: "unsubscribe", channel: "news" })).ok, true);
  await request(pub!.client, { op: "send", to: "channel:news", type: "news.flash", data: { h: 2 } });
  await sleep(1_000);
  assert.equal(sub!.client.frames.filter((f) => f.to === "channel:news").length, 1, "unsubscribed: no more");
});

async function serviceToken(sub: string, scope: string): Promise<string> {
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

async function publish(
  jwt: string | null,
  body: unknown,
  path = "/v1/publish",
  headers: Record<string, string> = { "content-type": "application/json" },
): Promise<{ status: number; body: Frame }> {
  const res = await fetch(`${router.url}${path}`, {
    method: "POST",
    headers: { ...headers, ...(jwt === null ? {} : { authorization: `Bearer ${jwt}` }) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Frame };
}

test("the publish API writes for services only, and refuses bad bodies with a status and a message", async () => {
  const [u, m] = await spreadUsers("p", 2);
  const { client } = await live(u!);
  const svc = await serviceToken("billing", "rt:publish");
  const ok = await publish(svc, { to: `user:${u}`, type: "invoice.ready", data: { n: 7 }, id: "inv-1" });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.id, "inv-1");
  const ev = await client.waitFor((f) => f.op === "event" && f.id === "inv-1", 20_000);
  assert.equal(ev.from, "service:billing");
  assert.equal(ev.cursor, ok.body.cursor, "the answer's cursor is the event's");
  // A room message from a service reaches the members (services need no membership).
  const room = `team-${t.prefix}-pub`;
  const member = await live(m!);
  assert.equal((await request(member.client, { op: "join", room })).ok, true);
  await member.client.waitFor((f) => f.type === "rt.joined", 20_000);
  assert.equal((await publish(svc, { to: `room:${room}`, type: "room.notice", data: 1 })).status, 200);
  await member.client.waitFor((f) => f.type === "room.notice" && f.to === `room:${room}`, 20_000);

  const userJwt = await token(u!);
  const cases: [string | null, unknown, number, string, Record<string, string>?][] = [
    [userJwt, { to: `user:${u}`, type: "a.b", data: 1 }, 403, "forbidden"],
    [await serviceToken("x", "rt:revoke"), { to: `user:${u}`, type: "a.b", data: 1 }, 403, "forbidden"],
    [null, { to: `user:${u}`, type: "a.b", data: 1 }, 401, "unauthorized"],
    [svc, "{not json", 400, "bad_request"],
    [svc, { to: "nobody", type: "a.b", data: 1 }, 400, "bad_request"],
    [svc, { to: `user:${u}`, type: "rt.revoke", data: 1 }, 400, "bad_request"],
    [svc, { to: `user:${u}`, type: "a.b", data: 1, extra: true }, 400, "bad_request"],
    [svc, { to: `user:${u}`, type: "a.b" }, 400, "bad_request"],
    [svc, { to: `user:${u}`, type: "a.b", data: "x".repeat(70_000) }, 413, "too_big"],
    [
      svc,
      { to: `user:${u}`, type: "a.b", data: 1 },
      415,
      "unsupported_media_type",
      { "content-type": "text/plain" },
    ],
  ];
  for (const [jwt, body, status, error, headers] of cases) {
    const r = await publish(jwt, body, "/v1/publish", headers);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 60)} -> ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, error);
    assert.equal(typeof r.body.message, "string");
  }
  await sleep(500);
  assert.equal(
    client.frames.filter((f) => f.op === "event" && f.type === "a.b").length,
    0,
    "nothing refused was written",
  );
});

test("revoke closes every device of the user on its gateway, and nobody else's; the old token is refused", async () => {
  const [victim, bystander] = await spreadUsers("v", 2);
  const oldJwt = await token(victim!, { claims: ROOM_CLAIMS });
  const devices = [await live(victim!), await live(victim!)];
  const other = await live(bystander!);
  const svc = await serviceToken("security", "rt:revoke");
  assert.equal(
    (await publish(await serviceToken("x", "rt:publish"), { user: victim }, "/v1/revoke")).status,
    403,
  );
  assert.equal((await publish(svc, { user: "" }, "/v1/revoke")).status, 400);
  const res = await publish(svc, { user: victim, reason: "password changed" }, "/v1/revoke");
  assert.equal(res.status, 200, JSON.stringify(res.body));
  for (const d of devices) {
    const closed = await Promise.race([d.client.closed, sleep(5_000).then(() => null)]);
    assert.deepEqual(closed, { code: 4013, reason: "revoked" });
  }
  assert.equal(other.client.isClosed, null, "the bystander stays connected");
  other.client.send({ op: "ping", id: "still-there" });
  await other.client.waitFor((f) => f.op === "pong" && f.id === "still-there");
  // A token issued before the revocation is refused; a newer one is accepted.
  await assert.rejects(
    connectUser(gw[0]!.url, oldJwt),
    (e: { closed?: { code: number } }) => e.closed?.code === 4013,
  );
  await sleep(1_100); // iat has one-second resolution
  const fresh = await live(victim!);
  assert.equal(fresh.welcome.user, victim);
});
