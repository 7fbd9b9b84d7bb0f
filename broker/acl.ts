/**
 * Authorization: which topics a client may publish to and which filters it may
 * subscribe to. Rules come from the ACL setting (parsed and checked by
 * readConfig: parseAcl) or from a token's claims; in a pattern, %c stands for
 * the client id and %u for the principal's name (the user name a password was
 * checked for, a token's identity, ...). `$SYS/` is read-only to clients
 * whatever the rules say.
 */
import { topicMatches, validateTopicFilter } from "../mqtt/index.ts";

export interface AclRules {
  publish: string[];
  subscribe: string[];
}

/** One entry of the ACL setting: rules for a user, for "anonymous", or for "*" (everyone). */
export interface AclEntry extends AclRules {
  user: string;
}

export interface Principal {
  clientId: string;
  username?: string;
  /** Rules from a token: they replace the configured ones for this client. */
  rules?: AclRules;
}

/**
 * Whether an identity may stand in a pattern. One holding a wildcard or a level
 * separator would widen it (client id "#" turns "devices/%c/#" into every
 * device's topics), one starting with "$" would move a pattern that starts with
 * it into the `$` topics (client id "$SYS" and "%c/#"), and the empty one would
 * leave an empty level: such an identity matches nothing, as in Mosquitto.
 */
export function substitutable(identity: string | undefined): identity is string {
  if (identity === undefined || identity === "" || identity.startsWith("$")) return false;
  return !/[+#/]/.test(identity) && !identity.includes("\u0000");
}

/**
 * Substitutes %c and %u in one pass over the pattern, so that an identity is
 * never read again as a pattern (client id "%u" stays the text "%u"); undefined
 * when an identity the pattern names cannot stand in it (it then matches nothing).
 */
export function expand(pattern: string, p: Principal): string | undefined {
  let refused = false;
  const out = pattern.replace(/%[cu]/g, (placeholder) => {
    const identity = placeholder === "%c" ? p.clientId : p.username;
    if (!substitutable(identity)) {
      refused = true;
      return "";
    }
    return identity;
  });
  return refused ? undefined : out;
}

/** Whether every topic `filter` matches is also matched by `pattern`. */
export function filterCovers(pattern: string, filter: string): boolean {
  // MQTT-4.7.2-1: a leading wildcard never reaches '$' topics, so it grants none.
  if (filter.startsWith("$") && (pattern.startsWith("+") || pattern.startsWith("#"))) return false;
  const p = pattern.split("/");
  const f = filter.split("/");
  for (let i = 0; i < p.length; i++) {
    const pl = p[i];
    if (pl === "#") return true;
    const fl = f[i];
    if (fl === undefined) return false;
    if (fl === "#") return false;
    if (pl === "+") continue;
    if (fl === "+" || pl !== fl) return false;
  }
  return p.length === f.length;
}

/** Why `pattern` cannot be an ACL pattern (a topic filter, %c and %u standing in levels), or null. */
export function aclPatternProblem(pattern: unknown): string | null {
  if (typeof pattern !== "string") return "a pattern is a string";
  // Checked with the placeholders as they are: each stands for a plain identity.
  return validateTopicFilter(pattern);
}

/** Entries of the ACL setting at most (each publish and subscribe is checked against all of them). */
export const MAX_ACL_ENTRIES = 1_000;

const ENTRY_KEYS = new Set(["user", "publish", "subscribe"]);

/**
 * Reads the ACL setting: undefined when it is unset (every topic open but
 * `$SYS/`), else its entries; every problem found, each naming its entry. A
 * malformed entry refuses the whole configuration (ConfigError), never a
 * guess: a `publish` given as the string "carol/#" is not spread into one
 * pattern per character.
 */
export function parseAcl(text: string | undefined): { entries: AclEntry[] | undefined; problems: string[] } {
  if (text === undefined || text.trim() === "") return { entries: undefined, problems: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { entries: undefined, problems: [`ACL is not JSON: ${(err as Error).message}`] };
  }
  if (!Array.isArray(raw)) return { entries: undefined, problems: ["ACL must be a JSON array of entries"] };
  if (raw.length > MAX_ACL_ENTRIES)
    return { entries: undefined, problems: [`ACL has ${raw.length} entries; at most ${MAX_ACL_ENTRIES}`] };
  const entries: AclEntry[] = [];
  const problems: string[] = [];
  raw.forEach((e: unknown, i) => {
    const parsed = parseEntry(e, i);
    if (typeof parsed === "string") problems.push(parsed);
    else entries.push(parsed);
  });
  return { entries, problems };
}

function parseEntry(e: unknown, i: number): AclEntry | string {
  if (typeof e !== "object" || e === null || Array.isArray(e))
    return `ACL[${i}] must be an object { user, publish, subscribe }`;
  const o = e as Record<string, unknown>;
  const at = typeof o.user === "string" ? `ACL[${i}] (user ${JSON.stringify(o.user)})` : `ACL[${i}]`;
  for (const key of Object.keys(o))
    if (!ENTRY_KEYS.has(key)) return `${at}: unknown key ${JSON.stringify(key)} (user, publish, subscribe)`;
  if (typeof o.user !== "string" || o.user === "") return `${at}: user must be a name, "anonymous" or "*"`;
  const lists: AclRules = { publish: [], subscribe: [] };
  for (const side of ["publish", "subscribe"] as const) {
    const list = o[side];
    if (list === undefined) continue;
    if (!Array.isArray(list))
      return `${at}: ${side} must be a list of topic filters, not ${JSON.stringify(list)}`;
    for (const pattern of list) {
      const problem = aclPatternProblem(pattern);
      if (problem !== null)
        return `${at}: ${side} pattern ${JSON.stringify(pattern)} is not valid (${problem})`;
      lists[side].push(pattern as string);
    }
  }
  return { user: o.user, ...lists };
}

export class Acl implements AclSource {
  /** undefined: no ACL configured, everything allowed but writing to $SYS. */
  private readonly entries: readonly AclEntry[] | undefined;

  /** `entries`: the ACL setting as parseAcl read it (BrokerConfig.acl). */
  constructor(entries: readonly AclEntry[] | undefined) {
    this.entries = entries;
  }

  private rulesFor(p: Principal): AclRules | null {
    if (p.rules !== undefined) return p.rules;
    if (this.entries === undefined) return null;
    const who = p.username ?? "anonymous";
    const publish: string[] = [];
    const subscribe: string[] = [];
    for (const e of this.entries) {
      if (e.user !== "*" && e.user !== who) continue;
      publish.push(...e.publish);
      subscribe.push(...e.subscribe);
    }
    return { publish, subscribe };
  }

  canPublish(p: Principal, topic: string): boolean {
    if (topic === "$SYS" || topic.startsWith("$SYS/")) return false;
    const rules = this.rulesFor(p);
    if (rules === null) return true;
    return rules.publish.some((pattern) => {
      const x = expand(pattern, p);
      return x !== undefined && topicMatches(x, topic);
    });
  }

  canSubscribe(p: Principal, filter: string): boolean {
    const rules = this.rulesFor(p);
    if (rules === null) return true;
    return rules.subscribe.some((pattern) => {
      const x = expand(pattern, p);
      return x !== undefined && filterCovers(x, filter);
    });
  }
}

/**
 * Where authorization decisions come from, as the Gateway asks them: an
 * asynchronous seam (Aedes' authorizePublish/authorizeSubscribe), so that a
 * source may look rules up elsewhere. The broker's own is `Acl`: a token's
 * claims when the principal carries rules, else the ACL setting.
 */
export interface AclSource {
  canPublish(p: Principal, topic: string): boolean | Promise<boolean>;
  canSubscribe(p: Principal, filter: string): boolean | Promise<boolean>;
}
