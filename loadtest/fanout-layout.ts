/**
 * Where a fanout run puts things, as pure functions: which clients each generator process
 * holds, whether every process stays under its open-files limit, and the settings the run gives
 * the gateways and the router it starts (recorded in the result).
 */
import { partitionForKey } from "../schemas/partition.ts";
import type { ConnectOptions, StormOptions } from "./connect-args.ts";
import type { BroadcastOptions, RoomOptions } from "./fanout-args.ts";
import { memberUser } from "./fanout-protocol.ts";

/** Files a generator needs besides its sockets: stdio, IPC, libraries, slack. */
export const GENERATOR_FD_OVERHEAD = 200;
/** Files a gateway needs besides its clients' sockets: Kafka connections, libraries, slack. */
export const GATEWAY_FD_OVERHEAD = 300;

/** Client index ranges [first, first + count) of `generators` processes, as even as can be. */
export function shares(clients: number, generators: number): { first: number; count: number }[] {
  const base = Math.floor(clients / generators);
  const extra = clients % generators;
  const out = [];
  let first = 0;
  for (let i = 0; i < generators; i++) {
    const count = base + (i < extra ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

/** Null when each generator fits in `limit` open files; otherwise the one-line refusal. */
export function generatorFileCheck(clients: number, generators: number, limit: number | null): string | null {
  if (limit === null) return null;
  const most = Math.ceil(clients / generators);
  if (most + GENERATOR_FD_OVERHEAD <= limit) return null;
  const needed = Math.ceil(clients / Math.max(1, limit - GENERATOR_FD_OVERHEAD));
  return (
    `--generators: ${clients} clients over ${generators} generator processes is ${most} sockets in one, ` +
    `about ${most + GENERATOR_FD_OVERHEAD} open files, but a process may open ${limit} (ulimit -n): ` +
    `use --generators ${needed} or more`
  );
}

/**
 * Null when no gateway would hold more sockets than its open-files limit allows, given where
 * every user's partition is owned; otherwise the refusal. `owners`: partition to gateway URL.
 */
export function gatewayFileCheck(
  users: readonly string[],
  partitions: number,
  owners: ReadonlyMap<number, string>,
  limit: number | null,
): string | null {
  const perGateway = new Map<string, number>();
  for (const u of users) {
    const url = owners.get(partitionForKey(u, partitions)) ?? "(no owner)";
    perGateway.set(url, (perGateway.get(url) ?? 0) + 1);
  }
  if (perGateway.has("(no owner)")) return "some partitions have no owner among the run's gateways";
  if (limit === null) return null;
  for (const [url, n] of perGateway) {
    if (n + GATEWAY_FD_OVERHEAD > limit) {
      return (
        `--gateways: the gateway at ${url} would hold ${n} sockets, over its open-files limit of ${limit} ` +
        `(ulimit -n): add --gateways (and --partitions, so they share evenly)`
      );
    }
  }
  return null;
}

/** The user names of a run's clients (members, or broadcast listeners), by global index. */
export function clientUsers(runId: string, clients: number): string[] {
  return Array.from({ length: clients }, (_, i) => memberUser(runId, i));
}

/**
 * What the run sets on its own services, beyond the defaults churn-backbone.ts gives them: the
 * rate limits a fanout run must not measure (twice what it offers), and the connection and
 * room-size limits its client count needs.
 */
export function serviceEnv(
  o: RoomOptions | BroadcastOptions | ConnectOptions | StormOptions,
  runId: string,
): { gateway: Record<string, string>; router: Record<string, string> } {
  const clients = o.scenario === "room" ? o.members + o.rooms : o.clients;
  const perIp = String(Math.max(1000, clients + 100));
  if (o.scenario === "connect" || o.scenario === "storm") {
    // Clients share the 127.0.0.x source addresses, so the per-address cap is raised;
    // RT_MAX_UNAUTHENTICATED stays at its default: a storm meets the gateway's real admission bound.
    return {
      gateway: {
        RT_MAX_CONNECTIONS_PER_IP: perIp,
        RT_MAX_CONNECTIONS: String(Math.max(100_000, clients)),
        ...(o.scenario === "connect" ? { RT_PING_INTERVAL_MS: String(o.pingIntervalMs) } : {}),
        ...(o.scenario === "connect" && o.gatewayNodeOptions !== undefined
          ? { NODE_OPTIONS: o.gatewayNodeOptions }
          : {}),
      },
      router: { RT_ROUTER_ID: `lt-${runId}-router` },
    };
  }
  if (o.scenario === "broadcast") {
    return {
      gateway: { RT_MAX_CONNECTIONS_PER_IP: perIp, RT_MAX_CONNECTIONS: String(Math.max(100_000, clients)) },
      router: { RT_ROUTER_ID: `lt-${runId}-router` },
    };
  }
  const perRoom = o.ratePerS / o.rooms;
  const rooms = String(o.roomPartitions);
  return {
    gateway: {
      RT_ROOM_PARTITIONS: rooms,
      RT_SENDS_PER_S: String(Math.min(100_000, Math.max(50, Math.ceil(2 * perRoom)))),
      RT_ROOM_SENDS_PER_S: String(Math.max(100, Math.ceil(2 * perRoom))),
      RT_MAX_CONNECTIONS_PER_IP: perIp,
      RT_MAX_CONNECTIONS: String(Math.max(100_000, clients)),
    },
    router: {
      RT_ROOM_PARTITIONS: rooms,
      RT_ROUTER_ID: `lt-${runId}-router`,
      RT_MAX_ROOM_MEMBERS: String(Math.max(10_000, Math.ceil(o.members / o.rooms) + 10)),
    },
  };
}
