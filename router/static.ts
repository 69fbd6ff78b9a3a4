/**
 * A small static site served by the router under one path prefix: the demo page that
 * `npm start` builds (RT_ROUTER_DEMO_DIR). Files are read once at start into memory (the demo
 * is a few files of some tens of KB), so a request never touches the disk and cannot name a
 * file outside the folder: only names found at start exist.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";

export interface StaticFile {
  readonly contentType: string;
  readonly body: Buffer;
}

export interface StaticSite {
  /** The URL prefix, e.g. `/demo`. */
  readonly prefix: string;
  /** By name relative to the folder (`index.html`, `app.js`). */
  readonly files: ReadonlyMap<string, StaticFile>;
}

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** Most files and bytes loaded: a limit, so a wrong folder fails at start, not in memory. */
const MAX_FILES = 100;
const MAX_BYTES = 16 * 1024 * 1024;

/** Reads the top level of `dir`; throws naming the folder when it is missing, empty or too big. */
export function loadStaticSite(dir: string, prefix: string): StaticSite {
  const files = new Map<string, StaticFile>();
  let bytes = 0;
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    const body = readFileSync(path);
    bytes += body.byteLength;
    if (files.size >= MAX_FILES || bytes > MAX_BYTES) {
      throw new Error(`${dir}: more than ${MAX_FILES} files or ${MAX_BYTES} bytes`);
    }
    files.set(name, { contentType: TYPES[extname(name)] ?? "application/octet-stream", body });
  }
  if (!files.has("index.html")) throw new Error(`${dir} has no index.html`);
  return { prefix, files };
}

/** The file for a request path: `<prefix>` and `<prefix>/` are index.html; undefined: 404. */
export function staticFile(site: StaticSite, path: string): StaticFile | undefined {
  if (path === site.prefix || path === `${site.prefix}/`) return site.files.get("index.html");
  if (!path.startsWith(`${site.prefix}/`)) return undefined;
  return site.files.get(path.slice(site.prefix.length + 1));
}
