/**
 * Placement: `GET <router>/v1/connect` with the token, answering which gateway holds the user.
 * One request, its outcome as a value: the client's loop decides what to do with it.
 */

/** The part of `fetch` this client uses; `globalThis.fetch` in browsers and Node 20 fits. */
export type FetchLike = (
  url: string,
  init: { method: "GET"; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<{
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export type ConnectAnswer =
  | { readonly kind: "ok"; readonly url: string; readonly user: string; readonly partition: number }
  /** 503: nobody owns the user's partition right now (a rebalance); retry after the hint. */
  | { readonly kind: "retry"; readonly retryAfterMs: number | undefined }
  /** 401: `token_expired` (refresh and retry) or `unauthorized` (stop). */
  | { readonly kind: "unauthorized"; readonly expired: boolean; readonly message: string }
  /** Anything else: network failure, timeout, 5xx, a body this client cannot read. Back off. */
  | { readonly kind: "failed"; readonly message: string };

/** `Retry-After` is in seconds; an HTTP date is not worth parsing here. */
function retryAfterHeaderMs(value: string | null): number | undefined {
  if (value === null || !/^\d{1,6}$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function isWebSocketUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === "ws:" || u.protocol === "wss:";
  } catch {
    return false;
  }
}

export function connectEndpoint(routerUrl: string): string {
  return `${routerUrl.replace(/\/+$/, "")}/v1/connect`;
}

/** Asks the router once. Never throws; aborting `signal` (timeout, close()) gives "failed". */
export async function askRouter(
  fetchFn: FetchLike,
  routerUrl: string,
  token: string,
  signal: AbortSignal,
): Promise<ConnectAnswer> {
  let status: number;
  let body: Record<string, unknown> | undefined;
  let retryAfterHeader: string | null;
  try {
    const res = await fetchFn(connectEndpoint(routerUrl), {
      method: "GET",
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
      signal,
    });
    status = res.status;
    retryAfterHeader = res.headers.get("retry-after");
    body = parseJson(await res.text());
  } catch (e) {
    return {
      kind: "failed",
      message: `router request failed: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
  if (status === 200) {
    const url = body?.["url"];
    const user = body?.["user"];
    const partition = body?.["partition"];
    if (typeof url !== "string" || !isWebSocketUrl(url)) {
      return { kind: "failed", message: "router answered 200 without a ws:// or wss:// url" };
    }
    return {
      kind: "ok",
      url,
      user: typeof user === "string" ? user : "",
      partition: typeof partition === "number" ? partition : -1,
    };
  }
  if (status === 401) {
    const error = body?.["error"];
    const message = body?.["message"];
    return {
      kind: "unauthorized",
      expired: error === "token_expired",
      message: typeof message === "string" ? message : `router refused the token (${String(error)})`,
    };
  }
  if (status === 503) {
    const hint = body?.["retry_after_ms"];
    const retryAfterMs =
      typeof hint === "number" && Number.isSafeInteger(hint) && hint >= 0
        ? hint
        : retryAfterHeaderMs(retryAfterHeader);
    return { kind: "retry", retryAfterMs };
  }
  return { kind: "failed", message: `router answered HTTP ${status}` };
}

export function isHttpUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
