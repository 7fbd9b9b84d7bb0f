/**
 * A shard's route table: which destinations (gateways, sessions of offline
 * clients, bridges) want which filters, with a count of the subscriptions behind
 * each, and the members of shared subscription groups (5.0 4.8.2). Held in
 * memory for matching and in storage (`routes`, `shared_members`) across
 * restarts; a publish is matched once here, whatever the number of clients
 * behind a destination.
 */
import { log } from "../../broker/log.ts";

import type { Message } from "../../broker/message.ts";

import type { Destination } from "../../broker/routing.ts";

import { parseSubscriptionFilter, SubscriptionIndex } from "../../mqtt/index.ts";
import type { MemberRow, MovedRows, RouteRow, ShardFilters } from "../contracts.ts";

/** A shared subscription group (5.0 4.8.2): its members, and whose turn is next. */
interface ShareGroup {
  raw: string;
  members: Array<{ destination: Destination; clientId: string }>;
  next: number;
}

/** A message for one destination; for a shared group's member, it names the member and the group. */
export type Routed = (destination: Destination, message: Message) => void;

export class RouteTable {
  /** This shard's SQLite, with rows written counted. */
  private readonly sql: SqlStorage;
  /** filter → destination → number of subscriptions behind it. */
  private readonly routes = new SubscriptionIndex<number>();
  /** inner filter → share name → group. */
  private readonly shared = new SubscriptionIndex<ShareGroup>();

  /** Loads the stored routes and members. */
  constructor(sql: SqlStorage) {
    this.sql = sql;
    const rows = sql.exec<{ destination: string; filter: string; count: number }>("SELECT * FROM routes");
    for (const r of rows) this.routes.add(r.filter, r.destination, r.count);
    const members = sql.exec<{
      grp: string;
      filter: string;
      client_id: string;
      destination: string;
    }>("SELECT * FROM shared_members");
    for (const m of members) this.joinGroup(m.grp, m.filter, m.client_id, m.destination as Destination);
  }

  /** Routes held (a filter and a destination each). */
  get size(): number {
    return this.routes.size;
  }

  /** Adds one subscription per plain filter for `destination`, and the client to its shared groups. */
  subscribe(destination: Destination, req: ShardFilters): void {
    for (const filter of req.filters)
      this.putRoute({ destination, filter, count: (this.routes.get(filter, destination) ?? 0) + 1 });
    for (const raw of req.shared) {
      const { group, filter } = parseShared(raw);
      this.putMember({ grp: group, filter, client_id: req.clientId, destination });
    }
  }

  /** Removes one subscription per plain filter, and the client from its shared groups. */
  unsubscribe(destination: Destination, req: ShardFilters): void {
    const sql = this.sql;
    for (const filter of req.filters) {
      const count = (this.routes.get(filter, destination) ?? 0) - 1;
      if (count > 0) {
        this.routes.add(filter, destination, count);
        sql.exec(
          "UPDATE routes SET count = ? WHERE destination = ? AND filter = ?",
          count,
          destination,
          filter,
        );
      } else {
        this.routes.remove(filter, destination);
        sql.exec("DELETE FROM routes WHERE destination = ? AND filter = ?", destination, filter);
      }
    }
    for (const raw of req.shared) {
      const { group, filter } = parseShared(raw);
      // Only the registration made by this destination: a newer one (the client
      // moved to another gateway or its session) stays.
      if (!this.leaveGroup(group, filter, req.clientId, destination)) continue;
      sql.exec(
        "DELETE FROM shared_members WHERE grp = ? AND filter = ? AND client_id = ?",
        group,
        filter,
        req.clientId,
      );
    }
  }

  /**
   * Where a message goes: each destination with a matching filter once, and one
   * member of each matching shared group (5.0 4.8.2), named in the message's
   * target.
   */
  match(m: Message, routed: Routed): void {
    const seen = new Set<Destination>();
    this.routes.forEachMatch(m.topic, (_count, destination) => {
      const dest = destination as Destination;
      if (seen.has(dest)) return;
      seen.add(dest);
      routed(dest, m);
    });
    this.shared.forEachMatch(m.topic, (g) => {
      const member = pickMember(g);
      if (member !== undefined)
        routed(member.destination, { ...m, target: { clientId: member.clientId, filter: g.raw } });
    });
  }

  /**
   * Where a message goes that a member of a shared group left unacknowledged:
   * another member of that group. Nowhere (logged) when the group has no other
   * member, or the message was for no group.
   */
  matchAnotherMember(m: Message, routed: Routed): void {
    if (m.target === undefined) return;
    const { group, filter } = parseShared(m.target.filter);
    const g = this.shared.get(filter, group);
    const member = g === undefined ? undefined : pickMember(g, m.target.clientId);
    if (g === undefined || member === undefined) {
      log("info", "shared_message_dropped", { group, filter, reason: "no other member" });
      return;
    }
    routed(member.destination, { ...m, target: { clientId: member.clientId, filter: g.raw } });
  }

  // ---- rows handed over in a re-shard (resharding.ts) ---------------------

  /** A route by its rowid, to hand over, with its weight in a call. */
  loadRoute(id: number, into: MovedRows): number | undefined {
    const r = this.sql
      .exec<{ destination: string; filter: string; count: number }>(
        "SELECT destination, filter, count FROM routes WHERE rowid = ?",
        id,
      )
      .toArray()[0];
    if (r === undefined) return undefined;
    into.routes.push({ destination: r.destination as Destination, filter: r.filter, count: r.count });
    return 64 + 2 * (r.destination.length + r.filter.length);
  }

  /** A member by its rowid, to hand over, with its weight in a call. */
  loadMember(id: number, into: MovedRows): number | undefined {
    const m = this.sql
      .exec<{ grp: string; filter: string; client_id: string; destination: string }>(
        "SELECT grp, filter, client_id, destination FROM shared_members WHERE rowid = ?",
        id,
      )
      .toArray()[0];
    if (m === undefined) return undefined;
    into.members.push({ ...m, destination: m.destination as Destination });
    return 64 + 2 * (m.grp.length + m.filter.length + m.client_id.length + m.destination.length);
  }

  /** Deletes a route or member this shard no longer holds, from storage and from memory. */
  remove(kind: "routes" | "members", id: number): void {
    const row = this.sql
      .exec<{ destination: Destination; filter: string; grp?: string; client_id?: string }>(
        kind === "routes"
          ? "SELECT destination, filter FROM routes WHERE rowid = ?"
          : "SELECT destination, filter, grp, client_id FROM shared_members WHERE rowid = ?",
        id,
      )
      .toArray()[0];
    if (row === undefined) return;
    if (kind === "routes") this.routes.remove(row.filter, row.destination);
    else this.leaveGroup(row.grp as string, row.filter, row.client_id as string);
    this.sql.exec(`DELETE FROM ${kind === "routes" ? "routes" : "shared_members"} WHERE rowid = ?`, id);
  }

  /** Rows another shard handed over. */
  accept(moved: Pick<MovedRows, "routes" | "members">): void {
    for (const r of moved.routes) this.putRoute(r);
    for (const m of moved.members) this.putMember(m);
  }

  /** A route with its count, in memory and in storage (a subscribe, or a row handed over). */
  private putRoute(r: RouteRow): void {
    this.routes.add(r.filter, r.destination, r.count);
    this.sql.exec(
      "INSERT OR REPLACE INTO routes (destination, filter, count) VALUES (?, ?, ?)",
      r.destination,
      r.filter,
      r.count,
    );
  }

  /** A member of a shared group, in memory and in storage (a subscribe, or a row handed over). */
  private putMember(m: MemberRow): void {
    this.joinGroup(m.grp, m.filter, m.client_id, m.destination);
    this.sql.exec(
      "INSERT OR REPLACE INTO shared_members (grp, filter, client_id, destination) VALUES (?, ?, ?, ?)",
      m.grp,
      m.filter,
      m.client_id,
      m.destination,
    );
  }

  private joinGroup(group: string, filter: string, clientId: string, destination: Destination): void {
    let g = this.shared.get(filter, group);
    if (g === undefined) {
      g = { raw: `$share/${group}/${filter}`, members: [], next: 0 };
      this.shared.add(filter, group, g);
    }
    const existing = g.members.find((m) => m.clientId === clientId);
    if (existing !== undefined) existing.destination = destination;
    else g.members.push({ destination, clientId });
  }

  /** Removes a member from its group; false if it was not there (or, given one, at another destination). */
  private leaveGroup(group: string, filter: string, clientId: string, destination?: Destination): boolean {
    const g = this.shared.get(filter, group);
    const i =
      g?.members.findIndex(
        (m) => m.clientId === clientId && (destination === undefined || m.destination === destination),
      ) ?? -1;
    if (g === undefined || i < 0) return false;
    g.members.splice(i, 1);
    if (g.members.length === 0) this.shared.remove(filter, group);
    return true;
  }
}

function parseShared(raw: string): { group: string; filter: string } {
  const parsed = parseSubscriptionFilter(raw);
  if (!("filter" in parsed) || parsed.shareGroup === undefined)
    throw new Error(`not a shared subscription: ${raw}`);
  return { group: parsed.shareGroup, filter: parsed.filter };
}

/**
 * The member whose turn it is, round robin, preferring members online at a
 * gateway over sessions of offline members; never `except`.
 */
function pickMember(g: ShareGroup, except?: string): ShareGroup["members"][number] | undefined {
  const candidates = g.members.filter((m) => m.clientId !== except);
  const online = candidates.filter((m) => m.destination.startsWith("g:"));
  const pool = online.length > 0 ? online : candidates;
  if (pool.length === 0) return undefined;
  g.next = (g.next + 1) % 0x7fffffff;
  return pool[g.next % pool.length];
}
