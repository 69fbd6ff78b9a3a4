/**
 * A backend's side of the router's publish API, as the fanout runs use it: one service token
 * (`scope: "rt:publish"`, signed with the run's secret) and POST /v1/publish over a bounded
 * keep-alive pool. A request never hangs: each is bounded by `timeoutMs`, and a failure is a value.
 */
import { Agent, request } from "node:http";
import { mintDevToken } from "../gateway/auth.ts";
import { PUBLISH_SERVICE } from "./fanout-protocol.ts";

const MAX_ANSWER_BYTES = 16 * 1024;

export type PublishAnswer =
  | { readonly ok: true; readonly status: number }
  | { readonly ok: false; readonly status: number | null; readonly code: string };

export interface PublishClient {
  /** POSTs `body` (JSON text); resolves with the answer, never rejects. */
  publish(body: string): Promise<PublishAnswer>;
  close(): void;
}

export async function createPublishClient(
  routerUrl: string,
  secret: string,
  ttlS: number,
  maxSockets: number,
  timeoutMs: number,
): Promise<PublishClient> {
  const token = await mintDevToken(secret, PUBLISH_SERVICE, { ttlS, claims: { scope: "rt:publish" } });
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  const url = new URL("/v1/publish", routerUrl);
  const publish = (body: string) =>
    new Promise<PublishAnswer>((done) => {
      const req = request(
        url,
        {
          method: "POST",
          agent,
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
          signal: AbortSignal.timeout(timeoutMs),
        },
        (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => {
            if (text.length < MAX_ANSWER_BYTES) text += chunk.toString("utf8");
          });
          res.once("end", () => {
            const status = res.statusCode ?? 0;
            if (status === 200) return done({ ok: true, status });
            let code = `http_${status}`;
            try {
              const e = (JSON.parse(text) as { error?: unknown }).error;
              if (typeof e === "string") code = e;
            } catch {
              // Not JSON: the status says enough.
            }
            done({ ok: false, status, code });
          });
          res.once("error", (e) => done({ ok: false, status: res.statusCode ?? null, code: errorCode(e) }));
        },
      );
      req.once("error", (e) => done({ ok: false, status: null, code: errorCode(e) }));
      req.end(body);
    });
  return { publish, close: () => agent.destroy() };
}

function errorCode(e: Error): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (e.name === "AbortError" || e.name === "TimeoutError") return "timeout";
  return typeof code === "string" && code !== "" ? code : "error";
}
