/**
 * Authorization: which topics a client may publish to and which filters it may
 * subscribe to. Rules come from the ACL setting or from a token's claims; in a
 * pattern, %c stands for the client id and %u for the principal's name (the user
 * name a password was checked for, a token's identity, ...). `$SYS/` is read-only
 * to clients whatever the rules say.
 */
import { topicMatches } from "../mqtt/index.ts";

export interface AclRules {
  publish: string[];
  subscribe: string[];
}

/** One entry of the ACL setting: rules for a user, for "anonymous", or for "*" (everyone). */
export interface AclEntry extends Partial<AclRules> {
  user: string;
}

export interface Principal {
  clientId: string;
  username?: string;
  /** Rules from a token: they replace the configured ones for this client. */
  rules?: AclRules;
}

/**
 * Whether an identity may stand in a pattern: one holding a wildcard or a level
 * separator would widen it (client id "#" turns "devices/%c/#" into every
 * device's topics), so it matches nothing, as in Mosquitto.
 */
function substitutable(identity: string | undefined): identity is string {
  return identity !== undefined && identity !== "" && !/[+#/]/.test(identity);
}

/** Substitutes %c and %u; a pattern naming an identity that cannot stand in it matches nothing. */
function expand(pattern: string, p: Principal): string | undefined {
  if (pattern.includes("%c") && !substitutable(p.clientId)) return undefined;
  if (pattern.includes("%u") && !substitutable(p.username)) return undefined;
  return pattern.replaceAll("%c", p.clientId).replaceAll("%u", p.username ?? "");
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

export class Acl {
  /** null: no ACL configured, everything allowed but writing to $SYS. */
  private readonly entries: AclEntry[] | null;

  constructor(setting: string | undefined) {
    this.entries =
      setting === undefined || setting.trim() === "" ? null : (JSON.parse(setting) as AclEntry[]);
  }

  private rulesFor(p: Principal): AclRules | null {
    if (p.rules !== undefined) return p.rules;
    if (this.entries === null) return null;
    const who = p.username ?? "anonymous";
    const publish: string[] = [];
    const subscribe: string[] = [];
    for (const e of this.entries) {
      if (e.user !== "*" && e.user !== who) continue;
      publish.push(...(e.publish ?? []));
      subscribe.push(...(e.subscribe ?? []));
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
