/**
 * Writes the golden records the codec tests decode: `npx tsx schemas/golden/make-golden.ts`.
 *
 * Run it once per schema version and commit its output. Never regenerate a golden file to make
 * a failing test pass: a failure means records already in Kafka would stop decoding.
 */
import { writeFileSync } from "node:fs";
import { encodeDelivery, type Delivery } from "../codec.ts";

/** The record in delivery-v1.bin; test/unit/codec.test.ts spells out the same values. */
const GOLDEN_V1: Delivery = {
  id: "golden-1",
  type: "chat.message",
  sender: "service:golden",
  recipient: "user-ü-1",
  room: "room:lobby",
  ts: 1_735_689_600_000, // 2025-01-01T00:00:00Z
  data: '{"text":"héllo 🌍","n":[1,2,3]}',
  attributes: { origin: "make-golden", schema: "v1" },
};

const path = new URL("./delivery-v1.bin", import.meta.url);
writeFileSync(path, encodeDelivery(GOLDEN_V1));
console.log(`wrote ${path.pathname}`);
