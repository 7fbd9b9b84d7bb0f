/**
 * Rules: what leaves the broker for other systems (README, Integrations). A rule
 * names a topic filter, an optional condition on the payload, the shape of what
 * is sent, and a target. Rules are set in `RULES` (JSON) and checked when the
 * configuration is read: a rule that cannot work refuses the whole configuration,
 * with a sentence naming the rule and what is wrong.
 *
 * The condition language: `where` is a list of comparisons that must all hold,
 * each a dotted path into the payload read as JSON (`"sensor.temp"`), an operator
 * and a constant: `==`, `!=` (any JSON constant), `<`, `<=`, `>`, `>=` (numbers or
 * strings, compared as the same type only) and `exists` (no constant). A payload
 * that is not a JSON object matches no rule with a condition.
 */

import { isWellFormedUtf8, validateTopicFilter } from "../mqtt/index.ts";
import { namedListSetting, toBase64 } from "./json.ts";
import type { Message } from "./message.ts";

export type Operator = "==" | "!=" | "<" | "<=" | ">" | ">=" | "exists";
type Constant = string | number | boolean | null;

export interface Condition {
  field: string;
  op: Operator;
  value?: Constant;
}

/**
 * `payload`: the payload as it is (text when UTF-8, else base64 in an object);
 * `envelope`: a JSON object with topic, payload, QoS, retain, client id, user
 * properties and the time the broker accepted it.
 */
export type Shape = "payload" | "envelope";

export type Target =
  /** A Cloudflare Queue producer binding: `sendBatch`, 100 messages and 256 KB a call. */
  | { kind: "queue"; binding: string }
  /** An HTTP POST of a JSON array, signed with HMAC-SHA256 of a secret when `secret` names one. */
  | { kind: "webhook"; url: string; secret?: string }
  /** Another Worker through a service binding: the same POST as a webhook. */
  | { kind: "service"; binding: string; path: string }
  /**
   * An R2 bucket binding: newline-delimited JSON objects, one per shard per
   * `windowSeconds` (or 1,000 messages, whichever comes first), at
   * `<prefix>YYYY/MM/DD/HH/<shard>-<first message>.ndjson` (README, Integrations).
   */
  | { kind: "r2"; binding: string; prefix: string; windowSeconds: number }
  /** A D1 database binding: a row per message in `table` (its columns: README, Integrations). */
  | { kind: "d1"; binding: string; table: string };

/** What a rule did, counted at each shard and summed in /api/stats and /metrics. */
export interface RuleCounts {
  /** Messages that matched the rule (and its condition). */
  matched: number;
  /** Messages its target took. */
  sent: number;
  /** Sending attempts that failed (messages × attempts). */
  failed: number;
  /** QoS 1/2 messages given up after MAX_ATTEMPTS, or too large for the target or a row. */
  dead: number;
  /** QoS 0 messages dropped (memory bound, or their one attempt failed). */
  dropped: number;
  /** Waiting in the outbox now. */
  pending: number;
}

export interface Rule {
  name: string;
  filter: string;
  where: Condition[];
  shape: Shape;
  target: Target;
}

const OPERATORS: readonly Operator[] = ["==", "!=", "<", "<=", ">", ">=", "exists"];
/** Rules at most: each is matched against every publish of its shard. */
export const MAX_RULES = 64;

/** Reads `RULES`; every problem found, each naming its rule (empty: all is well). */
export function parseRules(text: string | undefined): { rules: Rule[]; problems: string[] } {
  const { items, problems } = namedListSetting("RULES", text, MAX_RULES, parseRule);
  return { rules: items, problems };
}

function parseRule(r: unknown, at: string): Rule | string {
  if (typeof r !== "object" || r === null) return `${at} must be an object`;
  const o = r as Record<string, unknown>;
  if (typeof o.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(o.name))
    return `${at}: name must be 1 to 64 letters, digits, "-" or "_"`;
  const rule = `rule "${o.name}"`;
  if (typeof o.filter !== "string") return `${rule}: filter must be a topic filter`;
  const filterProblem = validateTopicFilter(o.filter);
  if (filterProblem !== null)
    return `${rule}: filter ${JSON.stringify(o.filter)} is not valid (${filterProblem})`;
  if (o.filter.startsWith("$share/")) return `${rule}: filter cannot be a shared subscription`;
  const conditions: Condition[] = [];
  if (o.where !== undefined) {
    if (!Array.isArray(o.where)) return `${rule}: where must be a list of conditions`;
    for (const c of o.where) {
      const parsed = parseCondition(c);
      if (typeof parsed === "string") return `${rule}: ${parsed}`;
      conditions.push(parsed);
    }
  }
  const target = parseTarget(o.target);
  if (typeof target === "string") return `${rule}: ${target}`;
  // A D1 row has a column per field of the envelope: it needs them all.
  const shape = o.shape ?? (target.kind === "d1" ? "envelope" : "payload");
  if (shape !== "payload" && shape !== "envelope") return `${rule}: shape must be "payload" or "envelope"`;
  if (target.kind === "d1" && shape !== "envelope") return `${rule}: a d1 target takes the envelope shape`;
  return { name: o.name, filter: o.filter, where: conditions, shape, target };
}

function parseCondition(c: unknown): Condition | string {
  if (typeof c !== "object" || c === null) return "a condition must be an object { field, op, value }";
  const o = c as Record<string, unknown>;
  if (typeof o.field !== "string" || o.field === "") return "a condition's field must be a dotted path";
  if (!OPERATORS.includes(o.op as Operator)) return `op must be one of ${OPERATORS.join(" ")}`;
  const op = o.op as Operator;
  if (op === "exists") return { field: o.field, op };
  const v = o.value;
  const constant = v === null || ["string", "number", "boolean"].includes(typeof v);
  if (!constant) return `condition on ${o.field}: value must be a string, number, boolean or null`;
  if (
    (op === "<" || op === "<=" || op === ">" || op === ">=") &&
    typeof v !== "number" &&
    typeof v !== "string"
  )
    return `condition on ${o.field}: ${op} compares numbers or strings`;
  return { field: o.field, op, value: v as Constant };
}

function parseTarget(t: unknown): Target | string {
  if (typeof t !== "object" || t === null) return "target must be an object with a kind";
  const o = t as Record<string, unknown>;
  const binding =
    typeof o.binding === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(o.binding) ? o.binding : null;
  switch (o.kind) {
    case "queue":
      return binding === null
        ? "a queue target needs binding (the producer binding's name)"
        : { kind: "queue", binding };
    case "service":
      if (binding === null) return "a service target needs binding (the service binding's name)";
      return {
        kind: "service",
        binding,
        path: typeof o.path === "string" && o.path.startsWith("/") ? o.path : "/",
      };
    case "r2": {
      if (binding === null) return "an r2 target needs binding (the R2 bucket binding's name)";
      const prefix = o.prefix ?? "";
      if (typeof prefix !== "string" || prefix.startsWith("/") || prefix.length > 256)
        return "an r2 target's prefix is a key prefix (no leading /, at most 256 characters)";
      const window = o.windowSeconds ?? 60;
      if (typeof window !== "number" || !Number.isInteger(window) || window < 1 || window > 3600)
        return "an r2 target's windowSeconds is a whole number from 1 to 3600";
      return { kind: "r2", binding, prefix, windowSeconds: window };
    }
    case "d1": {
      if (binding === null) return "a d1 target needs binding (the D1 database binding's name)";
      if (typeof o.table !== "string" || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(o.table))
        return "a d1 target needs table, a plain table name (letters, digits, _)";
      return { kind: "d1", binding, table: o.table };
    }
    case "webhook": {
      let url: URL;
      try {
        url = new URL(String(o.url));
      } catch {
        return "a webhook target needs url (http or https)";
      }
      if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url.hostname)))
        return "a webhook's url must be https (http only to a loopback host, for local tests): the signed body and its secret's signatures would travel in clear";
      if (url.username !== "" || url.password !== "")
        return "a webhook's url carries no credentials (use secret: the body is signed)";
      if (
        o.secret !== undefined &&
        (typeof o.secret !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.secret))
      )
        return "a webhook's secret is the name of a secret (wrangler secret put NAME)";
      return o.secret === undefined
        ? { kind: "webhook", url: url.toString() }
        : { kind: "webhook", url: url.toString(), secret: o.secret as string };
    }
    default:
      return `target kind must be queue, webhook, service, r2 or d1 (got ${JSON.stringify(o.kind)})`;
  }
}

/** localhost, 127.0.0.0/8 or ::1: where an http:// webhook may go (a test's receiver on this machine). */
function isLoopback(hostname: string): boolean {
  return (
    hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/** Whether a message's payload meets every condition of `where`. */
export function meets(where: Condition[], payload: Uint8Array): boolean {
  if (where.length === 0) return true;
  if (!isWellFormedUtf8(payload)) return false;
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return false;
  }
  if (typeof doc !== "object" || doc === null) return false;
  return where.every((c) => holds(c, lookup(doc, c.field)));
}

function lookup(doc: unknown, path: string): unknown {
  let at: unknown = doc;
  for (const key of path.split(".")) {
    if (typeof at !== "object" || at === null || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

function holds(c: Condition, v: unknown): boolean {
  switch (c.op) {
    case "exists":
      return v !== undefined;
    case "==":
      return v === c.value;
    case "!=":
      return v !== undefined && v !== c.value;
    default: {
      if (typeof v !== typeof c.value || (typeof v !== "number" && typeof v !== "string")) return false;
      const a = v as number | string;
      const b = c.value as number | string;
      return c.op === "<" ? a < b : c.op === "<=" ? a <= b : c.op === ">" ? a > b : a >= b;
    }
  }
}

/** A payload in JSON: its text when it is UTF-8, else `{ base64 }`. */
export function payloadJson(payload: Uint8Array): string | { base64: string } {
  return isWellFormedUtf8(payload) ? new TextDecoder().decode(payload) : { base64: toBase64(payload) };
}

/** What a rule sends for a message, in its shape (always JSON-serializable). */
export function render(shape: Shape, m: Message, acceptedAt: number): unknown {
  const payload = payloadJson(m.payload);
  if (shape === "payload") return payload;
  return {
    topic: m.topic,
    payload,
    qos: m.qos,
    retain: m.retain,
    clientId: m.origin ?? null,
    userProperties: m.properties?.userProperties ?? [],
    time: new Date(acceptedAt).toISOString(),
  };
}
