/**
 * Statistics cost one collection (G + S calls) per interval, whoever asks and
 * however often (broker/stats-cache.ts, used by the StatsHub).
 */
import { describe, expect, it } from "vitest";
import { StatsCache } from "../../broker/stats-cache.ts";

describe("one collection per interval", () => {
  it("50 gateways asking for $SYS within an interval, and the API polled 20 times, make one collection", async () => {
    let collections = 0;
    const cache = new StatsCache(async () => {
      collections++;
      await new Promise((r) => setTimeout(r, 5));
      return collections;
    });
    // Concurrent askers share the collection under way.
    const answers = await Promise.all(Array.from({ length: 50 }, () => cache.get(10_000)));
    expect(new Set(answers)).toEqual(new Set([1]));
    for (let i = 0; i < 20; i++) expect(await cache.get(10_000)).toBe(1);
    expect(collections).toBe(1);
  });

  it("collects again once the last collection is older than the asker allows", async () => {
    let collections = 0;
    const cache = new StatsCache(async () => ++collections);
    const t0 = Date.now();
    expect(await cache.get(1_000, t0)).toBe(1);
    expect(await cache.get(1_000, t0 + 999)).toBe(1);
    expect(await cache.get(1_000, t0 + 60_000)).toBe(2);
  });

  it("a failed collection is not kept: the next asker collects", async () => {
    let calls = 0;
    const cache = new StatsCache(async () => {
      calls++;
      if (calls === 1) throw new Error("a gateway did not answer");
      return calls;
    });
    await expect(cache.get(10_000)).rejects.toThrow("a gateway did not answer");
    expect(await cache.get(10_000)).toBe(2);
  });
});

describe("an asker that allows no age", () => {
  it("gets a collection started after it asked, not one already under way (which may predate what it counts)", async () => {
    let collections = 0;
    const releases: Array<() => void> = [];
    const cache = new StatsCache(async () => {
      const n = ++collections;
      await new Promise<void>((r) => releases.push(r));
      return n;
    });
    const t0 = Date.now();
    const early = cache.get(10_000, t0);
    // Asked 5 ms after the first collection began: it needs a collection of its own.
    const fresh = cache.get(0, t0 + 5);
    // Asked at the same moment as that one: it shares it.
    const twin = cache.get(0, t0 + 5);
    for (const release of releases) release();
    expect(await early).toBe(1);
    expect(await fresh).toBe(2);
    expect(await twin).toBe(2);
    expect(collections).toBe(2);
    // The later collection is what the cache keeps.
    expect(await cache.get(10_000, t0 + 6)).toBe(2);
  });
});
