/**
 * Adversarial property tests of the cursor parser (schemas/cursor.ts) against an independent
 * oracle written from the documented format: numbers at and around every bound, signs, leading
 * zeros, exponents, hex, whitespace, non-ASCII digits, every truncation and mutation of valid
 * cursors. parseCursor must agree with the oracle on every input and never throw.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CURSOR_MAX_CHARS,
  OFFSET_MAX,
  PARTITION_MAX,
  formatCursor,
  parseCursor,
} from "../../schemas/cursor.ts";
import { recordMeasurements } from "../helpers/reliability.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`cursor-prop.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

let parsed = 0;
let threw = 0;
after(() => recordMeasurements("cursor-prop", { cursorsParsed: parsed, parserThrows: threw }));

/**
 * The format, from docs/PROTOCOL.md and the module comment, without the module's regexes:
 * epoch 1–16 of [0-9a-z]; partition a canonical decimal in [0, 2^31 - 1]; offset -1 or a
 * canonical decimal in [0, 2^63 - 1]; at most 64 characters in all.
 */
function oracle(s: string): { epoch: string; partition: number; offset: bigint } | null {
  if (s.length > CURSOR_MAX_CHARS) return null;
  const parts = s.split(":");
  if (parts.length !== 3) return null;
  const [epoch, p, o] = parts as [string, string, string];
  const isLowerAlnum = (c: string) => (c >= "0" && c <= "9") || (c >= "a" && c <= "z");
  if (epoch.length < 1 || epoch.length > 16 || ![...epoch].every(isLowerAlnum)) return null;
  const canonical = (d: string) =>
    d.length > 0 && [...d].every((c) => c >= "0" && c <= "9") && (d === "0" || d[0] !== "0");
  if (!canonical(p) || BigInt(p) > BigInt(PARTITION_MAX)) return null;
  if (o !== "-1" && (!canonical(o) || BigInt(o) > OFFSET_MAX)) return null;
  return { epoch, partition: Number(p), offset: BigInt(o) };
}

function check(s: string): void {
  parsed += 1;
  let r: ReturnType<typeof parseCursor>;
  try {
    r = parseCursor(s);
  } catch (e) {
    threw += 1;
    throw e;
  }
  const want = oracle(s);
  if (want === null) {
    assert.equal(r.ok, false, `accepted ${JSON.stringify(s)}`);
    // The reason names the rule, never the (client-supplied) input.
    if (!r.ok) assert.ok(r.reason.length > 0 && (s.length < 8 || !r.reason.includes(s)), r.reason);
  } else {
    assert.ok(r.ok, `refused ${JSON.stringify(s)}: ${r.ok ? "" : r.reason}`);
    assert.deepEqual(r.cursor, want);
    assert.equal(formatCursor(r.cursor), s, "accepted cursors are canonical");
  }
}

const P = BigInt(PARTITION_MAX);
const NUMBERS = [
  "0",
  "1",
  "-1",
  "-0",
  "+1",
  "00",
  "01",
  "1e3",
  "0x10",
  "1.0",
  " 1",
  "1 ",
  "\t1",
  "1\n",
  "١",
  "１",
  "",
  String(P - 1n),
  String(P),
  String(P + 1n),
  String(2n ** 32n),
  String(OFFSET_MAX - 1n),
  String(OFFSET_MAX),
  String(OFFSET_MAX + 1n),
  String(2n ** 64n),
  "9".repeat(19),
  "9".repeat(20),
  "1" + "0".repeat(18),
  "-2",
  "--1",
  "-01",
  "Infinity",
  "NaN",
];
const EPOCHS = ["p4", "0", "z", "a".repeat(16), "a".repeat(17), "P4", "p-4", "p_4", "", "é", "p4 "];

test("bounds, signs, zeros, exponents, whitespace and foreign digits: agree with the oracle", () => {
  for (const e of EPOCHS) for (const p of NUMBERS) for (const o of NUMBERS) check(`${e}:${p}:${o}`);
  for (const s of ["p4:1", "p4:1:2:3", "::", "p4::1", ":1:2", "p4:1:", "p4;1;2", "p4:1:2\u0000"]) check(s);
});

test("every truncation and every single-character mutation of valid cursors", () => {
  const valid = fc.tuple(
    fc.stringMatching(/^[0-9a-z]{1,16}$/),
    fc.integer({ min: 0, max: PARTITION_MAX }),
    fc.oneof(fc.constant(-1n), fc.bigInt({ min: 0n, max: OFFSET_MAX })),
  );
  fc.assert(
    fc.property(
      valid,
      fc.nat(),
      fc.string({ unit: "binary", maxLength: 2 }),
      fc.boolean(),
      ([e, p, o], at, insert, replace) => {
        const s = `${e}:${p}:${o}`;
        check(s);
        for (let i = 0; i < s.length; i++) check(s.slice(0, i));
        const i = at % (s.length + 1);
        check(s.slice(0, i) + insert + s.slice(replace ? i + 1 : i));
      },
    ),
    { seed, numRuns: 3_000 },
  );
});

test("random strings over the cursor alphabet and beyond: agree with the oracle", () => {
  const alphabet = fc.constantFrom(..."0123456789az:-+ eEx.".split(""), "١", "é", "\u0000", "\ud800");
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ unit: alphabet, maxLength: 70 }), fc.string({ unit: "binary", maxLength: 100 })),
      (s) => check(s),
    ),
    { seed, numRuns: 20_000 },
  );
});

test("long inputs are refused by length before any number is built", () => {
  for (const n of [65, 1_000, 1_000_000]) {
    const s = `p4:0:${"1".repeat(n)}`;
    check(s);
    const r = parseCursor(s);
    assert.ok(!r.ok && /longer than 64/.test(r.reason));
  }
});
