/**
 * Two real gateway processes on one real Kafka: users land wherever their partition is
 * owned (following redirects), messages from A to B arrive exactly once and in order with
 * acks, every device of a user gets every message, and SIGTERM drains with "restart".
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { partitionForKey } from "../../schemas/partition.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type Frame, type TestClient } from "../helpers/ws-client.ts";

let t: TestKafka;
let gw: GatewayProc[] = [];
const clients: TestClient[] = [];

before(async () => {
  t = await testKafka();
  const env = gatewayEnv(t.brokers, t.prefix);
  gw = [await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-a" })];
  gw.push(await startGatewayProc({ ...env, RT_GATEWAY_NODE_ID: "gw-b" }));
  await waitAllReady(gw);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(gw.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

async function connect(
  user: string,
  via: string,
): Promise<{ client: TestClient; welcome: Frame; hops: string[] }> {
  const r = await connectUser(via, await token(user));
  clients.push(r.client);
  return r;
}

/** Two users whose partitions are owned by different gateways. */
async function usersOnDifferentGateways(): Promise<[string, string, string, string]> {
  const seen = new Map<string, string>();
  for (let i = 0; i < 40; i++) {
    const user = `user-${t.prefix}${i}`;
    const { client, hops } = await connect(user, gw[0]!.url);
    const landed = hops[hops.length - 1]!;
    client.close();
    for (const [other, url] of seen) if (url !== landed) return [other, url, user, landed];
    seen.set(user, landed);
  }
  throw new Error("all users landed on one gateway");
}

test("a user on gateway A reaches a user on gateway B exactly once, in order, with acks", async () => {
  const [alice, aliceUrl, bob, bobUrl] = await usersOnDifferentGateways();
  assert.notEqual(aliceUrl, bobUrl);
  const a = await connect(alice, gw[1]!.url);
  const b = await connect(bob, gw[0]!.url);
  assert.equal(a.hops[a.hops.length - 1], aliceUrl);
  assert.equal(b.welcome.user, bob);
  assert.equal(b.welcome.recovered, false, "a hello without cursor starts at the live edge");
  assert.equal(b.welcome.reason, "no_cursor");

  const n = 60;
  for (let i = 0; i < n; i++) {
    a.client.send({
      op: "send",
      id: `m${i}`,
      to: `user:${bob}`,
      type: "chat.message",
      data: { i, text: `hi ${i}` },
    });
  }
  const acks = await a.client.waitForCount((f) => f.op === "ack", n);
  assert.ok(
    acks.every((f) => f.ok === true),
    JSON.stringify(acks.find((f) => f.ok !== true)),
  );
  const partition = partitionForKey(bob, 4);
  for (const ack of acks) assert.match(ack.cursor, new RegExp(`^4t[0-9a-z]{1,11}:${partition}:\\d+$`));

  const events = await b.client.waitForCount((f) => f.op === "event", n);
  await new Promise((r) => setTimeout(r, 300));
  const all = b.client.frames.filter((f) => f.op === "event");
  assert.equal(all.length, n, "exactly once");
  assert.deepEqual(
    events.map((e) => e.id),
    Array.from({ length: n }, (_, i) => `m${i}`),
    "in order",
  );
  assert.deepEqual(events[7]?.data, { i: 7, text: "hi 7" });
  assert.equal(events[0]?.from, alice);
  assert.equal(events[0]?.to, `user:${bob}`);
  assert.equal(events[0]?.type, "chat.message");
  const offsets = events.map((e) => BigInt((e.cursor as string).split(":")[2]!));
  for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]! > offsets[i - 1]!, "cursors grow");
  // The ack's cursor names the record the recipient got.
  assert.equal(acks.find((x) => x.id === "m5")?.cursor, events[5]?.cursor);
});

test("every device of a user gets every message", async () => {
  const [alice, , bob] = await usersOnDifferentGateways();
  const a = await connect(alice, gw[0]!.url);
  const phone = await connect(bob, gw[0]!.url);
  const laptop = await connect(bob, gw[1]!.url);
  for (let i = 0; i < 10; i++)
    a.client.send({ op: "send", id: `d${i}`, to: `user:${bob}`, type: "t", data: i });
  await a.client.waitForCount((f) => f.op === "ack" && f.ok === true, 10);
  for (const device of [phone, laptop]) {
    const got = await device.client.waitForCount((f) => f.op === "event", 10);
    assert.deepEqual(
      got.map((e) => e.data),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  }
});

test("a send to yourself works and app-level ping gets pong", async () => {
  const me = `self-${t.prefix}`;
  const { client } = await connect(me, gw[0]!.url);
  client.send({ op: "ping", id: "p1" });
  assert.deepEqual(await client.waitFor((f) => f.op === "pong"), { op: "pong", id: "p1" });
  client.send({ op: "send", id: "s1", to: `user:${me}`, type: "note", data: { x: 1 } });
  const ev = await client.waitFor((f) => f.op === "event");
  assert.equal(ev.id, "s1");
  assert.equal(ev.from, me);
});

test("SIGTERM drains: sockets close with restart and a reconnect hint, the other gateway takes over", async () => {
  const users = Array.from({ length: 8 }, (_, i) => `drain-${t.prefix}${i}`);
  const conns = await Promise.all(users.map((u) => connect(u, gw[0]!.url)));
  const onB = conns.filter((c) => c.hops[c.hops.length - 1] === gw[1]!.url);
  assert.ok(onB.length > 0, "some users live on the gateway being stopped");
  const code = await gw[1]!.proc.stop("SIGTERM", 20_000);
  assert.equal(code, 0, gw[1]!.proc.output());
  for (const c of onB) {
    const closed = await c.client.closed;
    assert.equal(closed.code, 4005);
    assert.match(closed.reason, /^restart retry_after_ms=\d+$/);
  }
  gw.pop();
  // The survivor takes every partition over and accepts the moved users (clients retry
  // with backoff while the group rebalances, as the close code tells them to).
  await waitAllReady(gw);
  for (const c of onB) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const again = await connectUser(gw[0]!.url, await token(c.welcome.user as string));
        clients.push(again.client);
        assert.equal(again.hops[again.hops.length - 1], gw[0]!.url);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
});
