# syntax=docker/dockerfile:1
#
# Images of the gateway and the router, from one multi-stage build:
#
#   docker build --target gateway -t rt-gateway .
#   docker build --target router  -t rt-router  .
#
# Base image: Debian 12 (bookworm) slim with Node.js 20. The uWebSockets.js build the project
# uses (npm alias of @trufflesuite/uws-js-unofficial 20.30.0-unofficial.0) ships prebuilt native
# binaries per Node ABI: 115 is Node 20 (package.json engines), so Node 22 would need another
# build. They link against glibc (their newest versioned symbol is GLIBC_2.27), so Alpine (musl)
# cannot load them; bookworm's glibc 2.36 with Node 20 is the combination the project is tested
# on (Debian 12, Node 20.20.2). Both services refuse to start without the native binary.
#
# The runtime stages hold only the compiled JavaScript (dist/) and the production dependencies
# (npm ci --omit=dev), run as the unprivileged `node` user (uid 1000), and check their own
# /healthz with Node's fetch (the slim image has no curl).

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: all dependencies, TypeScript compiled to dist/ ---------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY schemas schemas
COPY common common
COPY gateway gateway
COPY router router
COPY client client
COPY cli cli
COPY infra/kafka infra/kafka
COPY infra/docker infra/docker
COPY loadtest loadtest
RUN npm run build

# --- production dependencies only ---------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- what both services share ---------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
# Nothing in /app is writable by the service user: the services keep no state on disk.
USER node
STOPSIGNAL SIGTERM

# --- the gateway: WebSocket edge on 8081 (/v1/ws, /healthz, /readyz, /metrics) ---------------
FROM runtime AS gateway
ENV RT_GATEWAY_HOST=0.0.0.0 \
    RT_GATEWAY_PORT=8081 \
    RT_HEALTH_PORT_VAR=RT_GATEWAY_PORT
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "dist/infra/docker/healthcheck.js"]
CMD ["node", "dist/gateway/main.js"]

# --- the router: placement API on 8080 (/v1/connect, /healthz, /readyz, /metrics) ----------
FROM runtime AS router
ENV RT_ROUTER_HOST=0.0.0.0 \
    RT_ROUTER_PORT=8080 \
    RT_HEALTH_PORT_VAR=RT_ROUTER_PORT
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "dist/infra/docker/healthcheck.js"]
CMD ["node", "dist/router/main.js"]
