/**
 * The local backbone's development JWT secret: made once, kept in .cache/dev-jwt-secret, so
 * `npm start` and `rt token` agree and tokens survive restarts. Never used when any RT_JWT_*
 * variable is set; never for production.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const DEV_SECRET_FILE = join(
  resolve(dirname(fileURLToPath(import.meta.url)), ".."),
  ".cache",
  "dev-jwt-secret",
);

export function devSecret(): string {
  if (existsSync(DEV_SECRET_FILE)) return readFileSync(DEV_SECRET_FILE, "utf8").trim();
  mkdirSync(dirname(DEV_SECRET_FILE), { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(DEV_SECRET_FILE, secret + "\n", { mode: 0o600 });
  return secret;
}
