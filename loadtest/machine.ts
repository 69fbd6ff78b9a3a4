/**
 * What a result must say about where it was measured: the machine, the versions, and the CPU
 * time of the processes under test. Thin I/O; every read is bounded and failure-tolerant (a
 * missing git or /proc gives null, never a failed run).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  parseListenDrops,
  parseMachineCpuTicks,
  parseMaxOpenFiles,
  parseProcStatTicks,
  parseVmRssBytes,
} from "./proc-stat.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface MachineInfo {
  readonly cores: number;
  readonly cpu_model: string;
  readonly total_memory_bytes: number;
  readonly platform: string;
  readonly os_release: string;
  readonly load_average_1m_at_start: number;
  readonly node: string;
  readonly kafka_version: string | null;
  readonly git_commit: string | null;
}

/** The `<kafka.version>` of infra/kafka/pom.xml, or null. */
export function parseKafkaVersion(pom: string): string | null {
  const m = /<kafka\.version>\s*([^<\s]{1,64})\s*<\/kafka\.version>/.exec(pom);
  return m === null ? null : m[1]!;
}

function run(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { cwd: REPO_ROOT, timeout: 3000, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  let kafkaVersion: string | null = null;
  try {
    kafkaVersion = parseKafkaVersion(readFileSync(join(REPO_ROOT, "infra", "kafka", "pom.xml"), "utf8"));
  } catch {
    kafkaVersion = null;
  }
  const commit = run("git", ["rev-parse", "--short", "HEAD"]);
  return {
    cores: list.length,
    cpu_model: list[0]?.model.trim() ?? "unknown",
    total_memory_bytes: totalmem(),
    platform: process.platform,
    os_release: release(),
    load_average_1m_at_start: Math.round(loadavg()[0]! * 100) / 100,
    node: process.version,
    kafka_version: kafkaVersion,
    git_commit: commit === "" ? null : commit,
  };
}

/** Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 on every common Linux). */
export function clockTicksPerSecond(): number {
  const n = Number(run("getconf", ["CLK_TCK"]));
  return Number.isSafeInteger(n) && n > 0 ? n : 100;
}

/** CPU time (user + system) a process has used, in clock ticks; null if it cannot be read. */
export function processTicks(pid: number): number | null {
  try {
    return parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/** Resident memory of a process (VmRSS), in bytes; null if it cannot be read. */
export function processRssBytes(pid: number): number | null {
  try {
    return parseVmRssBytes(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return null;
  }
}

/** How many files this process may open (`ulimit -n`, the soft limit); null if unknown. */
export function openFilesLimit(): number | null {
  try {
    return parseMaxOpenFiles(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return null;
  }
}

/** The whole machine's busy and total CPU ticks since boot (/proc/stat); null if unreadable. */
export function machineCpuTicks(): { busy: number; total: number } | null {
  try {
    return parseMachineCpuTicks(readFileSync("/proc/stat", "utf8"));
  } catch {
    return null;
  }
}

/** The kernel's accept-queue overflows so far (machine-wide, /proc/net/netstat); null if unreadable. */
export function listenDrops(): { overflows: number; drops: number } | null {
  try {
    return parseListenDrops(readFileSync("/proc/net/netstat", "utf8"));
  } catch {
    return null;
  }
}
