/**
 * The `userData` a gateway puts into its consumer-group metadata: where clients reach it, and
 * which partition numbers it holds (the claims the sticky assignor honours). Pure.
 *
 * Wire form: UTF-8 JSON `{"v":1,"url":"wss://…","owned":[0,3,7]}`. Unknown fields are ignored,
 * so later v1 writers may add some; a different `v` is rejected so old leaders never misread a
 * new layout.
 */

export const MEMBER_METADATA_VERSION = 1;

/** Limits on what a member may announce; both encoder and decoder enforce them. */
export const MEMBER_METADATA_LIMITS = {
  /** Whole encoded userData. Every member's metadata travels to the group leader on each join. */
  maxBytes: 64 * 1024,
  urlMaxChars: 2048,
  ownedMax: 8192,
  /** Kafka partition ids are int32. */
  partitionMax: 2 ** 31 - 1,
} as const;

export interface MemberMetadata {
  /** Public WebSocket URL of the member (ws: or wss:), where the router sends its users. */
  readonly url: string;
  /** Partition numbers the member holds now, ascending, no duplicates. */
  readonly owned: readonly number[];
}

export const MEMBER_METADATA_ERRORS = {
  tooLarge: "too_large",
  notJson: "not_json",
  badShape: "bad_shape",
  unsupportedVersion: "unsupported_version",
} as const;
export type MemberMetadataErrorCode = (typeof MEMBER_METADATA_ERRORS)[keyof typeof MEMBER_METADATA_ERRORS];

export type DecodeResult =
  | { readonly ok: true; readonly value: MemberMetadata }
  | { readonly ok: false; readonly code: MemberMetadataErrorCode; readonly message: string };

/**
 * Encodes a member's metadata. `owned` is sorted and deduplicated. Announcing something the
 * decoder would refuse (bad URL, partition out of range, past a limit) is a bug in the caller
 * and throws a RangeError: a member must not join with metadata no leader can read.
 */
export function encodeMemberMetadata(meta: MemberMetadata): Buffer {
  const owned = [...new Set(meta.owned)].sort((a, b) => a - b);
  const problem = checkUrl(meta.url) ?? checkOwned(owned);
  if (problem !== undefined) throw new RangeError(`member metadata: ${problem}`);
  const bytes = Buffer.from(JSON.stringify({ v: MEMBER_METADATA_VERSION, url: meta.url, owned }), "utf8");
  if (bytes.length > MEMBER_METADATA_LIMITS.maxBytes) {
    throw new RangeError(`member metadata: ${bytes.length} bytes, over ${MEMBER_METADATA_LIMITS.maxBytes}`);
  }
  return bytes;
}

/**
 * Decodes what `encodeMemberMetadata` wrote. Never throws: garbage, oversized or foreign input
 * gives `{ ok: false, code, message }`. A valid result has `owned` sorted and deduplicated.
 */
export function decodeMemberMetadata(bytes: Uint8Array | null | undefined): DecodeResult {
  if (bytes === null || bytes === undefined || bytes.length === 0) {
    return fail(MEMBER_METADATA_ERRORS.badShape, "empty user data");
  }
  if (bytes.length > MEMBER_METADATA_LIMITS.maxBytes) {
    return fail(
      MEMBER_METADATA_ERRORS.tooLarge,
      `${bytes.length} bytes, over ${MEMBER_METADATA_LIMITS.maxBytes}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    return fail(MEMBER_METADATA_ERRORS.notJson, error instanceof Error ? error.message : String(error));
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return fail(MEMBER_METADATA_ERRORS.badShape, "not a JSON object");
  }
  const record = parsed as Record<string, unknown>;
  if (record.v !== MEMBER_METADATA_VERSION) {
    return fail(MEMBER_METADATA_ERRORS.unsupportedVersion, `version ${JSON.stringify(record.v)}`);
  }
  const { url, owned } = record;
  if (typeof url !== "string") return fail(MEMBER_METADATA_ERRORS.badShape, "url is not a string");
  if (!Array.isArray(owned)) return fail(MEMBER_METADATA_ERRORS.badShape, "owned is not an array");
  const problem = checkUrl(url) ?? checkOwned(owned);
  if (problem !== undefined) return fail(MEMBER_METADATA_ERRORS.badShape, problem);
  const sorted = [...new Set(owned as number[])].sort((a, b) => a - b);
  return { ok: true, value: { url, owned: sorted } };
}

/** Why `url` cannot be a member URL, or undefined when it can. */
export function checkUrl(url: string): string | undefined {
  if (url.length === 0 || url.length > MEMBER_METADATA_LIMITS.urlMaxChars) {
    return `url length ${url.length} not in 1..${MEMBER_METADATA_LIMITS.urlMaxChars}`;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "url does not parse";
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    return `url scheme ${parsed.protocol} is not ws: or wss:`;
  }
  return undefined;
}

function checkOwned(owned: readonly unknown[]): string | undefined {
  if (owned.length > MEMBER_METADATA_LIMITS.ownedMax) {
    return `${owned.length} owned partitions, over ${MEMBER_METADATA_LIMITS.ownedMax}`;
  }
  for (const p of owned) {
    if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > MEMBER_METADATA_LIMITS.partitionMax) {
      return `owned partition ${JSON.stringify(p)} is not an int32 >= 0`;
    }
  }
  return undefined;
}

function fail(code: MemberMetadataErrorCode, message: string): DecodeResult {
  return { ok: false, code, message };
}
