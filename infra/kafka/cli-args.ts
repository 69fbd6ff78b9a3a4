/**
 * Arguments of `npm run kafka -- start`: how many nodes, from `--brokers 1|3` (or
 * `--brokers=3`), else RT_KAFKA_NODES, else 1. Two nodes are refused: a KRaft quorum of two
 * survives no loss, and replication factor 3 needs three.
 */
import { ConfigError, readInt, type Env } from "../../common/env.ts";

export function readNodeCount(args: readonly string[], env: Env): 1 | 3 {
  let flag: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--brokers") {
      flag = args[i + 1];
      if (flag === undefined || flag.startsWith("--"))
        throw new ConfigError("--brokers", "1 or 3", undefined);
      i += 1;
    } else if (a.startsWith("--brokers=")) {
      flag = a.slice("--brokers=".length);
    } else {
      throw new ConfigError(a, "no option other than --brokers 1|3", a);
    }
  }
  if (flag !== undefined) {
    if (flag !== "1" && flag !== "3") throw new ConfigError("--brokers", "1 or 3", flag);
    return flag === "3" ? 3 : 1;
  }
  const nodes = readInt(env, "RT_KAFKA_NODES", 1, { min: 1, max: 3 });
  if (nodes === 2) throw new ConfigError("RT_KAFKA_NODES", "1 or 3", "2");
  return nodes as 1 | 3;
}
