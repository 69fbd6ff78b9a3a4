/**
 * Reading CPU time out of Linux's /proc/<pid>/stat (proc(5)): fields 14 and 15, utime and stime,
 * in clock ticks. The second field, the command name, is in parentheses and may itself hold
 * spaces and parentheses, so fields are counted from the last `)`.
 */

/** utime + stime in clock ticks, or null when the text is not a stat line. */
export function parseProcStatTicks(text: string): number | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  // After ") ": state(3) ppid(4) ... utime(14) stime(15): indices 11 and 12 here.
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (fields.length < 13 || !Number.isSafeInteger(utime) || !Number.isSafeInteger(stime)) return null;
  return utime + stime;
}

/** VmRSS of a /proc/<pid>/status text (proc(5), in kB there), in bytes; null when absent. */
export function parseVmRssBytes(text: string): number | null {
  const m = /^VmRSS:\s+(\d{1,15})\s+kB\s*$/m.exec(text);
  return m === null ? null : Number(m[1]) * 1024;
}

/** The soft "Max open files" of a /proc/<pid>/limits text; null when absent, Infinity for unlimited. */
export function parseMaxOpenFiles(text: string): number | null {
  const m = /^Max open files\s+(\S+)\s+\S+\s+files\s*$/m.exec(text);
  if (m === null) return null;
  if (m[1] === "unlimited") return Infinity;
  return /^\d{1,12}$/.test(m[1]!) ? Number(m[1]) : null;
}

/**
 * The whole machine's CPU time from the first line of /proc/stat (`cpu user nice system idle
 * iowait irq softirq steal ...`, in clock ticks): busy (everything but idle and iowait) and
 * total. Null when the text has no such line.
 */
export function parseMachineCpuTicks(text: string): { busy: number; total: number } | null {
  const m = /^cpu\s+([\d\s]+)$/m.exec(text);
  if (m === null) return null;
  const f = m[1]!.trim().split(/\s+/).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isSafeInteger(n))) return null;
  // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * The kernel's count of connections dropped because a listening socket's accept queue was full
 * (`ListenOverflows`, `ListenDrops` of the `TcpExt:` lines of /proc/net/netstat; machine-wide).
 * Null when the text has no such lines.
 */
export function parseListenDrops(text: string): { overflows: number; drops: number } | null {
  const lines = text.split("\n").filter((l) => l.startsWith("TcpExt:"));
  if (lines.length < 2) return null;
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/).map(Number);
  const at = (name: string) => {
    const i = names.indexOf(name);
    return i < 1 || !Number.isSafeInteger(values[i]) ? null : values[i]!;
  };
  const overflows = at("ListenOverflows");
  const drops = at("ListenDrops");
  return overflows === null || drops === null ? null : { overflows, drops };
}
