/**
 * W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header):
 * `version-traceid-parentid-flags` in lowercase hex. Version ff is invalid, and all-zero trace
 * or parent ids are invalid. Version 00 has exactly these four fields; a later version may append
 * `-...`, which is accepted (and ignored) as the spec asks.
 */

export const TRACEPARENT_MAX_CHARS = 256;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-[\x21-\x7e]*)?$/;

export function isTraceparent(s: string): boolean {
  if (s.length > TRACEPARENT_MAX_CHARS) return false;
  const m = TRACEPARENT.exec(s);
  if (m === null) return false;
  const [, version, traceId, parentId, rest] = m;
  if (version === "ff" || (version === "00" && rest !== undefined)) return false;
  return !/^0+$/.test(traceId!) && !/^0+$/.test(parentId!);
}
