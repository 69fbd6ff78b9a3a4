/**
 * The upgrade's admission bookkeeping (gateway/admission.ts): the Origin allowlist, the client
 * key connections are counted under, the per-key counter, and the pending-socket bound. Plus the
 * configuration that feeds them (gateway/config.ts readAdmissionConfig).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ConfigError } from "../../common/env.ts";
import {
  ConnectionCounter,
  PendingSockets,
  canonicalOrigin,
  clientKey,
  originAllowed,
} from "../../gateway/admission.ts";
import { readAdmissionConfig } from "../../gateway/config.ts";

// A 31-bit seed, so the one printed here is the one fast-check reports on failure.
const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`admission-prop.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

test("canonical origins: scheme://host[:port] exactly as browsers send them", () => {
  for (const ok of [
    "https://app.example.com",
    "http://localhost:3000",
    "https://[::1]:8443",
    "http://127.0.0.1",
  ]) {
    assert.equal(canonicalOrigin(ok), ok);
  }
  for (const bad of [
    "https://app.example.com/",
    "https://app.example.com/path",
    "https://APP.example.com",
    "https://app.example.com:443",
    "https://user@app.example.com",
    "app.example.com",
    "ws://app.example.com",
    "file:///tmp",
    "null",
    "*.example.com",
    "",
  ]) {
    assert.equal(canonicalOrigin(bad), undefined, bad);
  }
});

test("originAllowed: no Origin (native clients) passes; a list matches exactly; null only with *", () => {
  const list = ["https://app.example.com", "http://localhost:3000"];
  assert.ok(originAllowed(list, ""));
  assert.ok(originAllowed(list, "https://app.example.com"));
  assert.ok(originAllowed(list, "http://localhost:3000"));
  for (const other of [
    "https://evil.example.com",
    "https://app.example.com.evil.com",
    "http://app.example.com",
    "https://app.example.com:444",
    "null",
    "HTTPS://APP.EXAMPLE.COM",
  ]) {
    assert.ok(!originAllowed(list, other), other);
  }
  assert.ok(originAllowed("*", "null"));
  assert.ok(originAllowed("*", "https://anything.example"));
});

test("RT_GATEWAY_ALLOWED_ORIGINS and the limits are validated, naming the variable", () => {
  assert.deepEqual(readAdmissionConfig({}), {
    allowedOrigins: "*",
    maxConnectionsPerIp: 1000,
    maxUnauthenticated: 10000,
  });
  const c = readAdmissionConfig({
    RT_GATEWAY_ALLOWED_ORIGINS: "https://a.example, https://b.example:8443,https://a.example",
    RT_MAX_CONNECTIONS_PER_IP: "3",
    RT_MAX_UNAUTHENTICATED: "7",
  });
  assert.deepEqual(c.allowedOrigins, ["https://a.example", "https://b.example:8443"]);
  assert.equal(c.maxConnectionsPerIp, 3);
  assert.equal(c.maxUnauthenticated, 7);
  const bad: [string, string][] = [
    ["RT_GATEWAY_ALLOWED_ORIGINS", "https://a.example/"],
    ["RT_GATEWAY_ALLOWED_ORIGINS", "*,https://a.example"],
    ["RT_GATEWAY_ALLOWED_ORIGINS", "a.example"],
    ["RT_MAX_CONNECTIONS_PER_IP", "0"],
    ["RT_MAX_UNAUTHENTICATED", "many"],
  ];
  for (const [name, value] of bad) {
    assert.throws(
      () => readAdmissionConfig({ [name]: value }),
      (e: unknown) => e instanceof ConfigError && e.variable === name,
      `${name}=${value}`,
    );
  }
});

test("clientKey: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64", () => {
  assert.equal(clientKey("127.0.0.1"), "127.0.0.1");
  assert.equal(clientKey("0000:0000:0000:0000:0000:ffff:7f00:0001"), "127.0.0.1");
  assert.equal(clientKey("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(clientKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(clientKey("2001:0DB8:0001:0002:ffff:0:0:1"), "2001:db8:1:2::/64");
  assert.equal(clientKey("2001:db8:1:2::9"), "2001:db8:1:2::/64");
  assert.equal(clientKey("0000:0000:0000:0000:0000:0000:0000:0001"), "0:0:0:0::/64");
  assert.equal(clientKey("::1"), "0:0:0:0::/64");
  // Not an address: counted under itself (never merged with a real one, never a throw).
  for (const odd of ["", "garbage", "1:2:3", "1::2::3", "::ffff:300.1.1.1", "g::1"]) {
    assert.equal(clientKey(odd), odd.toLowerCase());
  }
});

test("clientKey: every spelling of one IPv6 address, and every host of one /64, share a key", () => {
  const group = fc.integer({ min: 0, max: 0xffff });
  fc.assert(
    fc.property(
      fc.array(group, { minLength: 8, maxLength: 8 }),
      fc.array(group, { minLength: 4, maxLength: 4 }),
      (g, host) => {
        fc.pre(!(g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff));
        const full = g.map((x) => x.toString(16).padStart(4, "0")).join(":");
        const short = g.map((x) => x.toString(16)).join(":");
        const sameNet = [...g.slice(0, 4), ...host].map((x) => x.toString(16)).join(":");
        const key = clientKey(full);
        assert.equal(clientKey(short), key);
        assert.equal(clientKey(full.toUpperCase()), key);
        assert.equal(clientKey(sameNet), key);
        // A zero run compressed with :: is the same address.
        const zeroAt = g.indexOf(0);
        if (zeroAt >= 0) {
          const compressed = `${g
            .slice(0, zeroAt)
            .map((x) => x.toString(16))
            .join(":")}::${g
            .slice(zeroAt + 1)
            .map((x) => x.toString(16))
            .join(":")}`;
          assert.equal(clientKey(compressed), key, compressed);
        }
      },
    ),
    { seed, numRuns: 2_000 },
  );
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 60 }), (s) => {
      assert.equal(typeof clientKey(s), "string");
    }),
    { seed, numRuns: 5_000 },
  );
});

test("ConnectionCounter: at most max per key, released slots are reusable, empty keys forgotten", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.tuple(fc.boolean(), fc.constantFrom("a", "b", "c")), { maxLength: 200 }),
      (max, ops) => {
        const counter = new ConnectionCounter(max);
        const model = new Map<string, number>();
        for (const [add, key] of ops) {
          const n = model.get(key) ?? 0;
          if (add) {
            assert.equal(counter.tryAdd(key), n < max);
            if (n < max) model.set(key, n + 1);
          } else if (n > 0) {
            counter.remove(key);
            if (n === 1) model.delete(key);
            else model.set(key, n - 1);
          } else {
            assert.throws(() => counter.remove(key), /no connections/);
          }
          assert.equal(counter.count(key), model.get(key) ?? 0);
          assert.equal(counter.keys, model.size);
        }
      },
    ),
    { seed, numRuns: 1_000 },
  );
});

test("PendingSockets: counts until the bound, then sweeps out live items, at most once per interval", () => {
  const live = new Set<number>();
  let checks = 0;
  const pending = new PendingSockets<number>((n) => {
    checks += 1;
    return !live.has(n);
  }, 100);
  for (let i = 0; i < 5; i++) pending.add(i);
  assert.equal(pending.full(10, 0, 0), false);
  assert.equal(checks, 0, "no scan below the bound");
  assert.equal(pending.full(5, 0, 0), true, "five pending of five");
  assert.equal(checks, 5);
  live.add(0).add(1);
  // Within the sweep interval: the old count stands, and nothing is scanned.
  assert.equal(pending.full(5, 0, 50), true);
  assert.equal(checks, 5);
  assert.equal(pending.full(5, 0, 100), false, "two went live");
  assert.equal(pending.size, 3);
  // Upgrades being verified count against the bound too.
  assert.equal(pending.full(5, 2, 300), true);
  pending.delete(2);
  assert.equal(pending.full(5, 2, 300), false);
});
