/**
 * Container health check of the gateway and router images (Dockerfile HEALTHCHECK, compiled to
 * dist/infra/docker/healthcheck.js): GET /healthz on the service's own port, whose variable
 * RT_HEALTH_PORT_VAR names. Exits 0 on a 200, 1 otherwise. Liveness only: whether a gateway
 * does work is /readyz.
 */
const portVar = process.env.RT_HEALTH_PORT_VAR ?? "RT_GATEWAY_PORT";
const port = process.env[portVar] ?? "8081";
try {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2500) });
  process.exit(res.status === 200 ? 0 : 1);
} catch {
  process.exit(1);
}
