/**
 * A gateway joins a running pair: the sticky assignment moves only the partitions the new
 * member needs, the old owners close exactly the sessions of those partitions with "moved"
 * (4004), and every other session stays open and keeps working.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { partitionForKey } from "../../schemas/partition.ts";
import { gatewayEnv, startGatewayProc, waitAllReady, type GatewayProc } from "../helpers/gateway-proc.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { connectUser, token, type TestClient } from "../helpers/ws-client.ts";

const PARTITIONS = 12;
let t: TestKafka;
const gateways: GatewayProc[] = [];
const open: TestClient[] = [];

const env = () => gatewayEnv(t.brokers, t.prefix, { RT_DELIVERIES_PARTITIONS: String(PARTITIONS) });

before(async () => {
  t = await testKafka();
  gateways.push(await startGatewayProc({ ...env(), RT_GATEWAY_NODE_ID: "move-a" }));
  gateways.push(await startGatewayProc({ ...env(), RT_GATEWAY_NODE_ID: "move-b" }));
  await waitAllReady(gateways);
});

after(async () => {
  for (const c of open) c.close();
  await Promise.all(gateways.map((g) => g.proc.stop("SIGTERM", 20_000)));
  await t.cleanup();
});

async function owned(g: GatewayProc): Promise<number[]> {
  const stats = (await (await fetch(`${g.http}/v1/stats`)).json()) as { owned: number[] };
  return stats.owned;
}

/** Partition -> gateway index, once every partition has exactly one owner. */
async function ownersSettled(expectMembers: number): Promise<Map<number, number>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const sets = await Promise.all(gateways.map(owned));
    const map = new Map<number, number>();
    let dup = false;
    sets.forEach((ps, i) => ps.forEach((p) => (map.has(p) ? (dup = true) : map.set(p, i))));
    const busy = sets.filter((s) => s.length > 0).length;
    if (!dup && map.size === PARTITIONS && busy === expectMembers) return map;
    if (Date.now() > deadline) throw new Error(`ownership did not settle: ${JSON.stringify(sets)}`);
    await sleep(100);
  }
}

test("a joining gateway takes only the partitions it needs; only their sessions are closed with 4004", async () => {
  const before = await ownersSettled(2);
  const users = Array.from({ length: 60 }, (_, i) => `move-${t.prefix}${i}`);
  const sessions = await Promise.all(
    users.map(async (u) => {
      const r = await connectUser(gateways[0]!.url, await token(u));
      open.push(r.client);
      return { user: u, partition: partitionForKey(u, PARTITIONS), client: r.client };
    }),
  );

  gateways.push(await startGatewayProc({ ...env(), RT_GATEWAY_NODE_ID: "move-c" }));
  await waitAllReady(gateways);
  const afterMove = await ownersSettled(3);
  const moved = new Set([...afterMove].filter(([p, g]) => before.get(p) !== g).map(([p]) => p));
  // 12 partitions over 2 -> 3 members: each old member hands over 2, nothing else moves.
  assert.equal(moved.size, 4, `moved ${[...moved]}`);
  assert.ok(
    [...moved].every((p) => afterMove.get(p) === 2),
    "only the newcomer gains",
  );

  for (const s of sessions.filter((x) => moved.has(x.partition))) {
    const closed = await Promise.race([s.client.closed, sleep(20_000).then(() => null)]);
    assert.equal(closed?.code, 4004, `${s.user} on moved partition ${s.partition}`);
  }
  const stayed = sessions.filter((x) => !moved.has(x.partition));
  assert.ok(stayed.length > 0);
  for (const s of stayed) {
    assert.equal(s.client.isClosed, null, `${s.user} on kept partition ${s.partition} stays open`);
    s.client.send({ op: "ping", id: "still-here" });
    await s.client.waitFor((f) => f.op === "pong" && f.id === "still-here");
  }
});
