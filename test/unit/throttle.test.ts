/**
 * The failed-login budgets (docs/security.md, Failed logins), each reached exactly: a
 * source (IPv4 address, IPv6 /64), its network (IPv4 /24, IPv6 /48), and the
 * gateway's, which holds back only sources that failed lately and is drawn on
 * only by password checks, so that addresses sending bad tokens cannot lock out
 * everyone else.
 */
import { describe, expect, it } from "vitest";
import { AuthThrottle, addressKeys, MAX_TRACKED_ADDRESSES } from "../../broker/auth/throttle.ts";

const settings = { perAddress: 3, perNetwork: 5, perGateway: 100 };

describe("address keys", () => {
  it("an IPv4 address is its own source in its /24; an IPv6 one is its /64 in its /48, however written", () => {
    expect(addressKeys("198.51.100.7")).toEqual({ source: "198.51.100.7", network: "198.51.100.0/24" });
    expect(addressKeys("::ffff:198.51.100.7")).toEqual(addressKeys("198.51.100.7"));
    const a = addressKeys("2001:db8:1:2:aaaa::1");
    expect(a).toEqual({ source: "2001:db8:1:2::/64", network: "2001:db8:1::/48" });
    expect(addressKeys("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff")).toEqual(a);
    expect(addressKeys("[2001:db8:1:2::9%eth0]").source).toBe(a.source);
    expect(addressKeys("::1")).toEqual({ source: "0:0:0:0::/64", network: "0:0:0::/48" });
    expect(addressKeys("not-an-address")).toEqual({ source: "not-an-address", network: "not-an-address" });
    expect(addressKeys("1:2:3").source).toBe("1:2:3");
  });
});

describe("a source's budget", () => {
  it("an IPv4 address may fail AUTH_FAILURES_PER_MINUTE times, then waits for its budget to refill; its neighbours not", () => {
    const t = new AuthThrottle(settings, 0);
    for (let i = 0; i < 3; i++) {
      expect(t.allows("198.51.100.1", 0)).toBe(true);
      t.failed("198.51.100.1", "cheap", 0);
    }
    expect(t.allows("198.51.100.1", 0)).toBe(false);
    expect(t.allows("198.51.100.2", 0)).toBe(true);
    // 3 a minute: one more after 20 s.
    expect(t.allows("198.51.100.1", 19_999)).toBe(false);
    expect(t.allows("198.51.100.1", 20_000)).toBe(true);
  });

  it("the addresses of one IPv6 /64 share one budget; the next /64 has its own", () => {
    const t = new AuthThrottle(settings, 0);
    for (let i = 1; i <= 3; i++) t.failed(`2001:db8:0:1::${i}`, "cheap", 0);
    expect(t.allows("2001:db8:0:1:ffff::9", 0)).toBe(false);
    expect(t.allows("2001:db8:0:2::1", 0)).toBe(true);
  });
});

describe("a network's budget", () => {
  it.each([
    ["IPv4 /24", (i: number) => `203.0.113.${i}`, "203.0.114.1"],
    ["IPv6 /48", (i: number) => `2001:db8:7:${i}::1`, "2001:db8:8::1"],
  ])(
    "%s: AUTH_FAILURES_PER_MINUTE_NETWORK failures from any of its sources, then none of them is checked",
    (_, inside, outside) => {
      const t = new AuthThrottle(settings, 0);
      for (let i = 1; i <= 5; i++) {
        expect(t.allows(inside(i), 0)).toBe(true);
        t.failed(inside(i), "cheap", 0);
      }
      expect(t.allows(inside(6), 0)).toBe(false);
      expect(t.allows(outside, 0)).toBe(true);
    },
  );
});

describe("the gateway's budget", () => {
  it("holds back, once AUTH_FAILURES_PER_MINUTE_GATEWAY password checks failed, only sources that failed lately", () => {
    const t = new AuthThrottle({ perAddress: 1000, perNetwork: 1000, perGateway: 5 }, 0);
    for (let i = 0; i < 4; i++) t.failed(`10.${i}.0.1`, "password", 0);
    expect(t.allows("10.0.0.1", 0)).toBe(true);
    t.failed("10.4.0.1", "password", 0);
    // Spent: a source that failed lately waits, one that did not is checked.
    expect(t.allows("10.0.0.1", 0)).toBe(false);
    expect(t.allows("192.0.2.50", 0)).toBe(true);
    // No address at all: only the gateway's budget applies.
    expect(t.allows(undefined, 0)).toBe(false);
    expect(t.allows("10.0.0.1", 12_000)).toBe(true);
  });

  it("is not drawn on by failed tokens or challenges: 60 addresses sending bad tokens lock no one else out (the reproduced finding)", () => {
    const t = new AuthThrottle({ perAddress: 10, perNetwork: 100, perGateway: 600 }, 0);
    for (let a = 0; a < 60; a++) {
      const address = `2001:db8:${a.toString(16)}::1`;
      while (t.allows(address, 0)) t.failed(address, "cheap", 0);
    }
    expect(t.allows("2001:db8:ffff::1", 0)).toBe(true);
    expect(t.allows("192.0.2.1", 0)).toBe(true);
  });

  it("even when password checks spend it, a valid login from a source with no failure on record is checked", () => {
    const t = new AuthThrottle({ perAddress: 10, perNetwork: 100, perGateway: 600 }, 0);
    for (let a = 0; a < 60; a++) {
      const address = `2001:db8:${a.toString(16)}::1`;
      while (t.allows(address, 0)) t.failed(address, "password", 0);
    }
    expect(t.allows("2001:db8:0::1", 0)).toBe(false);
    expect(t.allows("192.0.2.1", 0)).toBe(true);
  });
});

describe("memory", () => {
  it("tracks at most MAX_TRACKED_ADDRESSES sources and networks, forgetting the least recently failed", () => {
    const t = new AuthThrottle({ perAddress: 1, perNetwork: 1e6, perGateway: 1e9 }, 0);
    const address = (i: number) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`;
    for (let i = 0; i < MAX_TRACKED_ADDRESSES + 50; i++) t.failed(address(i), "cheap", 0);
    expect(t.tracked.sources).toBe(MAX_TRACKED_ADDRESSES);
    expect(t.tracked.networks).toBeLessThanOrEqual(MAX_TRACKED_ADDRESSES);
    expect(t.allows(address(MAX_TRACKED_ADDRESSES + 49), 0)).toBe(false);
    expect(t.allows(address(0), 0)).toBe(true);
  });
});
