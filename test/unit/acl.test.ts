/**
 * ACL patterns and the ACL setting (DESIGN.md, Identity): an identity put in a
 * pattern never brings a wildcard, a level or a `$` of its own, and is never read
 * again as a pattern; a malformed ACL refuses the configuration, naming the entry.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Acl, expand, parseAcl, substitutable } from "../../broker/acl.ts";
import { ConfigError, readConfig } from "../../broker/config.ts";

/** Identities from an alphabet rich in what could widen a pattern. */
const identity = fc.string({
  unit: fc.constantFrom("a", "b", "%", "c", "u", "+", "#", "/", "$", "é", "\u0000", " "),
  maxLength: 6,
});
/** A pattern level: plain, a wildcard, a placeholder, or a placeholder inside text. */
const level = fc.constantFrom("a", "dev", "+", "%c", "%u", "x%cy", "%u%c", "$a", "");
const pattern = fc
  .tuple(fc.array(level, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([levels, hash]) => [...levels, ...(hash ? ["#"] : [])].join("/"));

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

describe("expand: one pass, identities that could be patterns stand for nothing", () => {
  it("never brings in a wildcard, a level or a leading $; each placeholder becomes its identity, read once", () => {
    fc.assert(
      fc.property(pattern, identity, fc.option(identity, { nil: undefined }), (pat, clientId, username) => {
        const p = username === undefined ? { clientId } : { clientId, username };
        const out = expand(pat, p);
        const placeholders = pat.match(/%[cu]/g) ?? [];
        const used = placeholders.map((x) => (x === "%c" ? clientId : username));
        if (out === undefined) {
          expect(used.some((id) => !substitutable(id))).toBe(true);
          return;
        }
        expect(out.split("/").length).toBe(pat.split("/").length);
        expect(count(out, /[+#]/g)).toBe(count(pat, /[+#]/g));
        if (out.startsWith("$")) expect(pat.startsWith("$")).toBe(true);
        // One pass: the literal parts and the identities, in order; nothing substituted twice.
        const literal = pat.split(/%[cu]/);
        expect(out).toBe(literal.map((part, i) => part + (used[i] ?? "")).join(""));
      }),
      { numRuns: 2_000 },
    );
  });

  it("client id %u with user # gets nothing beyond its own (the reproduced bypass)", () => {
    const acl = new Acl([{ user: "*", publish: ["devices/%c/#"], subscribe: ["devices/%c/#"] }]);
    const p = { clientId: "%u", username: "#" };
    expect(acl.canSubscribe(p, "devices/#")).toBe(false);
    expect(acl.canSubscribe(p, "devices/other/#")).toBe(false);
    expect(acl.canPublish(p, "devices/other/cmd")).toBe(false);
    // Its own: the client id as text.
    expect(acl.canPublish(p, "devices/%u/cmd")).toBe(true);
    for (const user of ["+", "#"]) {
      const named = new Acl([{ user: "*", subscribe: ["users/%u/%c"], publish: [] }]);
      expect(named.canSubscribe({ clientId: "c", username: user }, "users/+/c")).toBe(false);
      expect(named.canSubscribe({ clientId: "%u", username: user }, "users/#")).toBe(false);
    }
  });

  it("an identity starting with $ does not move a pattern into the $ topics", () => {
    const acl = new Acl([{ user: "*", publish: ["%c/#"], subscribe: ["%c/#"] }]);
    expect(acl.canSubscribe({ clientId: "$SYS" }, "$SYS/#")).toBe(false);
    expect(acl.canSubscribe({ clientId: "dev" }, "dev/#")).toBe(true);
  });
});

describe("the ACL setting is parsed and checked by readConfig", () => {
  const problemsOf = (acl: unknown) => {
    try {
      readConfig({ ACL: JSON.stringify(acl) });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    return [];
  };

  it("a publish given as a string is refused, naming the entry, not spread into one pattern per character", () => {
    const problems = problemsOf([
      { user: "alice", publish: ["alice/#"] },
      { user: "carol", publish: "carol/#" },
    ]);
    expect(problems).toEqual([
      'ACL[1] (user "carol"): publish must be a list of topic filters, not "carol/#"',
    ]);
  });

  it.each([
    [[{ user: "a", publish: ["a/#"], subcribe: ["a/#"] }], 'ACL[0] (user "a"): unknown key "subcribe"'],
    [[{ user: 7, publish: ["a"] }], "ACL[0]: user must be a name"],
    [[{ publish: ["a"] }], "ACL[0]: user must be a name"],
    [[{ user: "" }], 'ACL[0] (user ""): user must be a name'],
    [[{ user: "a", subscribe: ["a/#/b"] }], 'ACL[0] (user "a"): subscribe pattern "a/#/b" is not valid'],
    [[{ user: "a", subscribe: [["a/#"]] }], 'ACL[0] (user "a"): subscribe pattern ["a/#"] is not valid'],
    [[{ user: "a", publish: ["x+"] }], 'ACL[0] (user "a"): publish pattern "x+" is not valid'],
    [["alice"], "ACL[0] must be an object"],
    [{ user: "a" }, "ACL must be a JSON array"],
    [Array.from({ length: 1_001 }, () => ({ user: "*" })), "ACL has 1001 entries; at most 1000"],
  ])("%j is refused: %s", (acl, problem) => {
    const problems = problemsOf(acl);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(problem);
  });

  it("text that is not JSON is refused", () => {
    expect(() => readConfig({ ACL: "[{user: alice}]" })).toThrow(/ACL is not JSON/);
  });

  it("a good ACL is handed over parsed, 1,000 entries at most; unset is undefined (open)", () => {
    const entries = Array.from({ length: 1_000 }, (_, i) => ({ user: `u${i}`, subscribe: [`u/${i}/#`] }));
    const config = readConfig({ ACL: JSON.stringify(entries) });
    expect(config.acl).toHaveLength(1_000);
    expect(config.acl?.[3]).toEqual({ user: "u3", publish: [], subscribe: ["u/3/#"] });
    expect(readConfig({}).acl).toBeUndefined();
    expect(parseAcl(" ").entries).toBeUndefined();
  });
});
