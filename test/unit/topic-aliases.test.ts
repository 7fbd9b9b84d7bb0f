/** Topic aliases both ways within a gateway's bound (durable-objects/gateway/topic-aliases.ts). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ALIAS_BYTES,
  AliasBudget,
  aliasWeight,
  ClientAliases,
  ServerAliases,
} from "../../durable-objects/gateway/topic-aliases.ts";

const topic = (n: number, length = 10) => `t${n}`.padEnd(length, "x");

describe("AliasBudget", () => {
  it("is 4 MiB each way, an alias weighing two bytes a character and 64", () => {
    expect(ALIAS_BYTES).toBe(4 * 2 ** 20);
    expect(aliasWeight("abc")).toBe(70);
  });

  it("counts per holder; past its limit names the holder with the most, within it none", () => {
    const budget = new AliasBudget<string>(1_000);
    budget.change("a", 400);
    budget.change("b", 600);
    expect(budget.bytes).toBe(1_000);
    expect(budget.fits(0)).toBe(true);
    expect(budget.fits(1)).toBe(false);
    expect(budget.largestPast()).toBeUndefined();
    budget.change("a", 1);
    expect(budget.largestPast()).toBe("b");
    budget.release("b");
    expect(budget.bytes).toBe(401);
    expect(budget.largestPast()).toBeUndefined();
    budget.change("a", -401);
    expect(budget.bytes).toBe(0);
  });
});

describe("ClientAliases", () => {
  it("charges each mapping's topic, a change by the difference, the stored ones when first read, and gives all back at release", () => {
    const budget = new AliasBudget<string>(1e6);
    const aliases = new ClientAliases(budget, "c");
    const stored = () => new Map([[1, "abc"]]);
    expect(aliases.get(1, stored)).toBe("abc");
    expect(budget.bytes).toBe(aliasWeight("abc"));
    aliases.set(2, "a/b/c/d", stored);
    aliases.set(1, "a", stored);
    expect(budget.bytes).toBe(aliasWeight("a/b/c/d") + aliasWeight("a"));
    expect(aliases.peek(1)).toBe("a");
    aliases.release();
    expect(budget.bytes).toBe(0);
    expect(aliases.peek(1)).toBeUndefined();
    // Its connection ended: a late packet charges nothing.
    aliases.set(3, "late", stored);
    expect(aliases.get(1, stored)).toBeUndefined();
    expect(budget.bytes).toBe(0);
  });
});

describe("ServerAliases", () => {
  it("gives each new topic the next alias, then the least recently used one's", () => {
    const budget = new AliasBudget<string>(1e6);
    const aliases = new ServerAliases(budget, "c");
    expect(aliases.assign("a/1", 2)).toEqual({ alias: 1, assigned: true });
    expect(aliases.assign("a/2", 2)).toEqual({ alias: 2, assigned: true });
    expect(aliases.assign("a/1", 2)).toEqual({ alias: 1, assigned: false });
    // a/2 is the least recently used: its alias goes to a/3.
    expect(aliases.assign("a/3", 2)).toEqual({ alias: 2, assigned: true });
    expect(budget.bytes).toBe(aliasWeight("a/1") + aliasWeight("a/3"));
  });

  it("a forgotten assignment's alias is given to the next new topic, never to two topics at once", () => {
    const aliases = new ServerAliases(new AliasBudget<string>(1e6), "c");
    aliases.assign("a/1", 2);
    aliases.assign("a/2", 2);
    // a/3 takes a/1's alias 1, and its packet is not sent (too large for the client).
    expect(aliases.assign("a/3", 2)).toEqual({ alias: 1, assigned: true });
    aliases.forget("a/3");
    // Before: the next new topic got alias size + 1 = 2, a/2's too.
    expect(aliases.assign("a/4", 2)).toEqual({ alias: 1, assigned: true });
    expect(aliases.assign("a/2", 2)).toEqual({ alias: 2, assigned: false });
  });

  it("past the gateway's bound assigns none (the topic goes in full), and still uses those it has", () => {
    const budget = new AliasBudget<string>(aliasWeight(topic(1)) + aliasWeight(topic(2)));
    const aliases = new ServerAliases(budget, "c");
    expect(aliases.assign(topic(1), 10)?.alias).toBe(1);
    expect(aliases.assign(topic(2), 10)?.alias).toBe(2);
    expect(aliases.assign(topic(3), 10)).toBeUndefined();
    expect(aliases.assign(topic(1), 10)).toEqual({ alias: 1, assigned: false });
    // Another connection's aliases leave: room again.
    budget.release("other");
    const other = new ServerAliases(budget, "d");
    expect(other.assign(topic(4), 10)).toBeUndefined();
    aliases.release();
    expect(budget.bytes).toBe(0);
    expect(other.assign(topic(4), 10)).toEqual({ alias: 1, assigned: true });
    // Ended, it assigns none and charges nothing (a delivery racing its close).
    expect(aliases.assign(topic(5), 10)).toBeUndefined();
    expect(budget.bytes).toBe(aliasWeight(topic(4)));
  });

  it("whatever is assigned and forgotten: aliases within 1..max, no two topics sharing one, the bytes counted exactly", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 9 })), { maxLength: 80 }),
        (max, steps) => {
          const budget = new AliasBudget<string>(1e6);
          const aliases = new ServerAliases(budget, "c");
          // What the client maps, as it learns from the packets sent.
          const client = new Map<number, string>();
          const ours = new Map<string, number>();
          for (const [send, n] of steps) {
            const t = topic(n, 3 + n);
            const got = aliases.assign(t, max);
            if (got === undefined) throw new Error("within the bound");
            expect(got.alias).toBeGreaterThanOrEqual(1);
            expect(got.alias).toBeLessThanOrEqual(max);
            // Sent with an empty topic, it must be what the client maps the alias to.
            if (!got.assigned) expect(client.get(got.alias)).toBe(t);
            // A new assignment takes the alias from whichever topic had it.
            if (got.assigned) for (const [other, a] of ours) if (a === got.alias) ours.delete(other);
            if (send || !got.assigned) {
              if (got.assigned) client.set(got.alias, t);
              ours.set(t, got.alias);
            } else aliases.forget(t);
          }
          let bytes = 0;
          for (const t of ours.keys()) bytes += aliasWeight(t);
          expect(budget.bytes).toBe(bytes);
        },
      ),
      { numRuns: 500 },
    );
  });
});
