/**
 * The demo page end to end in a real browser: `npm start` (scripts/start.ts) as a child process
 * on a real Kafka with free ports, Debian's chromium driven by playwright-core. Two browser
 * contexts sign in as two users held by different gateways and chat; one of them joins a room;
 * the cluster panel's Kill button SIGKILLs the second user's gateway while the first keeps
 * writing; the second resumes on the survivor and shows every message once, in order; Start
 * brings the gateway back and the conversation goes on. Bad input shows on the page. Screenshots
 * go to test-artifacts/browser/.
 *
 * Chromium: `/usr/bin/chromium` (apt-get install chromium), or RT_CHROMIUM_PATH.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium, type Browser, type Page } from "playwright-core";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";
import { partitionForKey } from "../../schemas/partition.ts";
import { testKafka, type TestKafka } from "../helpers/kafka.ts";
import { runTs, type Proc } from "../helpers/proc.ts";
import { TEST_SECRET } from "../helpers/ws-client.ts";

const CHROMIUM = process.env["RT_CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const ARTIFACTS = join(REPO_ROOT, "test-artifacts", "browser");
const PARTITIONS = 4;

let t: TestKafka;
let start: Proc;
let browser: Browser;
let demoDir: string;
let routerUrl: string;
let devUrl: string;

/** A free port whose successor is free too (npm start puts gateway 2 on gateway 1's port + 1). */
async function freePort(pairWithNext = false): Promise<number> {
  const listenOn = (port: number) =>
    new Promise<number | null>((done) => {
      const s = createServer();
      s.once("error", () => done(null));
      s.listen(port, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => done(p));
      });
    });
  for (;;) {
    const port = await listenOn(0);
    if (port === null || port >= 65535) continue;
    if (!pairWithNext || (await listenOn(port + 1)) !== null) return port;
  }
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  t = await testKafka();
  demoDir = mkdtempSync(join(tmpdir(), "rt-demo-"));
  const routerPort = await freePort();
  const gatewayPort = await freePort(true);
  const devPort = await freePort();
  routerUrl = `http://127.0.0.1:${routerPort}`;
  devUrl = `http://127.0.0.1:${devPort}`;
  start = runTs("scripts/start.ts", [], {
    RT_KAFKA_BROKERS: t.brokers.join(","),
    RT_TOPIC_PREFIX: t.prefix,
    RT_DELIVERIES_PARTITIONS: String(PARTITIONS),
    RT_ROOM_PARTITIONS: String(PARTITIONS),
    RT_ROUTER_PORT: String(routerPort),
    RT_GATEWAY_PORT: String(gatewayPort),
    RT_DEV_CONTROL_PORT: String(devPort),
    RT_DEMO_BUILD_DIR: demoDir,
    RT_JWT_SECRET: TEST_SECRET,
    RT_GATEWAY_SESSION_TIMEOUT_MS: "3000",
    RT_RECONNECT_HINT_MAX_MS: "500",
    RT_LOG_LEVEL: process.env["RT_TEST_LOG_LEVEL"] ?? "warn",
  });
  await start.waitFor(/The backbone is up/, 120_000);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  const code = await start?.stop("SIGTERM", 30_000);
  if (code !== 0) console.log(start?.output().slice(-4000));
  if (demoDir !== undefined) rmSync(demoDir, { recursive: true, force: true });
  await t?.cleanup();
});

async function until(what: string, pred: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

interface ClusterGateway {
  name: string;
  state: string;
  owned: number[] | null;
}

async function cluster(): Promise<ClusterGateway[]> {
  const res = await fetch(`${devUrl}/dev/cluster`);
  return ((await res.json()) as { gateways: ClusterGateway[] }).gateways;
}

/** Texts of the direct or room messages a page received, in the order shown. */
async function received(page: Page): Promise<string[]> {
  const items = page.locator('[data-testid=messages] li[data-kind="in"]');
  const texts: string[] = [];
  for (let i = 0; i < (await items.count()); i++)
    texts.push((await items.nth(i).getAttribute("data-text")) ?? "");
  return texts;
}

async function state(page: Page): Promise<string> {
  return (await page.getByTestId("state").getAttribute("data-state")) ?? "";
}

async function signIn(page: Page, user: string): Promise<void> {
  await page.goto(`${routerUrl}/demo/`);
  await page.locator("body[data-ready=true]").waitFor();
  await page.locator("#user").fill(user);
  await page.locator("#signin button[type=submit]").click();
  await until(`${user} open`, async () => (await state(page)) === "open");
}

async function sendDm(page: Page, to: string, text: string): Promise<void> {
  await page.locator("#dm-to").fill(to);
  await page.locator("#dm-text").fill(text);
  await page.locator("#dm button[type=submit]").click();
}

async function acked(page: Page): Promise<number> {
  return page.locator('[data-testid=messages] li[data-kind="mine"][data-status="acked"]').count();
}

test("two browsers chat through two gateways; a gateway is killed and nothing is missed", async () => {
  // Two users whose partitions different gateways own.
  const gateways = await cluster();
  assert.equal(gateways.length, 2);
  const ownerOf = (user: string) =>
    gateways.find((g) => g.owned?.includes(partitionForKey(user, PARTITIONS)))?.name;
  const alice = `alice-${t.prefix}`;
  let bob = "";
  for (let i = 0; bob === ""; i++) {
    const candidate = `bob${i}-${t.prefix}`;
    if (ownerOf(candidate) !== undefined && ownerOf(candidate) !== ownerOf(alice)) bob = candidate;
  }
  const bobsGateway = ownerOf(bob)!;
  const alicesGateway = ownerOf(alice)!;

  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  await signIn(a, alice);
  await signIn(b, bob);
  assert.match((await a.getByTestId("node").textContent()) ?? "", new RegExp(alicesGateway));
  assert.match((await b.getByTestId("node").textContent()) ?? "", new RegExp(bobsGateway));
  await until("the stats panel", async () =>
    /2 gateway\(s\) owning 4 of 4 partitions/.test(
      (await a.getByTestId("cluster-summary").textContent()) ?? "",
    ),
  );

  const expected: string[] = [];
  for (let i = 0; i < 3; i++) {
    expected.push(`hello ${i}`);
    await sendDm(a, bob, `hello ${i}`);
  }
  await until("bob has 3 messages", async () => (await received(b)).length >= 3);
  await sendDm(b, alice, "hi alice");
  await until("alice has the reply", async () => (await received(a)).includes("hi alice"));
  await a.screenshot({ path: join(ARTIFACTS, "1-alice-chatting.png"), fullPage: true });
  await b.screenshot({ path: join(ARTIFACTS, "1-bob-chatting.png"), fullPage: true });

  // Crash bob's gateway from the cluster panel, and keep writing to bob meanwhile.
  await a.locator(`tr[data-gateway="${bobsGateway}"] button[data-action=kill]`).click();
  await until("bob notices", async () => (await state(b)) !== "open");
  for (let i = 3; i < 8; i++) {
    expected.push(`hello ${i}`);
    await sendDm(a, bob, `hello ${i}`);
  }
  await until("alice's sends acked", async () => (await acked(a)) === 8);
  await until("bob resumed on the survivor", async () => {
    return (
      (await state(b)) === "open" &&
      ((await b.getByTestId("node").textContent()) ?? "").includes(alicesGateway)
    );
  });
  await until("bob has all 8", async () => (await received(b)).length >= 8);
  assert.deepEqual(await received(b), expected, "every message once, in order");
  assert.equal(await b.getByTestId("recovered").textContent(), "recovered: true");
  await a.screenshot({ path: join(ARTIFACTS, "2-alice-after-kill.png"), fullPage: true });
  await b.screenshot({ path: join(ARTIFACTS, "2-bob-resumed.png"), fullPage: true });

  // Start the gateway again: partitions may move back (bob then resumes again); nothing is lost.
  await a.locator(`tr[data-gateway="${bobsGateway}"] button[data-action=start]`).click();
  await until("the gateway runs again", async () =>
    (await cluster()).every((g) => g.state === "running" && (g.owned?.length ?? 0) > 0),
  );
  for (let i = 8; i < 10; i++) {
    expected.push(`hello ${i}`);
    await sendDm(a, bob, `hello ${i}`);
  }
  await sendDm(b, alice, "still here");
  await until("bob has all 10", async () => (await received(b)).length >= 10);
  await until("alice has both replies", async () => (await received(a)).length >= 2);
  await sleep(500);
  assert.deepEqual(await received(b), expected, "every message once, in order, after the restart");
  assert.deepEqual(await received(a), ["hi alice", "still here"]);

  await b.screenshot({ path: join(ARTIFACTS, "3-bob-after-restart.png"), fullPage: true });

  // Drain (SIGTERM, a deploy) the gateway bob is on now: he is told to come back, and resumes.
  const bobsNode = (await b.getByTestId("node").textContent()) ?? "";
  const drained = gateways.map((g) => g.name).find((name) => bobsNode.startsWith(`${name} `))!;
  await a.locator(`tr[data-gateway="${drained}"] button[data-action=drain]`).click();
  for (let i = 10; i < 12; i++) {
    expected.push(`hello ${i}`);
    await sendDm(a, bob, `hello ${i}`);
  }
  await until("bob has all 12", async () => (await received(b)).length >= 12);
  await until("the drained gateway stopped", async () =>
    (await cluster()).some((g) => g.name === drained && g.state === "stopped"),
  );
  assert.equal(await state(b), "open");
  assert.ok(!((await b.getByTestId("node").textContent()) ?? "").startsWith(`${drained} `), "bob moved");
  assert.deepEqual(await received(b), expected, "every message once, in order, after the drain");
  await until("alice's sends acked", async () => (await acked(a)) === 12);
  await a.locator(`tr[data-gateway="${drained}"] button[data-action=start]`).click();
  await until("both gateways run again", async () =>
    (await cluster()).every((g) => g.state === "running" && (g.owned?.length ?? 0) > 0),
  );
  assert.equal(await a.getByTestId("errors").textContent(), "", "alice saw no error");
  await ctxA.close();
  await ctxB.close();
});

test("a room, and bad input shown to the person using the page", async () => {
  const ctx = await browser.newContext();
  const a = await ctx.newPage();
  const b = await (await browser.newContext()).newPage();
  const carol = `carol-${t.prefix}`;
  const dave = `dave-${t.prefix}`;
  const room = `room-${t.prefix.replace(/\.$/, "")}`;
  await signIn(a, carol);
  await signIn(b, dave);
  for (const page of [a, b]) {
    await page.locator("#room").fill(room);
    await page.locator("#room-join button[type=submit]").click();
  }
  // Each member sees its own rt.joined once the router applied the join.
  for (const page of [a, b]) {
    await until("joined", async () =>
      (await page.locator('[data-testid=messages] li[data-kind="system"]').allTextContents()).some((s) =>
        s.startsWith("rt.joined"),
      ),
    );
  }
  await a.locator("#room-to").fill(room);
  await a.locator("#room-text").fill("hello room");
  await a.locator("#room-send button[type=submit]").click();
  await until("dave got the room message", async () => (await received(b)).includes("hello room"));
  await until("carol got it too", async () => (await received(a)).includes("hello room"));

  await sendDm(a, "has a space", "x");
  await until("the error is shown", async () =>
    /bad_target/.test((await a.getByTestId("errors").textContent()) ?? ""),
  );
  await a.locator("#room").fill("bad room!");
  await a.locator("#room-join button[type=submit]").click();
  await until("the room error is shown", async () =>
    /room must be/.test((await a.getByTestId("errors").textContent()) ?? ""),
  );
  await a.screenshot({ path: join(ARTIFACTS, "4-room-and-errors.png"), fullPage: true });

  // The dev control answers only the demo page's origin, and checks what it is asked.
  const foreign = await fetch(`${devUrl}/dev/gateways/gateway-1/kill`, {
    method: "POST",
    headers: { origin: "http://evil.example" },
  });
  assert.equal(foreign.status, 403);
  assert.equal(((await foreign.json()) as { error: string }).error, "forbidden_origin");
  const badUser = await fetch(`${devUrl}/dev/token?user=${encodeURIComponent("two words")}`);
  assert.equal(badUser.status, 400);
  assert.ok(
    (await cluster()).every((g) => g.state === "running"),
    "nothing was killed",
  );
  await ctx.close();
  await b.context().close();
});
