/** Rules (broker/rules.ts): what RULES accepts and refuses, conditions, and what is sent. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readConfig } from "../../broker/config.ts";
import type { Message } from "../../broker/message.ts";
import { MAX_RULES, meets, parseRules, render } from "../../broker/rules.ts";

const queueRule = { name: "r", filter: "a/#", target: { kind: "queue", binding: "Q" } };
const parse = (rules: unknown) => parseRules(JSON.stringify(rules));
const bytes = (s: string) => new TextEncoder().encode(s);

describe("parseRules", () => {
  it("accepts a rule of each target kind, with defaults", () => {
    const { rules, problems } = parse([
      queueRule,
      { name: "w", filter: "b/+", target: { kind: "webhook", url: "https://example.com/in", secret: "S" } },
      {
        name: "s",
        filter: "#",
        shape: "envelope",
        target: { kind: "service", binding: "SVC", path: "/mqtt" },
      },
    ]);
    expect(problems).toEqual([]);
    expect(rules.map((r) => [r.name, r.shape, r.target.kind])).toEqual([
      ["r", "payload", "queue"],
      ["w", "payload", "webhook"],
      ["s", "envelope", "service"],
    ]);
  });

  it("names the rule and what is wrong, for every rule that cannot work", () => {
    const { problems } = parse([
      { ...queueRule, name: "bad filter", filter: "a/#/b" },
      { ...queueRule, name: "f", filter: "a/b#" },
      { ...queueRule, name: "sh", filter: "$share/g/a" },
      { ...queueRule, name: "op", where: [{ field: "x", op: "~", value: 1 }] },
      { ...queueRule, name: "lt", where: [{ field: "x", op: "<", value: true }] },
      { ...queueRule, name: "kind", target: { kind: "ftp" } },
      { ...queueRule, name: "url", target: { kind: "webhook", url: "ftp://x" } },
      { ...queueRule, name: "nobind", target: { kind: "queue" } },
      { ...queueRule, name: "win", target: { kind: "r2", binding: "B", windowSeconds: 0 } },
      { ...queueRule, name: "tbl", target: { kind: "d1", binding: "DB", table: "x; DROP TABLE y" } },
      { ...queueRule, name: "d1shape", shape: "payload", target: { kind: "d1", binding: "DB", table: "t" } },
      queueRule,
      queueRule,
    ]);
    expect(problems).toEqual([
      'RULES[0]: name must be 1 to 64 letters, digits, "-" or "_"',
      'rule "f": filter "a/b#" is not valid (\'#\' must be the whole last level (MQTT-4.7.1-2))',
      'rule "sh": filter cannot be a shared subscription',
      'rule "op": op must be one of == != < <= > >= exists',
      'rule "lt": condition on x: < compares numbers or strings',
      'rule "kind": target kind must be queue, webhook, service, r2 or d1 (got "ftp")',
      "rule \"url\": a webhook's url must be https (http only to a loopback host, for local tests): the signed body and its secret's signatures would travel in clear",
      'rule "nobind": a queue target needs binding (the producer binding\'s name)',
      'rule "win": an r2 target\'s windowSeconds is a whole number from 1 to 3600',
      'rule "tbl": a d1 target needs table, a plain table name (letters, digits, _)',
      'rule "d1shape": a d1 target takes the envelope shape',
      'RULES[12]: the name "r" is used twice',
    ]);
    expect(parseRules("{").problems[0]).toMatch(/^RULES is not JSON/);
    expect(parseRules("{}").problems).toEqual(["RULES must be a JSON array"]);
    expect(parseRules(undefined)).toEqual({ rules: [], problems: [] });
    const many = Array.from({ length: MAX_RULES + 1 }, (_, i) => ({ ...queueRule, name: `r${i}` }));
    expect(parse(many).problems).toEqual([`RULES has ${MAX_RULES + 1} entries; at most ${MAX_RULES}`]);
  });
});

describe("webhook targets", () => {
  const hook = (url: string) => parse([{ ...queueRule, target: { kind: "webhook", url } }]);
  it.each(["http://example.com/in", "http://10.0.0.1/in", "http://127.example.com/", "http://[::2]/"])(
    "refuses %s: plain http past this machine",
    (url) => {
      expect(hook(url).problems[0]).toMatch(/must be https/);
    },
  );
  it.each(["https://example.com/in", "http://127.0.0.1:8080/in", "http://localhost/in", "http://[::1]:9/in"])(
    "accepts %s",
    (url) => {
      expect(hook(url).problems).toEqual([]);
    },
  );
  it("refuses credentials in the url", () => {
    expect(hook("https://u:p@example.com/").problems[0]).toMatch(/no credentials/);
  });
});

describe("readConfig with RULES", () => {
  it("refuses a rule whose binding or secret is not there, naming it", () => {
    const rules = JSON.stringify([
      queueRule,
      { name: "w", filter: "b", target: { kind: "webhook", url: "https://x/", secret: "HOOK_SECRET" } },
    ]);
    expect(() => readConfig({ RULES: rules })).toThrow(
      'rule "r": no binding Q (declare it in wrangler.toml); rule "w": no secret HOOK_SECRET (wrangler secret put HOOK_SECRET)',
    );
    const ok = readConfig({ RULES: rules, Q: {}, HOOK_SECRET: "s" } as Parameters<typeof readConfig>[0]);
    expect(ok.rules.map((r) => r.name)).toEqual(["r", "w"]);
  });
});

describe("meets", () => {
  const doc = bytes(JSON.stringify({ value: 31, unit: "C", ok: true, sensor: { id: "s1", level: 2 } }));
  it("compares dotted fields with constants; all conditions must hold", () => {
    expect(meets([{ field: "value", op: ">", value: 30 }], doc)).toBe(true);
    expect(meets([{ field: "value", op: ">", value: 31 }], doc)).toBe(false);
    expect(meets([{ field: "sensor.id", op: "==", value: "s1" }], doc)).toBe(true);
    expect(
      meets(
        [
          { field: "sensor.level", op: "<=", value: 2 },
          { field: "ok", op: "==", value: true },
        ],
        doc,
      ),
    ).toBe(true);
    expect(meets([{ field: "unit", op: "!=", value: "C" }], doc)).toBe(false);
    expect(meets([{ field: "missing", op: "exists" }], doc)).toBe(false);
    expect(meets([{ field: "sensor", op: "exists" }], doc)).toBe(true);
    // Different types never compare: "31" is not > 30.
    expect(meets([{ field: "unit", op: ">", value: 30 }], doc)).toBe(false);
  });

  it("a payload that is not a JSON object matches no condition, and no rule without one is refused", () => {
    for (const p of ["31", "not json", "[1,2]", "null"])
      expect(meets([{ field: "x", op: "exists" }], bytes(p))).toBe(false);
    expect(meets([{ field: "x", op: "exists" }], new Uint8Array([0xff, 0xfe]))).toBe(false);
    expect(meets([], new Uint8Array([0xff]))).toBe(true);
  });
});

describe("render", () => {
  it("always gives JSON: text payloads as text, others in base64", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom("payload", "envelope"),
        (payload, shape) => {
          const m: Message = { id: "x", topic: "a/b", payload, qos: 1, retain: false, origin: "c1" };
          const out = render(shape as "payload" | "envelope", m, 0);
          const back = JSON.parse(JSON.stringify(out)) as unknown;
          const p = shape === "payload" ? back : (back as { payload: unknown }).payload;
          const decoded =
            typeof p === "string"
              ? bytes(p)
              : Uint8Array.from(atob((p as { base64: string }).base64), (c) => c.charCodeAt(0));
          expect(decoded).toEqual(payload);
        },
      ),
    );
  });

  it("an envelope carries topic, QoS, retain, client id, user properties and the time", () => {
    const m: Message = {
      id: "x",
      topic: "t",
      payload: bytes("hi"),
      qos: 2,
      retain: true,
      origin: "dev",
      properties: { userProperties: [["k", "v"]] },
    };
    expect(render("envelope", m, Date.UTC(2026, 10, 28))).toEqual({
      topic: "t",
      payload: "hi",
      qos: 2,
      retain: true,
      clientId: "dev",
      userProperties: [["k", "v"]],
      time: "2026-11-28T00:00:00.000Z",
    });
  });
});
