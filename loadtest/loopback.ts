/**
 * Where the load generator may point, and which source address each connection binds.
 *
 * On our shared machines the generator may only load loopback: a mistyped host must not turn it
 * into a flood against someone else's service. `--allow-remote` lifts this for a real cluster.
 * Binding source addresses across 127.0.0.0/8 (all of it is loopback on Linux) gives every
 * address its own ephemeral port range, so tens of thousands of connections do not run out of
 * ports on one address.
 */
import { isIP } from "node:net";

/** True for localhost, any 127.0.0.0/8 address, and ::1 (with or without brackets). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || h === "::ffff:127.0.0.1";
  return false;
}

export type UrlCheck = { ok: true; url: URL } | { ok: false; message: string };

/** A WebSocket URL the generator may connect to: ws: or wss:, and loopback unless `allowRemote`. */
export function checkTargetUrl(text: string, allowRemote: boolean): UrlCheck {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, message: `${JSON.stringify(text)} is not a URL (expected ws://host:port/v1/ws)` };
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return { ok: false, message: `${JSON.stringify(text)} must be a ws:// or wss:// URL` };
  }
  if (!allowRemote && !isLoopbackHost(url.hostname)) {
    return {
      ok: false,
      message:
        `host ${url.hostname} is not loopback (127.0.0.0/8, localhost, [::1]); this tool only loads ` +
        `loopback here, pass --allow-remote to load a real cluster`,
    };
  }
  return { ok: true, url };
}

/**
 * The source address of connection `index` when `count` loopback addresses are in rotation:
 * 127.0.0.1, 127.0.0.2, ... Undefined when rotation is off (count 0) or the target is not an
 * IPv4 loopback address (binding 127.x cannot reach ::1 or a remote host, and `localhost` may
 * resolve to ::1).
 */
export function localAddressFor(index: number, count: number, targetHost: string): string | undefined {
  if (count <= 0) return undefined;
  if (!(isIP(targetHost) === 4 && targetHost.startsWith("127."))) return undefined;
  return `127.0.0.${1 + (index % count)}`;
}
