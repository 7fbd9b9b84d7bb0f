/** TokenBucket.waitFor (broker/rate-limit.ts): what a shaped SUBSCRIBE waits for. */
import { describe, expect, it } from "vitest";
import { TokenBucket } from "../../broker/rate-limit.ts";

describe("TokenBucket.waitFor", () => {
  it("takes the burst at once, then says how long until the next token, taking nothing meanwhile", () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.waitFor(0), b.waitFor(0), b.waitFor(0)]).toEqual([0, 0, 0]);
    expect(b.waitFor(0)).toBe(100);
    expect(b.waitFor(40)).toBe(60);
    expect(b.waitFor(100)).toBe(0);
    expect(b.waitFor(100)).toBe(100);
  });
});
