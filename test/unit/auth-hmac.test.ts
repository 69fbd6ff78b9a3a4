import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import fc from "fast-check";
import { createVerifier, readAuthConfig, type VerifyResult } from "../../gateway/auth.ts";
import { HmacFastPath } from "../../gateway/auth-hmac.ts";

const SECRET = randomBytes(32).toString("base64url");
const KEY = new TextEncoder().encode(SECRET);
const NOW = Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** A compact JWS over raw header and payload text, signed with `secret` (HS256 unless told). */
function jws(header: unknown, payload: unknown, secret = SECRET, hash = "sha256"): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(hash, secret).update(input).digest("base64url")}`;
}

const claimsOnly = { issuer: undefined, audience: undefined, clockToleranceS: 5 };

test("the fast path takes a plain valid HS256 token and gives its payload", () => {
  const f = new HmacFastPath(KEY, claimsOnly);
  const payload = { sub: "alice", exp: NOW + 60, iat: NOW, role: "admin" };
  assert.deepEqual(f.verify(jws({ alg: "HS256", typ: "JWT" }, payload), "HS256", NOW), payload);
  assert.deepEqual(f.verify(jws({ alg: "HS256", kid: "k1" }, payload), "HS256", NOW), payload);
});

test("the fast path declines whatever it does not vouch for, leaving the verdict to jose", () => {
  const f = new HmacFastPath(KEY, { issuer: "https://idp", audience: ["rt"], clockToleranceS: 5 });
  const good = { sub: "a", exp: NOW + 60, iss: "https://idp", aud: "rt" };
  const valid = jws({ alg: "HS256" }, good);
  assert.notEqual(f.verify(valid, "HS256", NOW), null);
  const declined: [string, string][] = [
    ["another secret", jws({ alg: "HS256" }, good, "another-secret-of-at-least-32-bytes!")],
    ["header alg differs from the one checked", jws({ alg: "HS512" }, good, SECRET, "sha512")],
    ["crit header", jws({ alg: "HS256", crit: ["b64"], b64: false }, good)],
    ["unknown header", jws({ alg: "HS256", jku: "https://x" }, good)],
    ["header not an object", jws(["HS256"], good)],
    ["payload an array", jws({ alg: "HS256" }, [good])],
    ["payload not JSON", jws({ alg: "HS256" }, "{sub:")],
    ["padding", valid.replace(/\.([^.]+)$/, ".$1=")],
    ["signature with a stray character", `${valid}A`],
    ["signature with a bad character", valid.replace(/.$/, "+")],
    ["four parts", `${valid}.x`],
    ["expired", jws({ alg: "HS256" }, { ...good, exp: NOW - 6 })],
    ["exp not a number", jws({ alg: "HS256" }, { ...good, exp: String(NOW + 60) })],
    ["no exp", jws({ alg: "HS256" }, { sub: "a", iss: "https://idp", aud: "rt" })],
    ["no sub", jws({ alg: "HS256" }, { exp: NOW + 60, iss: "https://idp", aud: "rt" })],
    ["nbf ahead", jws({ alg: "HS256" }, { ...good, nbf: NOW + 6 })],
    ["iat not a number", jws({ alg: "HS256" }, { ...good, iat: "now" })],
    ["wrong issuer", jws({ alg: "HS256" }, { ...good, iss: "https://evil" })],
    ["no audience", jws({ alg: "HS256" }, { sub: "a", exp: NOW + 60, iss: "https://idp" })],
    ["wrong audience", jws({ alg: "HS256" }, { ...good, aud: ["billing"] })],
  ];
  for (const [why, token] of declined) assert.equal(f.verify(token, "HS256", NOW), null, why);
  // Within the tolerance, and an audience list with ours in it, pass.
  assert.notEqual(
    f.verify(jws({ alg: "HS256" }, { ...good, exp: NOW - 4, nbf: NOW + 4 }), "HS256", NOW),
    null,
  );
  assert.notEqual(f.verify(jws({ alg: "HS256" }, { ...good, aud: ["x", "rt"] }), "HS256", NOW), null);
});

/** What a verifier says, without the expiry's exact millisecond (both read the same token). */
function outcome(r: VerifyResult) {
  return r.ok
    ? { ok: true, user: r.user, claims: r.claims, exp: r.expiresAtMs }
    : { ok: false, reason: r.reason };
}

test("property: with the fast path or without it, every token gets the same verdict", async () => {
  const env = { RT_JWT_SECRET: SECRET, RT_JWT_ISSUER: "https://idp", RT_JWT_AUDIENCE: "rt,ops" };
  const fast = createVerifier(readAuthConfig(env));
  const jose = createVerifier(readAuthConfig(env), { fastHmac: false });
  const near = fc.integer({ min: -90, max: 90 }).map((d) => NOW + d);
  // Mostly what a valid token has, so both verdicts come up often.
  const mostly = <T>(good: fc.Arbitrary<T>, ...other: fc.Arbitrary<unknown>[]) =>
    fc.oneof(
      { arbitrary: good as fc.Arbitrary<unknown>, weight: 5 },
      ...other.map((arbitrary) => ({ arbitrary, weight: 1 })),
      { arbitrary: fc.constant(undefined), weight: 1 },
    );
  const payload = fc.record({
    sub: mostly(fc.constant("alice"), fc.constantFrom("", "a b", "x".repeat(129)), fc.integer()),
    exp: mostly(fc.integer({ min: NOW + 60, max: NOW + 600 }), near, fc.constant("soon")),
    nbf: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: near, weight: 1 }),
    iat: mostly(fc.constant(NOW), near, fc.constant("then")),
    iss: mostly(fc.constant("https://idp"), fc.constant("https://evil")),
    aud: mostly(
      fc.constantFrom("rt", "ops"),
      fc.constant("billing"),
      fc.array(fc.constantFrom("rt", "x", 7)),
    ),
    extra: fc.option(fc.string(), { nil: undefined }),
  });
  const header = fc.oneof(
    { arbitrary: fc.constant<unknown>({ alg: "HS256" }), weight: 4 },
    { arbitrary: fc.constant<unknown>({ alg: "HS256", typ: "JWT", kid: "k" }), weight: 2 },
    { arbitrary: fc.constant<unknown>({ alg: "HS256", crit: ["exp"], exp: 1 }), weight: 1 },
    { arbitrary: fc.constant<unknown>({ alg: "HS256", b64: false, crit: ["b64"] }), weight: 1 },
    { arbitrary: fc.constant<unknown>({ alg: "HS256", x5u: "https://x" }), weight: 1 },
  );
  const mangle = fc.oneof(
    { arbitrary: fc.constant("none"), weight: 6 },
    {
      arbitrary: fc.constantFrom("wrong-secret", "flip-signature", "pad", "append", "payload-not-object"),
      weight: 3,
    },
  );
  let accepted = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(header, payload, mangle, async (h, p, m) => {
      const clean = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
      let token =
        m === "wrong-secret"
          ? jws(h, clean, "another-secret-of-at-least-32-bytes!")
          : jws(h, m === "payload-not-object" ? "[1]" : clean);
      if (m === "flip-signature") token = token.slice(0, -2) + (token.endsWith("AA") ? "BB" : "AA");
      if (m === "pad") token += "=";
      if (m === "append") token += "Q";
      const [a, b] = await Promise.all([fast.verify(token), jose.verify(token)]);
      assert.deepEqual(outcome(a), outcome(b), token);
      if (a.ok) accepted += 1;
      else refused += 1;
    }),
    { numRuns: 400 },
  );
  // Both verdicts were exercised (the weights make each common).
  assert.ok(accepted > 20 && refused > 20, `accepted ${accepted}, refused ${refused}`);
});
