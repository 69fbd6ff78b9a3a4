/**
 * CPU time of a changing set of processes, read from /proc/<pid>/stat: samples by name, the
 * cores each used between two samples, and CPU per process over a window. A process that exits
 * keeps its last reading, so a window that spans its death still adds up; one that starts inside
 * a window counts from zero.
 */
import { processTicks } from "./machine.ts";
import type { ProcessCpu } from "./report.ts";

export interface ProcRef {
  readonly name: string;
  readonly pid: number;
}

export type Sample = ReadonlyMap<string, number | null>;

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/** CPU seconds of each process between samples `a` and `b`, and cores used over `wallS`. */
export function cpuBetween(
  procs: readonly ProcRef[],
  a: Sample,
  b: Sample,
  wallS: number,
  ticksPerS: number,
): ProcessCpu[] {
  return procs.map((p) => {
    const start = a.has(p.name) ? a.get(p.name)! : 0;
    const end = b.get(p.name) ?? null;
    if (start === null || end === null) {
      return { ...p, cpu_s: null, cores_used: null, error: `cannot read /proc/${p.pid}/stat` };
    }
    const cpuS = (end - start) / ticksPerS;
    return { ...p, cpu_s: Math.round(cpuS * 100) / 100, cores_used: round3(cpuS / Math.max(0.001, wallS)) };
  });
}

/** Cores each process used between two samples `wallS` apart (null: unknown at either end). */
export function coresBetween(
  a: Sample,
  b: Sample,
  wallS: number,
  ticksPerS: number,
): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [name, v] of b) {
    const prev = a.get(name);
    out[name] =
      v === null || prev === undefined || prev === null
        ? null
        : round3((v - prev) / ticksPerS / Math.max(0.001, wallS));
  }
  return out;
}

export class CpuSampler {
  readonly #last = new Map<string, number | null>();

  constructor(readonly procs: () => readonly ProcRef[]) {}

  sample(): Sample {
    const m = new Map<string, number | null>();
    for (const p of this.procs()) {
      const t = processTicks(p.pid);
      m.set(p.name, t ?? this.#last.get(p.name) ?? null);
      if (t !== null) this.#last.set(p.name, t);
    }
    return m;
  }
}
