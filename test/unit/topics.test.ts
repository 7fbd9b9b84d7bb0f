/** Topic names, topic filters, shared subscriptions, and the subscription index. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseSubscriptionFilter,
  SubscriptionIndex,
  topicMatches,
  validateTopicFilter,
  validateTopicName,
} from "../../mqtt/index.ts";

describe("topic names", () => {
  it("accepts plain names, '$' names, empty levels and spaces", () => {
    for (const t of ["a", "a/b/c", "/", "/a", "a//b", "$SYS/broker/uptime", "sport/tennis player1", "é/😀"]) {
      expect(validateTopicName(t), t).toBeNull();
    }
  });
  it("refuses an empty name (MQTT-4.7.3-1)", () => {
    expect(validateTopicName("")).toMatch(/MQTT-4.7.3-1/);
  });
  it("refuses wildcards in a name (MQTT-3.3.2-2)", () => {
    for (const t of ["a/+", "#", "a/#/b", "a+b"]) expect(validateTopicName(t), t).toMatch(/MQTT-3.3.2-2/);
  });
  it("refuses a name longer than 65,535 bytes (1.5.4)", () => {
    expect(validateTopicName("é".repeat(40_000))).not.toBeNull();
  });
});

describe("topic filters", () => {
  it("accepts valid filters (4.7.1)", () => {
    for (const f of ["#", "+", "a/#", "a/+/b", "+/+", "/+", "a//#", "$SYS/#", "+/tennis/#"]) {
      expect(validateTopicFilter(f), f).toBeNull();
    }
  });
  it("refuses '#' that is not alone and last (MQTT-4.7.1-2)", () => {
    for (const f of ["a/#/b", "a#", "#/a", "a/b#"]) expect(validateTopicFilter(f), f).toMatch(/MQTT-4.7.1-2/);
  });
  it("refuses '+' that is not a whole level (MQTT-4.7.1-3)", () => {
    for (const f of ["a+", "a/+b", "++"]) expect(validateTopicFilter(f), f).toMatch(/MQTT-4.7.1-3/);
  });
  it("refuses an empty filter (MQTT-4.7.3-1)", () => {
    expect(validateTopicFilter("")).toMatch(/MQTT-4.7.3-1/);
  });
});

describe("shared subscriptions $share/{group}/{filter}", () => {
  it("parses group and filter (4.8.2)", () => {
    expect(parseSubscriptionFilter("$share/g1/a/+/c")).toEqual({ filter: "a/+/c", shareGroup: "g1" });
    expect(parseSubscriptionFilter("$share/g/#")).toEqual({ filter: "#", shareGroup: "g" });
    expect(parseSubscriptionFilter("a/b")).toEqual({ filter: "a/b" });
  });
  it("refuses a bad share name (MQTT-4.8.2-1)", () => {
    for (const f of ["$share//a", "$share/g+/a", "$share/#/a"]) {
      expect(parseSubscriptionFilter(f), f).toHaveProperty("problem");
    }
  });
  it("refuses a share with no filter (MQTT-4.8.2-2)", () => {
    expect(parseSubscriptionFilter("$share/g")).toHaveProperty("problem");
    expect(parseSubscriptionFilter("$share/g/")).toHaveProperty("problem");
    expect(parseSubscriptionFilter("$share/g/a/#/b")).toHaveProperty("problem");
  });
});

describe("topicMatches (the reference matcher)", () => {
  it.each([
    ["sport/tennis/player1/#", "sport/tennis/player1", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
    ["sport/#", "sport", true],
    ["#", "a/b/c", true],
    ["sport/tennis/+", "sport/tennis/player1", true],
    ["sport/tennis/+", "sport/tennis/player1/ranking", false],
    ["sport/+", "sport", false],
    ["sport/+", "sport/", true],
    ["+/+", "/finance", true],
    ["/+", "/finance", true],
    ["+", "/finance", false],
    ["#", "$SYS/uptime", false],
    ["+/monitor/Clients", "$SYS/monitor/Clients", false],
    ["$SYS/#", "$SYS/monitor/Clients", true],
    ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
  ])("%s matches %s: %s (4.7.1, MQTT-4.7.2-1)", (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

// Small alphabets so that random filters and topics actually meet.
const level = fc.constantFrom("a", "b", "c", "", "$x");
const topicArb = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join("/"));
const filterArb = fc
  .tuple(
    fc.array(fc.constantFrom("a", "b", "c", "", "+", "$x"), { minLength: 1, maxLength: 5 }),
    fc.boolean(),
  )
  .map(([levels, hash]) => (hash ? [...levels, "#"] : levels).join("/"));

describe("SubscriptionIndex", () => {
  it("matches exactly what the reference matcher matches", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(filterArb, fc.nat(3))),
        fc.array(topicArb, { maxLength: 10 }),
        (subs, topics) => {
          const index = new SubscriptionIndex<string>();
          for (const [f, k] of subs) index.add(f, `k${k}`, `${f}|k${k}`);
          for (const topic of topics) {
            const got = index
              .match(topic)
              .map((m) => m.value)
              .sort();
            const want = [
              ...new Set(subs.filter(([f]) => topicMatches(f, topic)).map(([f, k]) => `${f}|k${k}`)),
            ].sort();
            expect(got).toEqual(want);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("stays consistent under random adds and removes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), filterArb, fc.nat(2))),
        fc.array(topicArb, { maxLength: 5 }),
        (ops, topics) => {
          const index = new SubscriptionIndex<number>();
          const model = new Map<string, number>();
          for (const [add, f, k] of ops) {
            const id = `${f}\u0001k${k}`;
            if (add) {
              expect(index.add(f, `k${k}`, 1)).toBe(!model.has(id));
              model.set(id, 1);
            } else {
              expect(index.remove(f, `k${k}`)).toBe(model.delete(id));
            }
          }
          expect(index.size).toBe(model.size);
          expect([...index.entries()].length).toBe(model.size);
          for (const topic of topics) {
            const want = [...model.keys()].filter((id) => topicMatches(id.split("\u0001")[0]!, topic)).length;
            expect(index.match(topic).length).toBe(want);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("prunes removed branches", () => {
    const index = new SubscriptionIndex<number>();
    index.add("a/b/c", "k", 1);
    index.add("a/+/#", "k", 2);
    index.remove("a/b/c", "k");
    index.remove("a/+/#", "k");
    expect(index.size).toBe(0);
    expect([...index.entries()]).toEqual([]);
    expect((index as unknown as { root: { children: unknown } }).root.children).toBeNull();
  });

  it("reports the filter of each match, and replaces a key's value", () => {
    const index = new SubscriptionIndex<number>();
    index.add("a/+", "x", 1);
    expect(index.add("a/+", "x", 2)).toBe(false);
    expect(index.match("a/b")).toEqual([{ filter: "a/+", key: "x", value: 2 }]);
    expect(index.get("a/+", "x")).toBe(2);
  });
});
