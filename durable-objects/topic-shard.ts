/**
 * TopicShard: for the topics that hash to it, which destinations (gateways, or
 * sessions while offline) want which filters, with counts; and the retained
 * messages. A publish is matched once here and handed to each destination in one
 * call per batch, however many clients sit behind that destination.
 */
import { DurableObject } from "cloudflare:workers";

import { KeyedBatcher } from "../broker/batcher.ts";

import { type BrokerConfig, readConfig } from "../broker/config.ts";

import { Counters } from "../broker/counters.ts";

import { log, setLogLevel, takeLogLines } from "../broker/log.ts";

import {
  assertWithinCall,
  isExpired,
  MESSAGE_BATCH,
  MESSAGE_COLUMN_DEFS,
  MESSAGE_COLUMNS,
  MESSAGE_PLACEHOLDERS,
  type Message,
  type MessageRow,
  messageBytes,
  messageToRow,
  messageValues,
  RPC_BATCH_BYTES,
  RPC_BATCH_MESSAGES,
  rowToMessage,
} from "../broker/message.ts";

import { meteredSql } from "../broker/metered-sql.ts";

import { type Migration, migrate, storedSchemaVersion } from "../broker/migrations.ts";

import type { Place } from "../broker/placement.ts";

import { type Destination, type Layout, shardIndexOf } from "../broker/routing.ts";

import type { ShardCounter, ShardStats } from "../broker/stats.ts";

import {
  hasWildcard,
  parseSubscriptionFilter,
  ReasonCode,
  SubscriptionIndex,
  topicMatches,
} from "../mqtt/index.ts";

import type { Env } from "../worker/env.ts";
import type {
  MemberRow,
  MovedRows,
  Origin,
  Plan,
  RetainedPage,
  RouteRow,
  ShardFilters,
  ShardRpc,
  SubscribeRequest,
} from "./contracts.ts";
import { bridgeStub, callSession, gatewayStub, sessionStub, shardStub } from "./stubs.ts";
import { DEPLOYMENT_SCHEMA, deploymentOrigin, recordDeployment } from "./topic-shard/deployment.ts";
import { RESHARDING_SCHEMA, Resharding, type RowKind, type ShardRows } from "./topic-shard/resharding.ts";
import { RULES_SCHEMA, RuleOutbox } from "./topic-shard/rule-outbox.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS routes (
  destination TEXT NOT NULL,
  filter TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (destination, filter)
);
CREATE TABLE IF NOT EXISTS shared_members (
  grp TEXT NOT NULL,
  filter TEXT NOT NULL,
  client_id TEXT NOT NULL,
  destination TEXT NOT NULL,
  PRIMARY KEY (grp, filter, client_id)
);
CREATE TABLE IF NOT EXISTS retained (
  ${MESSAGE_COLUMN_DEFS},
  PRIMARY KEY (topic)
);
`;
/** The shard's schema, oldest first (migrations.ts); a released entry never changes. */
export const SHARD_MIGRATIONS: readonly Migration[] = [
  { to: 3, about: "baseline: the schema of the first release with migrations", sql: SCHEMA },
  {
    to: 4,
    about: "re-sharding: the layout this shard holds, what it has handed over, and (shard 0) the history",
    sql: RESHARDING_SCHEMA,
  },
  {
    to: 5,
    about: "rules: the outbox of QoS 1/2 messages for their targets, and counters per rule",
    sql: RULES_SCHEMA,
  },
  {
    to: 6,
    about:
      "shard 0: when registries began deciding here, and whether older storage was there (their legacy window)",
    sql: DEPLOYMENT_SCHEMA,
  },
];
/**
 * Topics read at once when scanning retained messages for a wildcard: 64 topics
 * of at most MAX_TOPIC_LENGTH (65,535 bytes at most) stay within a few MiB.
 */
const TOPIC_SCAN = 64;
/** Topics scanned in one call at most (bounded CPU per call); the next page goes on. */
const SCAN_PER_CALL = 20_000;

/** A shared subscription group (5.0 4.8.2): its members, and whose turn is next. */
interface ShareGroup {
  raw: string;
  members: Array<{ destination: Destination; clientId: string }>;
  next: number;
}

/**
 * QoS 0 messages waiting for one destination (a call's worth): past it, more
 * QoS 0 for that destination is dropped and counted (README: bounds).
 */
export const SHARD_QOS0_BYTES = RPC_BATCH_BYTES;

/** Hands a batch to a destination: `deliver` on a gateway, `enqueue` on a session. */
type DeliveryStub = (messages: Message[]) => Promise<void>;

export class TopicShard extends DurableObject<Env> implements ShardRpc {
  /** filter → destination → number of subscriptions behind it. */
  private readonly routes = new SubscriptionIndex<number>();
  /** inner filter → share name → group. */
  private readonly shared = new SubscriptionIndex<ShareGroup>();
  /** One stub per destination: calls on one stub arrive in order (invariant 3). */
  private readonly stubs = new Map<Destination, DeliveryStub>();
  private readonly delivery: KeyedBatcher<Destination, Message, undefined>;
  private readonly config: BrokerConfig;
  private readonly counters: Counters<ShardCounter>;
  /** This object's SQLite, with rows written counted. */
  private readonly sql: SqlStorage;
  private readonly shardName: string;
  /** Retained messages held, and their payload bytes (MAX_RETAINED_MESSAGES/BYTES). */
  private retainedCount = 0;
  private retainedBytes = 0;

  /** Which layout this shard holds, and handing rows over when the settings change it. */
  private readonly resharding: Resharding;
  /** This shard's rows as re-sharding reads, deletes and fills them. */
  private readonly movable: ShardRows;
  /** Rules: what matches goes to Queues, webhooks and Workers, QoS 1/2 through an outbox. */
  private readonly outbox: RuleOutbox;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const before = storedSchemaVersion(ctx.storage.sql);
    migrate(ctx.storage.sql, "TopicShard", SHARD_MIGRATIONS);
    const rows = ctx.storage.sql.exec<{ destination: string; filter: string; count: number }>(
      "SELECT * FROM routes",
    );
    for (const r of rows) this.routes.add(r.filter, r.destination, r.count);
    const members = ctx.storage.sql.exec<{
      grp: string;
      filter: string;
      client_id: string;
      destination: string;
    }>("SELECT * FROM shared_members");
    for (const m of members) this.joinGroup(m.grp, m.filter, m.client_id, m.destination as Destination);
    this.delivery = new KeyedBatcher((dest, messages) => this.deliverTo(dest, messages), MESSAGE_BATCH);
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
    this.counters = new Counters(ctx.storage.sql);
    this.sql = meteredSql(ctx.storage.sql, (n) => this.counters.add("rows_written", n));
    this.shardName = ctx.id.name ?? ctx.id.toString();
    const totals = ctx.storage.sql
      .exec<{ n: number; bytes: number | null }>(
        "SELECT COUNT(*) AS n, SUM(LENGTH(payload)) AS bytes FROM retained",
      )
      .one();
    this.retainedCount = totals.n;
    this.retainedBytes = totals.bytes ?? 0;
    this.movable = this.movableRows();
    if (shardIndexOf(this.shardName) === 0) recordDeployment(ctx.storage.sql, before);
    this.resharding = new Resharding({
      sql: ctx.storage.sql,
      self: shardIndexOf(this.shardName),
      target: this.config.layout,
      // Schema 3 is the last release before re-sharding: its rows were placed by the modulo hash.
      legacy: before === 3,
      rows: this.movable,
      shard: (i) => shardStub(env, i),
      wakeLater: (ms) => void this.wakeAt(Date.now() + ms),
    });
    this.outbox = new RuleOutbox({
      sql: this.sql,
      rules: this.config.rules,
      shard: this.shardName,
      maxBytes: this.config.rulesOutboxBytes,
      env,
      wakeAt: (at) => this.wakeAt(at),
      waitUntil: (p) => ctx.waitUntil(p),
    });
  }

  /** Makes sure the alarm fires no later than `at` (re-sharding and rules share it). */
  private async wakeAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  // ---- re-sharding (topic-shard/resharding.ts): outside the gate ----------

  /** Shard 0: the plan that brings the deployment to `to`. */
  layoutPlan(to: Layout): Plan {
    this.counters.add("rpc_in");
    return this.resharding.plan(to);
  }

  /** Shard 0: whether sessions may predate registries, and since when registries decide (deployment.ts). */
  origin(): Origin {
    this.counters.add("rpc_in");
    return deploymentOrigin(this.ctx.storage.sql);
  }

  /** Sends this shard's rows to their holders under `plan.to` (once per version). */
  handOver(plan: Plan): Promise<void> {
    this.counters.add("rpc_in");
    return this.resharding.handOver(plan);
  }

  /** Rows another shard hands over. */
  accept(rows: MovedRows): void {
    this.counters.add("rpc_in");
    assertWithinCall(rows.retained);
    this.movable.accept(rows);
    this.counters.add("rows_received", rows.routes.length + rows.members.length + rows.retained.length);
  }

  override async alarm(): Promise<void> {
    await this.resharding.alarm();
    await this.outbox.flush();
  }

  /**
   * Adds one subscription per plain filter for `destination`, makes the client a
   * member of its shared groups, and returns retained messages for `retainedFor`.
   */
  async subscribe(destination: Destination, req: SubscribeRequest): Promise<RetainedPage> {
    this.counters.add("rpc_in");
    await this.opened();
    for (const filter of req.filters)
      this.putRoute({ destination, filter, count: (this.routes.get(filter, destination) ?? 0) + 1 });
    for (const raw of req.shared) {
      const { group, filter } = parseShared(raw);
      this.putMember({ grp: group, filter, client_id: req.clientId, destination });
    }
    return this.retainedMatching(req.retainedFor, null);
  }

  /** Removes one subscription per plain filter, and the client from its shared groups. */
  async unsubscribe(destination: Destination, req: ShardFilters): Promise<void> {
    this.counters.add("rpc_in");
    await this.opened();
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

  /** The next page of retained messages for a subscribe, or for the HTTP API's /api/retained. */
  async retainedPage(filters: string[], after: string | null): Promise<RetainedPage> {
    this.counters.add("rpc_in");
    await this.opened();
    return this.retainedMatching(filters, after);
  }

  /** Numbers for /api/stats, /metrics and $SYS. */
  stats(): ShardStats {
    // A stats call is a billed request too ($SYS and the API make them).
    this.counters.add("rpc_in");
    this.counters.add("log_lines", takeLogLines());
    this.counters.flush();
    return {
      shard: this.shardName,
      routes: this.routes.size,
      retained: this.retainedCount,
      retainedBytes: this.retainedBytes,
      layout: this.resharding.state(),
      rules: this.outbox.snapshot(),
      counters: this.counters.snapshot(),
    };
  }

  /** Gives messages a member left unacknowledged to another member of the same group. */
  async redistribute(messages: Message[]): Promise<void> {
    this.counters.add("rpc_in");
    await this.opened();
    const pending: Promise<void>[] = [];
    for (const m of messages) {
      if (m.target === undefined) continue;
      const { group, filter } = parseShared(m.target.filter);
      const g = this.shared.get(filter, group);
      const member = g === undefined ? undefined : pickMember(g, m.target.clientId);
      if (g === undefined || member === undefined) {
        log("info", "shared_message_dropped", { group, filter, reason: "no other member" });
        continue;
      }
      pending.push(
        this.delivery.add(member.destination, { ...m, target: { clientId: member.clientId, filter: g.raw } }),
      );
    }
    await Promise.all(pending);
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

  /** Topic traffic waits while this shard still receives its rows of a new layout. */
  private async opened(): Promise<void> {
    const waiting = this.resharding.waiting;
    if (waiting !== null) await waiting;
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

  /** This shard's tables as re-sharding reads, deletes and fills them. */
  private movableRows(): ShardRows {
    const sql = this.sql;
    const tables: Record<RowKind, { table: string; place: "topic" | "filter" }> = {
      routes: { table: "routes", place: "filter" },
      members: { table: "shared_members", place: "filter" },
      retained: { table: "retained", place: "topic" },
    };
    const none = (): MovedRows => ({ routes: [], members: [], retained: [] });
    return {
      scan: (kind, after, limit) => {
        const { table, place } = tables[kind];
        return sql
          .exec<{ id: number; p: string }>(
            `SELECT rowid AS id, ${place} AS p FROM ${table} WHERE rowid > ? ORDER BY rowid LIMIT ?`,
            after,
            limit,
          )
          .toArray()
          .map(({ id, p }): { id: number; place: Place } => ({
            id,
            place: place === "topic" ? { topic: p } : { filter: p },
          }));
      },
      load: (kind, id) => {
        const rows = none();
        if (kind === "retained") {
          const row = sql.exec<MessageRow>("SELECT * FROM retained WHERE rowid = ?", id).toArray()[0];
          if (row === undefined) return undefined;
          const m = rowToMessage(row);
          rows.retained.push(m);
          return { rows, bytes: messageBytes(m) };
        }
        if (kind === "routes") {
          const r = sql
            .exec<{ destination: string; filter: string; count: number }>(
              "SELECT destination, filter, count FROM routes WHERE rowid = ?",
              id,
            )
            .toArray()[0];
          if (r === undefined) return undefined;
          const route: RouteRow = {
            destination: r.destination as Destination,
            filter: r.filter,
            count: r.count,
          };
          rows.routes.push(route);
          return { rows, bytes: 64 + 2 * (r.destination.length + r.filter.length) };
        }
        const m = sql
          .exec<{ grp: string; filter: string; client_id: string; destination: string }>(
            "SELECT grp, filter, client_id, destination FROM shared_members WHERE rowid = ?",
            id,
          )
          .toArray()[0];
        if (m === undefined) return undefined;
        const member: MemberRow = { ...m, destination: m.destination as Destination };
        rows.members.push(member);
        return {
          rows,
          bytes: 64 + 2 * (m.grp.length + m.filter.length + m.client_id.length + m.destination.length),
        };
      },
      remove: (kind, ids) => {
        for (const id of ids) {
          if (kind === "retained") {
            // The key only: the payload stays on disk.
            const row = sql
              .exec<{ topic: string }>("SELECT topic FROM retained WHERE rowid = ?", id)
              .toArray()[0];
            if (row !== undefined) this.clearRetained(row.topic);
            continue;
          }
          const row = sql
            .exec<{ destination: Destination; filter: string; grp?: string; client_id?: string }>(
              kind === "routes"
                ? "SELECT destination, filter FROM routes WHERE rowid = ?"
                : "SELECT destination, filter, grp, client_id FROM shared_members WHERE rowid = ?",
              id,
            )
            .toArray()[0];
          if (row === undefined) continue;
          if (kind === "routes") this.routes.remove(row.filter, row.destination);
          else this.leaveGroup(row.grp as string, row.filter, row.client_id as string);
          sql.exec(`DELETE FROM ${tables[kind].table} WHERE rowid = ?`, id);
        }
      },
      accept: (moved) => {
        for (const r of moved.routes) this.putRoute(r);
        for (const m of moved.members) this.putMember(m);
        // Past the retained quota too: refusing would lose a message the old shard held.
        for (const m of moved.retained) this.storeRetained(m, { overQuota: true });
      },
    };
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

  /**
   * Stores or clears retained messages, then hands every message to each
   * destination with a matching filter. Resolves once all have taken them, so
   * the publisher's PUBACK/PUBREC means the message is stored durably. Answers a
   * reason code per message: 0x00, 0x10 (no one subscribes) or 0x97 (refused).
   */
  async publish(messages: Message[]): Promise<number[]> {
    this.counters.add("rpc_in");
    await this.opened();
    assertWithinCall(messages);
    const pending: Promise<undefined>[] = [];
    const codes: number[] = [];
    for (const m of messages) {
      // A retained message past the shard's quota is refused whole: 0x97.
      if (m.retain && !this.storeRetained(m)) {
        this.counters.add("retained_refused");
        codes.push(ReasonCode.QuotaExceeded);
        continue;
      }
      this.counters.add("messages_routed");
      this.outbox.take(m);
      let matched = false;
      // QoS 0 promises nothing once handed on: the publisher need not wait for it
      // (order still holds, the per-destination queue keeps it). So nothing holds
      // QoS 0 back but this: past SHARD_QOS0_BYTES waiting for a destination that
      // does not keep up, it is dropped for that destination and counted. QoS 1/2
      // waits, and its publisher's acknowledgement with it.
      const deliver = (dest: Destination, message: Message) => {
        matched = true;
        if (m.qos > 0) {
          pending.push(this.delivery.add(dest, message));
        } else if (this.delivery.pendingBytesOf(dest) >= SHARD_QOS0_BYTES) {
          this.counters.add("dropped_overload");
        } else {
          this.delivery.add(dest, message).catch(() => undefined);
        }
      };
      const seen = new Set<Destination>();
      this.routes.forEachMatch(m.topic, (_count, destination) => {
        const dest = destination as Destination;
        if (seen.has(dest)) return;
        seen.add(dest);
        deliver(dest, m);
      });
      // One member of each matching shared group gets the message (5.0 4.8.2).
      this.shared.forEachMatch(m.topic, (g) => {
        const member = pickMember(g);
        if (member !== undefined)
          deliver(member.destination, { ...m, target: { clientId: member.clientId, filter: g.raw } });
      });
      // 5.0 3.4.2.1: 0x10 tells the publisher nobody listens (the message was
      // still accepted, and stored if retained), as Mosquitto and HiveMQ answer.
      codes.push(matched ? ReasonCode.Success : ReasonCode.NoMatchingSubscribers);
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    return codes;
  }

  /**
   * One page of the retained messages whose topic matches any of `filters`, each
   * once: at most a call's worth of messages, read a row at a time, so neither the
   * answer nor the shard's memory grows with the store. Exact topics come first
   * (in order, looked up by key); then, for wildcard filters, topics are scanned in
   * order, TOPIC_SCAN topics at a time, loading only the rows that match, at most
   * SCAN_PER_CALL topics a call. `after` is where the previous page ended:
   * "e:<topic>" in the exact phase, "w:<topic>" in the scan.
   */
  private retainedMatching(filters: string[], after: string | null): RetainedPage {
    const sql = this.sql;
    const exact = [...new Set(filters.filter((f) => !hasWildcard(f)))].sort();
    const wildcards = filters.filter(hasWildcard);
    const messages: Message[] = [];
    let bytes = 0;
    const now = Date.now();
    const full = () => messages.length >= RPC_BATCH_MESSAGES || bytes >= RPC_BATCH_BYTES;
    const take = (topic: string) => {
      for (const row of sql.exec<MessageRow>("SELECT * FROM retained WHERE topic = ?", topic).toArray()) {
        const m = rowToMessage(row);
        if (isExpired(m, now)) {
          this.clearRetained(m.topic);
          this.counters.add("retained_expired");
        } else {
          messages.push(m);
          bytes += messageBytes(m);
        }
      }
    };
    let phase = after?.startsWith("w:") ? "w" : "e";
    let from = after === null ? "" : after.slice(2);
    if (phase === "e") {
      for (const topic of exact) {
        if (after !== null && topic <= from) continue;
        if (full()) return { messages, next: `e:${from}` };
        take(topic);
        from = topic;
      }
      phase = "w";
      from = "";
    }
    if (wildcards.length === 0) return { messages, next: null };
    const exactSet = new Set(exact);
    let scanned = 0;
    for (;;) {
      const topics = sql
        .exec<{ topic: string }>(
          "SELECT topic FROM retained WHERE topic > ? ORDER BY topic LIMIT ?",
          from,
          TOPIC_SCAN,
        )
        .toArray();
      for (const { topic } of topics) {
        // Topics an exact filter named went out in the exact phase.
        if (!exactSet.has(topic) && wildcards.some((f) => topicMatches(f, topic))) {
          if (full()) return { messages, next: `w:${from}` };
          take(topic);
        }
        from = topic;
        if (++scanned >= SCAN_PER_CALL) return { messages, next: `w:${from}` };
      }
      if (topics.length < TOPIC_SCAN) return { messages, next: null };
    }
  }

  /** Clears a topic's retained message, if it has one. */
  private clearRetained(topic: string): void {
    const old = this.sql
      .exec<{ bytes: number }>("SELECT LENGTH(payload) AS bytes FROM retained WHERE topic = ?", topic)
      .toArray()[0];
    if (old !== undefined) this.dropRetained(topic, old.bytes);
  }

  private dropRetained(topic: string, bytes: number): void {
    this.sql.exec("DELETE FROM retained WHERE topic = ?", topic);
    this.retainedCount--;
    this.retainedBytes -= bytes;
  }

  /**
   * MQTT-3.3.1-5/-10/-11: a retained PUBLISH replaces the topic's message; an empty
   * one clears it. False if keeping it would pass the shard's retained quota.
   */
  private storeRetained(m: Message, allow: { overQuota: boolean } = { overQuota: false }): boolean {
    const sql = this.sql;
    const old = sql
      .exec<{ bytes: number }>("SELECT LENGTH(payload) AS bytes FROM retained WHERE topic = ?", m.topic)
      .toArray()[0];
    if (m.payload.length === 0) {
      if (old !== undefined) this.dropRetained(m.topic, old.bytes);
      return true;
    }
    const count = this.retainedCount + (old === undefined ? 1 : 0);
    const bytes = this.retainedBytes - (old?.bytes ?? 0) + m.payload.length;
    if (
      !allow.overQuota &&
      (count > this.config.maxRetainedMessages || bytes > this.config.maxRetainedBytes)
    ) {
      log("warn", "retained_quota", { topic: m.topic, count, bytes });
      return false;
    }
    this.retainedCount = count;
    this.retainedBytes = bytes;
    const row = messageToRow(m);
    sql.exec(
      `INSERT OR REPLACE INTO retained (${MESSAGE_COLUMNS}) VALUES (${MESSAGE_PLACEHOLDERS})`,
      ...messageValues(row),
    );
    return true;
  }

  /** Hands a batch to a destination; no result per message. */
  private async deliverTo(destination: Destination, messages: Message[]): Promise<undefined> {
    try {
      this.counters.add("deliveries");
      await this.stubFor(destination)(messages);
    } catch (err) {
      log("error", "delivery_failed", { destination, count: messages.length, error: String(err) });
      // The publisher of a QoS 1/2 message must not be acknowledged.
      if (messages.some((m) => m.qos > 0)) throw err;
    }
    return undefined;
  }

  private stubFor(destination: Destination): DeliveryStub {
    let stub = this.stubs.get(destination);
    if (stub === undefined) {
      const name = destination.slice(2);
      if (destination.startsWith("g:")) {
        const gateway = gatewayStub(this.env, name);
        stub = (messages) => gateway.deliver(messages);
      } else if (destination.startsWith("b:")) {
        const bridge = bridgeStub(this.env, name);
        stub = (messages) => bridge.deliver(messages);
      } else {
        const session = sessionStub(this.env, name);
        stub = (messages) => callSession(session, this.counters, (s) => s.enqueue(messages));
      }
      this.stubs.set(destination, stub);
    }
    return stub;
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
