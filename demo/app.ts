/**
 * The demo page: sign in as any user (a development token from the dev control of `npm start`),
 * send direct and room messages through the client SDK, watch the connection state and the
 * cursor, and crash, drain or start gateways from the cluster panel to see the client resume
 * without losing a message. Plain DOM, no framework; bundled by scripts/demo-build.ts.
 */
import { RealtimeClient, RealtimeError, type RealtimeEvent } from "../client/index.ts";

interface DemoConfig {
  readonly devControlUrl?: string;
}

interface GatewayRow {
  readonly name: string;
  readonly url: string;
  readonly state: string;
  readonly connections: number | null;
  readonly owned: number[] | null;
}

interface Cluster {
  readonly router: {
    placement?: { members?: number; ownedPartitions?: number; partitionCount?: number };
  } | null;
  readonly gateways: GatewayRow[];
}

const CLUSTER_POLL_MS = 1000;
const MAX_ERRORS_SHOWN = 6;
const MAX_MESSAGES_SHOWN = 500;
/** Long enough to ride out a gateway crash (Kafka's session timeout, then a resume). */
const SEND_TIMEOUT_MS = 60_000;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};
const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);

let config: DemoConfig = {};
let client: RealtimeClient | null = null;
let me = "";

function showError(text: string): void {
  const box = $("errors");
  const p = document.createElement("p");
  p.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  box.append(p);
  while (box.childElementCount > MAX_ERRORS_SHOWN) box.firstElementChild?.remove();
}

function describe(e: unknown): string {
  if (e instanceof RealtimeError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

function addMessage(
  kind: "in" | "mine" | "system",
  text: string,
  meta: string,
  attrs: Record<string, string> = {},
) {
  const li = document.createElement("li");
  li.className = kind;
  li.dataset["kind"] = kind;
  for (const [k, v] of Object.entries(attrs)) li.dataset[k] = v;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  const m = document.createElement("div");
  m.className = "meta";
  m.textContent = meta;
  li.append(body, m);
  const list = $("messages");
  list.append(li);
  while (list.childElementCount > MAX_MESSAGES_SHOWN) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
  return { li, meta: m };
}

function textOf(data: unknown): string {
  if (typeof data === "object" && data !== null && typeof (data as { text?: unknown }).text === "string") {
    return (data as { text: string }).text;
  }
  return JSON.stringify(data);
}

function onEvent(e: RealtimeEvent): void {
  if (e.type.startsWith("rt.")) {
    addMessage("system", `${e.type} ${JSON.stringify(e.data)}`, `${e.from} · ${e.cursor ?? "live"}`, {
      id: e.id,
    });
  } else {
    const where = e.to.startsWith("room:") ? ` in ${e.to.slice(5)}` : "";
    addMessage("in", `${e.from}${where}: ${textOf(e.data)}`, `${e.id} · ${e.cursor ?? "live"}`, {
      id: e.id,
      from: e.from,
      to: e.to,
      text: textOf(e.data),
    });
  }
  if (e.cursor !== undefined) localStorage.setItem(cursorKey(me), e.cursor);
  renderSession();
}

function cursorKey(user: string): string {
  return `rt.demo.cursor.${user}`;
}

function renderSession(): void {
  const c = client;
  const state = c?.state ?? "signed out";
  const badge = $("state");
  badge.textContent = state;
  badge.className = `state ${state}`;
  badge.dataset["state"] = state;
  $("me").textContent = me;
  $("node").textContent = c?.welcome === undefined ? "" : `${c.welcome.node} (${c.welcome.url})`;
  $("where").textContent = c?.welcome === undefined ? "" : `on ${c.welcome.node}`;
  $("cursor").textContent = c?.cursor ?? "";
  const w = c?.welcome;
  $("recovered").textContent =
    w === undefined ? "" : w.recovered ? "recovered: true" : `recovered: false (${w.reason ?? "?"})`;
  $("pending").textContent = String(c?.pendingSends ?? 0);
  $("signin-panel").classList.toggle("hidden", c !== null);
  $("session-panel").classList.toggle("hidden", c === null);
}

async function devToken(user: string): Promise<string> {
  if (config.devControlUrl === undefined) {
    throw new Error("no dev control (this page was not started by `npm start`): sign in with a token");
  }
  const res = await fetch(`${config.devControlUrl}/dev/token?user=${encodeURIComponent(user)}`);
  const body = (await res.json()) as { token?: string; message?: string };
  if (!res.ok || typeof body.token !== "string") throw new Error(body.message ?? `HTTP ${res.status}`);
  return body.token;
}

function signIn(user: string, token: string | (() => Promise<string>)): void {
  let c: RealtimeClient;
  try {
    c = new RealtimeClient({
      routerUrl: location.origin,
      token,
      cursor: localStorage.getItem(cursorKey(user)) ?? undefined,
      ackTimeoutMs: SEND_TIMEOUT_MS,
      backoff: { baseMs: 250, capMs: 5000 },
    });
  } catch (e) {
    showError(`cannot start the client: ${describe(e)}`);
    return;
  }
  client = c;
  me = user;
  c.on("state", renderSession);
  c.on("event", onEvent);
  c.on("welcome", (w) => {
    if (w.user !== me) me = w.user;
    addMessage(
      "system",
      `welcome on ${w.node}: ${w.recovered ? "resumed, nothing missed" : `fresh start (${w.reason ?? "?"})`}`,
      w.serverCursor,
    );
    if (w.cursor !== undefined) localStorage.setItem(cursorKey(me), w.cursor);
    renderSession();
  });
  c.on("resync", (r) => {
    if (r.detail !== "no_cursor") showError(`resync needed (${r.reason}${r.detail ? `: ${r.detail}` : ""})`);
  });
  c.on("error", (e) => showError(describe(e)));
  c.on("closed", (info) => {
    if (info.reason !== "client_closed")
      showError(`stopped: ${info.reason}${info.error ? ` (${info.error.message})` : ""}`);
    renderSession();
  });
  renderSession();
  c.connect().catch(() => {
    // Reported by the closed event.
  });
}

function send(to: string, text: string): void {
  const c = client;
  if (c === null) return;
  let pending: Promise<{ id: string; cursor: string | undefined }>;
  try {
    pending = c.send(to, "chat.message", { text });
  } catch (e) {
    showError(describe(e));
    return;
  }
  const { li, meta } = addMessage("mine", `me → ${to}: ${text}`, "sending…", { to, text, status: "pending" });
  renderSession();
  pending.then(
    (r) => {
      meta.textContent =
        r.cursor === undefined ? `${r.id} · acked` : `${r.id} · acked at ${r.cursor} (their log)`;
      li.dataset["status"] = "acked";
      li.dataset["id"] = r.id;
      renderSession();
    },
    (e: unknown) => {
      meta.textContent = `failed: ${describe(e)}`;
      li.classList.add("failed");
      li.dataset["status"] = "failed";
      showError(`send to ${to} failed: ${describe(e)}`);
      renderSession();
    },
  );
}

function roomOp(op: "join" | "leave", room: string): void {
  const c = client;
  if (c === null) return;
  try {
    c[op](room).then(
      () => addMessage("system", `${op} ${room}: acked`, ""),
      (e: unknown) => showError(`${op} ${room} failed: ${describe(e)}`),
    );
  } catch (e) {
    showError(describe(e));
  }
}

async function pollCluster(): Promise<void> {
  try {
    const cluster = await loadCluster();
    renderCluster(cluster);
  } catch (e) {
    $("cluster-summary").textContent = `cluster stats unavailable: ${describe(e)}`;
  } finally {
    setTimeout(() => void pollCluster(), CLUSTER_POLL_MS);
  }
}

async function loadCluster(): Promise<Cluster> {
  if (config.devControlUrl !== undefined) {
    const res = await fetch(`${config.devControlUrl}/dev/cluster`);
    if (!res.ok) throw new Error(`dev control: HTTP ${res.status}`);
    return (await res.json()) as Cluster;
  }
  const res = await fetch("/v1/stats");
  if (!res.ok) throw new Error(`router: HTTP ${res.status}`);
  return { router: (await res.json()) as Cluster["router"], gateways: [] };
}

function renderCluster(cluster: Cluster): void {
  const p = cluster.router?.placement;
  $("cluster-summary").textContent =
    p === undefined
      ? "router: no answer"
      : `router sees ${p.members ?? 0} gateway(s) owning ${p.ownedPartitions ?? 0} of ${p.partitionCount ?? "?"} partitions`;
  const body = $("gateways");
  body.replaceChildren(
    ...cluster.gateways.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset["gateway"] = g.name;
      tr.dataset["state"] = g.state;
      const cell = (text: string) => {
        const td = document.createElement("td");
        td.textContent = text;
        return td;
      };
      const actions = document.createElement("td");
      actions.className = "actions";
      for (const [action, label, enabled] of [
        ["kill", "Kill", g.state === "running" || g.state === "starting"],
        ["drain", "Drain", g.state === "running"],
        ["start", "Start", g.state === "stopped"],
      ] as const) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "small";
        b.textContent = label;
        b.disabled = !enabled;
        b.dataset["action"] = action;
        b.addEventListener("click", () => void gatewayAction(g.name, action));
        actions.append(b);
      }
      tr.append(
        cell(g.name),
        cell(g.state),
        cell(g.owned === null ? "–" : `${g.owned.length} [${g.owned.join(",")}]`),
        cell(g.connections === null ? "–" : String(g.connections)),
        actions,
      );
      return tr;
    }),
  );
}

async function gatewayAction(name: string, action: string): Promise<void> {
  try {
    const res = await fetch(`${config.devControlUrl}/dev/gateways/${name}/${action}`, { method: "POST" });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { message?: string };
      throw new Error(body.message ?? `HTTP ${res.status}`);
    }
    renderCluster(await loadCluster());
  } catch (e) {
    showError(`${action} ${name} failed: ${describe(e)}`);
  }
}

function wire(): void {
  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const user = input("user").value.trim();
    void devToken(user).then(
      (token) => {
        // Later tokens (refresh before expiry, after token_expired) come from the dev control too.
        let first: string | null = token;
        signIn(user, async () => {
          const t = first ?? (await devToken(user));
          first = null;
          return t;
        });
      },
      (e: unknown) => showError(`sign-in failed: ${describe(e)}`),
    );
  });
  $("signin-token").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = input("token").value.trim();
    signIn("", token);
  });
  $("signout").addEventListener("click", () => {
    client?.close();
    client = null;
    me = "";
    renderSession();
  });
  $("dm").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send(`user:${input("dm-to").value.trim()}`, input("dm-text").value);
    input("dm-text").value = "";
  });
  $("room-join").addEventListener("submit", (ev) => {
    ev.preventDefault();
    roomOp("join", input("room").value.trim());
  });
  $("room-leave").addEventListener("click", () => roomOp("leave", input("room").value.trim()));
  $("room-send").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send(`room:${input("room-to").value.trim()}`, input("room-text").value);
    input("room-text").value = "";
  });
}

async function main(): Promise<void> {
  wire();
  renderSession();
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    if (res.ok) config = (await res.json()) as DemoConfig;
  } catch {
    // No config: no dev control; sign in with a token.
  }
  document.body.dataset["ready"] = "true";
  void pollCluster();
}

void main();
