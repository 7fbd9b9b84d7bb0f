/**
 * TopicShard: for the topics that hash to it, which destinations (gateways, or
 * sessions while offline) want which filters, with counts; and the retained
 * messages. A publish is matched once here and handed to each destination in one
 * call per batch, however many clients sit behind that destination.
 */
import { DurableObject } from "cloudflare:workers";
import { KeyedBatcher } from "../broker/batcher.ts";
import { log } from "../broker/log.ts";
import {
  isExpired,
  MESSAGE_COLUMNS,
  type Message,
  type MessageRow,
  messageToRow,
  messageValues,
  rowToMessage,
} from "../broker/message.ts";
import type { Destination } from "../broker/routing.ts";
import { applySchema } from "../broker/sql.ts";
import { hasWildcard, SubscriptionIndex, topicMatches } from "../mqtt/index.ts";
import type { Env } from "../worker/env.ts";
import { gatewayStub, sessionStub } from "./stubs.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS routes (
  destination TEXT NOT NULL,
  filter TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (destination, filter)
);
CREATE TABLE IF NOT EXISTS retained (
  topic TEXT PRIMARY KEY,
  msg_id TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  props TEXT,
  origin TEXT,
  expires_at INTEGER
);
`;
const TABLES = ["routes", "retained"];
const SCHEMA_VERSION = 1;

/** Hands a batch to a destination: `deliver` on a gateway, `enqueue` on a session. */
type DeliveryStub = (messages: Message[]) => Promise<void>;

export class TopicShard extends DurableObject<Env> {
  /** filter → destination → number of subscriptions behind it. */
  private readonly routes = new SubscriptionIndex<number>();
  /** One stub per destination: calls on one stub arrive in order (invariant 3). */
  private readonly stubs = new Map<Destination, DeliveryStub>();
  private readonly delivery: KeyedBatcher<Destination, Message>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    applySchema(ctx.storage.sql, SCHEMA_VERSION, TABLES, SCHEMA);
    const rows = ctx.storage.sql.exec<{ destination: string; filter: string; count: number }>(
      "SELECT * FROM routes",
    );
    for (const r of rows) this.routes.add(r.filter, r.destination, r.count);
    this.delivery = new KeyedBatcher((dest, messages) => this.deliverTo(dest, messages));
  }

  /** Adds one subscription per filter for `destination`; returns retained messages for `retainedFor`. */
  subscribe(destination: Destination, filters: string[], retainedFor: string[]): Message[] {
    for (const filter of filters) {
      const count = (this.routes.get(filter, destination) ?? 0) + 1;
      this.routes.add(filter, destination, count);
      this.ctx.storage.sql.exec(
        "INSERT OR REPLACE INTO routes (destination, filter, count) VALUES (?, ?, ?)",
        destination,
        filter,
        count,
      );
    }
    return this.retainedMatching(retainedFor);
  }

  /** Removes one subscription per filter for `destination`. */
  unsubscribe(destination: Destination, filters: string[]): void {
    for (const filter of filters) {
      const count = (this.routes.get(filter, destination) ?? 0) - 1;
      if (count > 0) {
        this.routes.add(filter, destination, count);
        this.ctx.storage.sql.exec(
          "UPDATE routes SET count = ? WHERE destination = ? AND filter = ?",
          count,
          destination,
          filter,
        );
      } else {
        this.routes.remove(filter, destination);
        this.ctx.storage.sql.exec(
          "DELETE FROM routes WHERE destination = ? AND filter = ?",
          destination,
          filter,
        );
      }
    }
  }

  /**
   * Stores or clears retained messages, then hands every message to each
   * destination with a matching filter. Resolves once all have taken them, so
   * the publisher's PUBACK/PUBREC means the message is stored durably.
   */
  async publish(messages: Message[]): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const m of messages) {
      if (m.retain) this.storeRetained(m);
      const seen = new Set<Destination>();
      this.routes.forEachMatch(m.topic, (_count, destination) => {
        const dest = destination as Destination;
        if (seen.has(dest)) return;
        seen.add(dest);
        pending.push(this.delivery.add(dest, m));
      });
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }

  /** Retained messages whose topic matches any of `filters`, each once. */
  private retainedMatching(filters: string[]): Message[] {
    if (filters.length === 0) return [];
    const sql = this.ctx.storage.sql;
    const found = new Map<string, Message>();
    const now = Date.now();
    const take = (row: MessageRow & { topic: string }) => {
      const m = rowToMessage(row);
      if (isExpired(m, now)) sql.exec("DELETE FROM retained WHERE topic = ?", m.topic);
      else found.set(m.topic, m);
    };
    const wildcards = filters.filter(hasWildcard);
    for (const f of filters) {
      if (hasWildcard(f)) continue;
      for (const row of sql.exec<MessageRow>("SELECT * FROM retained WHERE topic = ?", f)) take(row);
    }
    if (wildcards.length > 0) {
      for (const row of sql.exec<MessageRow>("SELECT * FROM retained")) {
        if (!found.has(row.topic) && wildcards.some((f) => topicMatches(f, row.topic))) take(row);
      }
    }
    return [...found.values()];
  }

  /** MQTT-3.3.1-5/-10/-11: a retained PUBLISH replaces the topic's message; an empty one clears it. */
  private storeRetained(m: Message): void {
    const sql = this.ctx.storage.sql;
    if (m.payload.length === 0) {
      sql.exec("DELETE FROM retained WHERE topic = ?", m.topic);
      return;
    }
    const row = messageToRow(m);
    sql.exec(
      `INSERT OR REPLACE INTO retained (${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ...(messageValues(row) as SqlStorageValue[]),
    );
  }

  private async deliverTo(destination: Destination, messages: Message[]): Promise<void> {
    try {
      await this.stubFor(destination)(messages);
    } catch (err) {
      log("error", "delivery_failed", { destination, count: messages.length, error: String(err) });
      // The publisher of a QoS 1/2 message must not be acknowledged.
      if (messages.some((m) => m.qos > 0)) throw err;
    }
  }

  private stubFor(destination: Destination): DeliveryStub {
    let stub = this.stubs.get(destination);
    if (stub === undefined) {
      const name = destination.slice(2);
      if (destination.startsWith("g:")) {
        const gateway = gatewayStub(this.env, name);
        stub = (messages) => gateway.deliver(messages);
      } else {
        const session = sessionStub(this.env, name);
        stub = (messages) => session.enqueue(messages);
      }
      this.stubs.set(destination, stub);
    }
    return stub;
  }
}
