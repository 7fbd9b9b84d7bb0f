/**
 * Where topics live and where rows go when the layout changes (DESIGN.md,
 * "Re-sharding"): the jump hash moves only what must move, and the shards'
 * separate decisions hand every row to each of its new holders exactly once.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { holdersOf, moveOf, type Place } from "../../broker/placement.ts";
import { fnv1a, jumpHash, type Layout, shardOf, shardsForFilter } from "../../broker/routing.ts";

const layout = fc.record({
  hash: fc.constantFrom<Layout["hash"]>("jump", "modulo"),
  shards: fc.integer({ min: 1, max: 12 }),
  levels: fc.integer({ min: 1, max: 3 }),
});
const level = fc.constantFrom("a", "b", "c", "dev", "x1", "", "+");
const topicLevel = level.filter((l) => l !== "+");
const topic = fc.array(topicLevel, { minLength: 1, maxLength: 4 }).map((l) => l.join("/"));
const filter = fc
  .tuple(fc.array(level, { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, "#"] : levels).join("/"));
const place: fc.Arbitrary<Place> = fc.oneof(
  topic.map((t) => ({ topic: t })),
  filter.map((f) => ({ filter: f })),
  fc.constant({ filter: "#" }),
);

describe("jumpHash", () => {
  it("with one shard more, a key stays or moves to the new shard, never between old ones", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 300 }), (key, n) => {
        const before = jumpHash(key, n);
        const after = jumpHash(key, n + 1);
        expect(before).toBeGreaterThanOrEqual(0);
        expect(before).toBeLessThan(n);
        expect([before, n]).toContain(after);
      }),
    );
  });

  it("spreads topics evenly, and going from 4 to 8 shards moves about half of them", () => {
    const four: Layout = { hash: "jump", shards: 4, levels: 1 };
    const eight: Layout = { hash: "jump", shards: 8, levels: 1 };
    const counts = new Array(8).fill(0);
    let moved = 0;
    const n = 40_000;
    for (let i = 0; i < n; i++) {
      const t = `device-${i}/telemetry`;
      const s = shardOf(t, eight);
      counts[s]++;
      if (s !== shardOf(t, four)) moved++;
    }
    for (const c of counts) expect(Math.abs(c - n / 8)).toBeLessThan(n / 8 / 10);
    // Exactly the topics that land on shards 4–7 move: half, give or take.
    expect(moved / n).toBeGreaterThan(0.47);
    expect(moved / n).toBeLessThan(0.53);
  });

  it("with one shard, everything is in shard 0 whatever the hash", () => {
    for (const hash of ["jump", "modulo"] as const) {
      expect(shardOf("any/topic", { hash, shards: 1, levels: 2 })).toBe(0);
      expect(shardsForFilter("+/x", { hash, shards: 1, levels: 1 })).toEqual([0]);
    }
    expect(fnv1a("a") % 4).toBe(shardOf("a/b", { hash: "modulo", shards: 4, levels: 1 }));
  });
});

describe("moveOf", () => {
  it("together the old holders give every new holder one copy, and keep none elsewhere", () => {
    fc.assert(
      fc.property(place, layout, layout, (p, from, to) => {
        const before = holdersOf(p, from);
        const after = holdersOf(p, to);
        const copies = new Map<number, number>();
        const kept: number[] = [];
        for (const self of before) {
          const { keep, sendTo } = moveOf(p, self, from, to);
          if (keep) kept.push(self);
          for (const s of sendTo) copies.set(s, (copies.get(s) ?? 0) + 1);
        }
        // A shard keeps its copy exactly when the new layout places the row there.
        expect(kept.sort((a, b) => a - b)).toEqual(
          before.filter((s) => after.includes(s)).sort((a, b) => a - b),
        );
        // Every other new holder receives exactly one copy; nobody else receives one.
        for (const s of after) expect(copies.get(s) ?? 0).toBe(kept.includes(s) ? 0 : 1);
        for (const s of copies.keys()) expect(after).toContain(s);
      }),
      { numRuns: 2_000 },
    );
  });

  it("a row a shard holds outside its old place still reaches every new holder", () => {
    const from: Layout = { hash: "jump", shards: 4, levels: 1 };
    const to: Layout = { hash: "jump", shards: 8, levels: 1 };
    const p = { topic: "stray/topic" };
    const stray = [0, 1, 2, 3].find((s) => !holdersOf(p, from).includes(s)) as number;
    const { keep, sendTo } = moveOf(p, stray, from, to);
    const [home] = holdersOf(p, to);
    expect(keep).toBe(home === stray);
    expect(sendTo).toEqual(home === stray ? [] : [home]);
  });
});
