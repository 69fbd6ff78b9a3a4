/**
 * `npx tsx loadtest/otlp-sink.ts [--port 4318]`: an OTLP/HTTP receiver that accepts trace,
 * metric and log exports and drops them, counting requests and bytes (and spans, when the export
 * is OTLP JSON). For measuring the cost of tracing without a collector: point the backbone's
 * OTEL_EXPORTER_OTLP_ENDPOINT at it. Loopback only; prints its counts every 10 s and on Ctrl-C.
 */
import { createServer } from "node:http";

function readPort(args: readonly string[]): number {
  const i = args.indexOf("--port");
  if (i < 0) return 4318;
  const text = args[i + 1] ?? "";
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    console.error(`--port: ${JSON.stringify(text)} is not a port number (1-65535)`);
    process.exit(2);
  }
  return port;
}

const counts = { requests: 0, bytes: 0, jsonSpans: 0 };
const server = createServer((req, res) => {
  let size = 0;
  const chunks: Buffer[] = [];
  const json = (req.headers["content-type"] ?? "").includes("json");
  req.on("data", (c: Buffer) => {
    size += c.length;
    if (json) chunks.push(c);
  });
  req.on("end", () => {
    counts.requests += 1;
    counts.bytes += size;
    if (json && req.url === "/v1/traces") {
      try {
        const doc = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[];
        };
        for (const rs of doc.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) counts.jsonSpans += ss.spans?.length ?? 0;
      } catch {
        // Counted as a request; the body is dropped either way.
      }
    }
    res
      .writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" })
      .end(json ? "{}" : "");
  });
});

const port = readPort(process.argv.slice(2));
server.listen(port, "127.0.0.1", () => console.log(`otlp sink on http://127.0.0.1:${port}`));
const report = () => console.log(JSON.stringify({ at: new Date().toISOString(), ...counts }));
const timer = setInterval(report, 10_000);
const stop = () => {
  clearInterval(timer);
  report();
  server.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
