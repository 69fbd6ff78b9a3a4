/**
 * Every Avro schema of the project and every version of it that was ever written: the catalogue
 * the evolution test (test/unit/schema-evolution.test.ts) checks and the codecs read earlier
 * versions from.
 *
 * A schema's versions are its files under schemas/history/, oldest first; the newest one is the
 * current schema (the .avsc next to this module) and has the same Parsing Canonical Form. Each
 * version's fingerprint is pinned here: it is in the header of every record written with it, so
 * it can never change. The rules for a new version are in docs/DATA.md ("Schema evolution").
 */
import { readSchemaFile } from "./record-codec.ts";

export interface SchemaVersion {
  readonly version: number;
  /** Path under schemas/. */
  readonly file: string;
  /** CRC-64-AVRO of the version's Parsing Canonical Form: what its single-object header carries. */
  readonly fingerprint: bigint;
}

export interface SchemaEntry {
  /** Full name of the top-level record. */
  readonly name: string;
  /** The current schema, a file in schemas/. */
  readonly file: string;
  /** Every version, oldest first; the last one is the current schema. */
  readonly versions: readonly SchemaVersion[];
}

export const SCHEMAS = {
  delivery: {
    name: "rt.v1.Delivery",
    file: "delivery.avsc",
    versions: [{ version: 1, file: "history/delivery-v1.avsc", fingerprint: 0xcaa51b1e00b17a4dn }],
  },
  roomEvent: {
    name: "rt.v1.RoomEvent",
    file: "room-event.avsc",
    versions: [{ version: 1, file: "history/room-event-v1.avsc", fingerprint: 0x9854cacda5310e90n }],
  },
  membership: {
    name: "rt.v1.Membership",
    file: "membership.avsc",
    versions: [{ version: 1, file: "history/membership-v1.avsc", fingerprint: 0x0b84dc01baba3fd6n }],
  },
  channelEvent: {
    name: "rt.v1.ChannelEvent",
    file: "channel-event.avsc",
    versions: [{ version: 1, file: "history/channel-event-v1.avsc", fingerprint: 0x8406d14dc430483fn }],
  },
  clientFrame: {
    name: "rt.v1.ClientFrame",
    file: "client-frame.avsc",
    versions: [{ version: 1, file: "history/client-frame-v1.avsc", fingerprint: 0xdafbbe137bc3f5d1n }],
  },
  serverFrame: {
    name: "rt.v1.ServerFrame",
    file: "server-frame.avsc",
    versions: [{ version: 1, file: "history/server-frame-v1.avsc", fingerprint: 0xa8c12ae2773a6499n }],
  },
} as const satisfies Readonly<Record<string, SchemaEntry>>;

export type SchemaKind = keyof typeof SCHEMAS;

export const SCHEMA_KINDS = Object.freeze(Object.keys(SCHEMAS) as SchemaKind[]);

/**
 * The writer schemas of every version before the current one, for a codec's `earlier`. Read
 * only when there are any (none today), so nothing under history/ is needed at run time until a
 * schema has a second version.
 */
export function earlierSchemas(kind: SchemaKind): unknown[] {
  const versions: readonly SchemaVersion[] = SCHEMAS[kind].versions;
  return versions.slice(0, -1).map((v) => readSchemaFile(v.file));
}

/** The fingerprint of the current version of `kind`. */
export function currentFingerprint(kind: SchemaKind): bigint {
  const versions: readonly SchemaVersion[] = SCHEMAS[kind].versions;
  return versions[versions.length - 1]!.fingerprint;
}
