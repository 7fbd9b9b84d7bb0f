/**
 * TopicShard: for the topics that hash to it, which destinations (gateways, or
 * sessions while offline) want which filters, with counts; and the retained
 * messages. A publish is matched once here and handed to each destination in one
 * call per batch, however many clients sit behind that destination.
 *
 * The class answers calls, holds topic traffic back while a re-shard fills it
 * (the gate), and wires its collaborators (in `topic-shard/`): the route table
 * and shared groups (route-table.ts), retained messages (retained.ts), batches
 * to each destination (delivery.ts), re-sharding (resharding.ts), rules
 * (rule-outbox.ts) and the deployment's record (deployment.ts). Its tables'
 * baseline schema stays here, as released.
 */
import { DurableObject } from "cloudflare:workers";

import { type BrokerConfig, readConfig } from "../broker/config.ts";

import { Counters } from "../broker/counters.ts";

import { setLogLevel, takeLogLines } from "../broker/log.ts";

import {
  assertWithinCall,
  MESSAGE_COLUMN_DEFS,
  type Message,
  messageBytes,
  RPC_BATCH_BYTES,
  RPC_BATCH_MESSAGES,
} from "../broker/message.ts";

import { meteredSql } from "../broker/metered-sql.ts";

import { type Migration, migrate, storedSchemaVersion } from "../broker/migrations.ts";

import type { Place } from "../broker/placement.ts";

import { type Destination, type Layout, shardIndexOf } from "../broker/routing.ts";

import type { ShardCounter, ShardStats } from "../broker/stats.ts";

import { ReasonCode } from "../mqtt/index.ts";

import type { Env } from "../worker/env.ts";
import type {
  MovedRows,
  Origin,
  Plan,
  Published,
  RetainedPage,
  ShardFilters,
  ShardRpc,
  SubscribeRequest,
} from "./contracts.ts";
import { bridgeStub, callSession, gatewayStub, type SessionMeter, sessionStub, shardStub } from "./stubs.ts";
import { Delivery, type DeliveryStub } from "./topic-shard/delivery.ts";
import { DEPLOYMENT_SCHEMA, deploymentOrigin, recordDeployment } from "./topic-shard/deployment.ts";
import { RESHARDING_SCHEMA, Resharding, type RowKind, type ShardRows } from "./topic-shard/resharding.ts";
import { RetainedStore } from "./topic-shard/retained.ts";
import { RouteTable } from "./topic-shard/route-table.ts";
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
export class TopicShard extends DurableObject<Env> implements ShardRpc {
  private readonly config: BrokerConfig;
  private readonly counters: Counters<ShardCounter>;
  /** This object's SQLite, with rows written counted. */
  private readonly sql: SqlStorage;
  private readonly shardName: string;
  /** Which destinations want which filters, and the shared groups (route-table.ts). */
  private readonly routes: RouteTable;
  /** Retained messages, within the shard's quota (retained.ts). */
  private readonly retained: RetainedStore;
  /** Batches to each destination (delivery.ts). */
  private readonly delivery: Delivery;
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
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
    this.counters = new Counters(ctx.storage.sql);
    this.sql = meteredSql(ctx.storage.sql, (n) => this.counters.add("rows_written", n));
    this.shardName = ctx.id.name ?? ctx.id.toString();
    this.routes = new RouteTable(this.sql);
    this.retained = new RetainedStore({
      sql: this.sql,
      maxMessages: this.config.maxRetainedMessages,
      maxBytes: this.config.maxRetainedBytes,
      expired: () => this.counters.add("retained_expired"),
    });
    this.delivery = new Delivery({
      stubFor: (destination) => destinationStub(env, this.counters, destination),
      count: (name) => this.counters.add(name),
    });
    this.movable = movableRows(this.sql, this.routes, this.retained);
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

  /** Topic traffic waits while this shard still receives its rows of a new layout. */
  private async opened(): Promise<void> {
    const waiting = this.resharding.waiting;
    if (waiting !== null) await waiting;
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

  // ---- topic traffic: behind the gate ---------------------------------------

  /**
   * Adds one subscription per plain filter for `destination`, makes the client a
   * member of its shared groups, and returns retained messages for `retainedFor`.
   */
  async subscribe(destination: Destination, req: SubscribeRequest): Promise<RetainedPage> {
    this.counters.add("rpc_in");
    await this.opened();
    this.routes.subscribe(destination, req);
    return this.retained.page(req.retainedFor, null);
  }

  /** Removes one subscription per plain filter, and the client from its shared groups. */
  async unsubscribe(destination: Destination, req: ShardFilters): Promise<void> {
    this.counters.add("rpc_in");
    await this.opened();
    this.routes.unsubscribe(destination, req);
  }

  /** The next page of retained messages for a subscribe, or for the HTTP API's /api/retained. */
  async retainedPage(filters: string[], after: string | null): Promise<RetainedPage> {
    this.counters.add("rpc_in");
    await this.opened();
    return this.retained.page(filters, after);
  }

  /** Gives messages a member left unacknowledged to another member of the same group. */
  async redistribute(messages: Message[]): Promise<void> {
    this.counters.add("rpc_in");
    await this.opened();
    const pending: Promise<undefined>[] = [];
    for (const m of messages)
      this.routes.matchAnotherMember(m, (destination, message) =>
        pending.push(this.delivery.add(destination, message)),
      );
    await Promise.all(pending);
  }

  /**
   * Stores or clears retained messages, then hands every message to each
   * destination with a matching filter. Resolves once all have taken them, so
   * the publisher's PUBACK/PUBREC means the message is stored durably. Answers a
   * reason code per message: 0x00, 0x10 (no one subscribes) or 0x97 (refused).
   */
  async publish(messages: Message[]): Promise<number[]> {
    this.counters.add("rpc_in");
    return (await this.route(messages, undefined)).codes;
  }

  /**
   * `publish` from a gateway: what matches that gateway's own filters is
   * answered (`here`) rather than delivered in a call back to it, one billed
   * call instead of two; the gateway hands it to its clients before it
   * acknowledges the publishers, as it would a `deliver`.
   */
  async publishFrom(gateway: Destination, messages: Message[]): Promise<Published> {
    this.counters.add("rpc_in");
    return this.route(messages, gateway);
  }

  private async route(messages: Message[], from: Destination | undefined): Promise<Published> {
    await this.opened();
    assertWithinCall(messages);
    const pending: Promise<undefined>[] = [];
    const codes: number[] = [];
    const here: Message[] = [];
    let hereBytes = 0;
    for (const m of messages) {
      // A retained message past the shard's quota is refused whole: 0x97.
      if (m.retain && !this.retained.store(m)) {
        this.counters.add("retained_refused");
        codes.push(ReasonCode.QuotaExceeded);
        continue;
      }
      this.counters.add("messages_routed");
      this.outbox.take(m);
      let matched = false;
      this.routes.match(m, (destination, message) => {
        matched = true;
        if (destination !== from) return this.delivery.send(destination, message, pending);
        here.push(message);
        hereBytes += messageBytes(message);
      });
      // 5.0 3.4.2.1: 0x10 tells the publisher nobody listens (the message was
      // still accepted, and stored if retained), as Mosquitto and HiveMQ answer.
      codes.push(matched ? ReasonCode.Success : ReasonCode.NoMatchingSubscribers);
    }
    // Past a call's worth (shared groups can match one message several times for
    // one gateway), the caller's messages go the way every destination's do, all
    // of them and awaited, QoS 0 too: its publishers' order holds (invariant 3).
    if (from !== undefined && (here.length > RPC_BATCH_MESSAGES || hereBytes > RPC_BATCH_BYTES)) {
      for (const message of here.splice(0)) pending.push(this.delivery.add(from, message));
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    return { codes, here };
  }

  /** Numbers for /api/stats, /metrics and $SYS. */
  stats(): ShardStats {
    // A stats call is a billed request too ($SYS and the API make them).
    this.counters.add("rpc_in");
    this.counters.add("log_lines", takeLogLines());
    this.counters.flush();
    const retained = this.retained.held;
    return {
      shard: this.shardName,
      routes: this.routes.size,
      retained: retained.count,
      retainedBytes: retained.bytes,
      layout: this.resharding.state(),
      rules: this.outbox.snapshot(),
      counters: this.counters.snapshot(),
    };
  }
}

/** This shard's tables as re-sharding reads, deletes and fills them (resharding.ts). */
function movableRows(sql: SqlStorage, routes: RouteTable, retained: RetainedStore): ShardRows {
  const tables: Record<RowKind, { table: string; place: "topic" | "filter" }> = {
    routes: { table: "routes", place: "filter" },
    members: { table: "shared_members", place: "filter" },
    retained: { table: "retained", place: "topic" },
  };
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
      const rows: MovedRows = { routes: [], members: [], retained: [] };
      const bytes =
        kind === "retained"
          ? retained.load(id, rows)
          : kind === "routes"
            ? routes.loadRoute(id, rows)
            : routes.loadMember(id, rows);
      return bytes === undefined ? undefined : { rows, bytes };
    },
    remove: (kind, ids) => {
      for (const id of ids) {
        if (kind === "retained") retained.remove(id);
        else routes.remove(kind, id);
      }
    },
    accept: (moved) => {
      routes.accept(moved);
      retained.accept(moved.retained);
    },
  };
}

/** The stub a shard delivers to a destination with: `deliver` on a gateway or bridge, `enqueue` on a session. */
function destinationStub(env: Env, meter: SessionMeter, destination: Destination): DeliveryStub {
  const name = destination.slice(2);
  if (destination.startsWith("g:")) {
    const gateway = gatewayStub(env, name);
    return (messages) => gateway.deliver(messages);
  }
  if (destination.startsWith("b:")) {
    const bridge = bridgeStub(env, name);
    return (messages) => bridge.deliver(messages);
  }
  const session = sessionStub(env, name);
  return (messages) => callSession(session, meter, (s) => s.enqueue(messages));
}
