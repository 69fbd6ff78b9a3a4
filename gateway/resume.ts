/**
 * Deciding a resume: given the client's cursor and where the partition's log stands, either
 * every event after the cursor can still be delivered (recovered) or the session starts live
 * from now and says why not. Pure: the offsets come in, the plan goes out.
 */
import type { Cursor } from "../schemas/cursor.ts";

export const RESUME_REASONS = {
  no_cursor: "hello carried no cursor: the session starts at the live edge",
  epoch_changed: "the cursor is from another incarnation of the log (topic recreated or repartitioned)",
  wrong_partition: "the cursor is not in this user's partition",
  future_cursor: "the cursor points past the end of the log",
  retention: "retention has deleted events after the cursor",
  age_limit: "events after the cursor are older than the resume age limit",
  scan_limit: "more events than the resume scan limit follow the cursor",
} as const;
export type ResumeReason = keyof typeof RESUME_REASONS;

export interface ResumeInput {
  readonly cursor: Cursor | null;
  readonly epoch: string;
  readonly partition: number;
  /** Offset of the last record this gateway has handled in the partition (-1: none). */
  readonly liveEdge: bigint;
  /** First offset still in the log. */
  readonly logStart: bigint;
  /** Offset the next record will get. */
  readonly logEnd: bigint;
  /** First offset whose record is young enough to resume (logEnd when none is). */
  readonly ageStart: bigint;
  readonly scanMax: number;
}

export type ResumePlan =
  | { readonly recovered: true; readonly startAfter: bigint }
  | { readonly recovered: false; readonly startAfter: bigint; readonly reason: ResumeReason };

export function planResume(i: ResumeInput): ResumePlan {
  const live = (reason: ResumeReason): ResumePlan => ({ recovered: false, startAfter: i.liveEdge, reason });
  const c = i.cursor;
  if (c === null) return live("no_cursor");
  if (c.epoch !== i.epoch) return live("epoch_changed");
  if (c.partition !== i.partition) return live("wrong_partition");
  if (c.offset >= i.logEnd && c.offset > i.liveEdge) return live("future_cursor");
  const next = c.offset + 1n;
  if (next < i.logStart) return live("retention");
  const end = i.logEnd - 1n > i.liveEdge ? i.logEnd - 1n : i.liveEdge;
  if (next < i.ageStart && next <= end) return live("age_limit");
  if (end - c.offset > BigInt(i.scanMax)) return live("scan_limit");
  return { recovered: true, startAfter: c.offset };
}
