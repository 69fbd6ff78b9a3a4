/**
 * Writes the golden records the evolution test decodes: `npx tsx schemas/golden/make-golden.ts`.
 *
 * Run it once per new schema version (after adding the version's values to values.ts) and commit
 * its output. It only adds files: an existing golden file is never rewritten, and one whose bytes
 * the current code would write differently is reported, with exit code 1. Never delete a golden
 * file to make a failing test pass: a failure means records already in Kafka (or frames of
 * deployed clients) would stop decoding.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { encodeDelivery, type Delivery } from "../codec.ts";
import { encodeClientFrameAvro, encodeServerFrameAvro } from "../frame-codec.ts";
import type { ClientFrame, ServerFrame } from "../frames.ts";
import {
  channelEventCodec,
  membershipCodec,
  roomEventCodec,
  type ChannelEvent,
  type Membership,
  type RoomEvent,
} from "../records.ts";
import { SCHEMAS } from "../versions.ts";
import { GOLDENS, type Golden } from "./values.ts";

/** The bytes the current code writes for `g`. */
export function encodeGolden(g: Golden): Buffer {
  switch (g.kind) {
    case "delivery":
      return encodeDelivery(g.value as Delivery);
    case "roomEvent":
      return roomEventCodec.encode(g.value as RoomEvent);
    case "membership":
      return membershipCodec.encode(g.value as Membership);
    case "channelEvent":
      return channelEventCodec.encode(g.value as ChannelEvent);
    case "clientFrame":
      return encodeClientFrameAvro(g.value as ClientFrame);
    case "serverFrame":
      return encodeServerFrameAvro(g.value as ServerFrame);
  }
}

function main(): number {
  let bad = 0;
  for (const g of GOLDENS) {
    const versions = SCHEMAS[g.kind].versions;
    // Only the current version can be written by the current code.
    if (g.version !== versions[versions.length - 1]!.version) continue;
    const path = new URL(`./${g.file}`, import.meta.url);
    const bytes = encodeGolden(g);
    if (!existsSync(path)) {
      writeFileSync(path, bytes);
      console.log(`wrote     ${g.file}`);
    } else if (readFileSync(path).equals(bytes)) {
      console.log(`unchanged ${g.file}`);
    } else {
      console.error(
        `DIFFERENT ${g.file}: the current code writes other bytes for the same value; not rewritten`,
      );
      bad++;
    }
  }
  return bad === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(main());
