import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Liveness } from "../../router/liveness.ts";

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(10);
}

test("a gateway that refuses connections is down until it accepts again", async () => {
  const srv = createServer((s) => s.destroy());
  await new Promise<void>((done) => srv.listen(0, "127.0.0.1", done));
  const port = (srv.address() as { port: number }).port;
  const url = `ws://127.0.0.1:${port}/v1/ws`;
  const live = new Liveness(500);
  live.probe([url]);
  await sleep(100);
  assert.equal(live.isDown(url), false);
  await new Promise<void>((done) => srv.close(() => done()));
  live.probe([url]);
  await until(() => live.isDown(url));
  assert.equal(live.isDown(url), true, "refused: down");
  const again = createServer((s) => s.destroy());
  await new Promise<void>((done) => again.listen(port, "127.0.0.1", done));
  live.probe([url]);
  await until(() => !live.isDown(url));
  assert.equal(live.isDown(url), false, "accepting again: up");
  live.retain([]);
  again.close();
});

test("unparsable URLs and unknown hosts change nothing", async () => {
  const live = new Liveness(200);
  live.probe(["not a url", "ws://no-such-host.invalid:1/v1/ws"]);
  await sleep(300);
  assert.equal(live.isDown("not a url"), false);
  assert.equal(live.isDown("ws://no-such-host.invalid:1/v1/ws"), false);
});
