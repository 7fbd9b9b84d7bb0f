/**
 * A shard's retained messages (MQTT-3.3.1-5/-10/-11), one per topic, within the
 * shard's quota (MAX_RETAINED_MESSAGES, MAX_RETAINED_BYTES of payload), and
 * read back a page at a time for a subscribe or the HTTP API: neither an answer
 * nor the shard's memory grows with the store.
 */
import { log } from "../../broker/log.ts";

import {
  isExpired,
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
} from "../../broker/message.ts";

import { hasWildcard, topicMatches } from "../../mqtt/index.ts";
import type { MovedRows, RetainedPage } from "../contracts.ts";

/**
 * Topics read at once when scanning retained messages for a wildcard: 64 topics
 * of at most MAX_TOPIC_LENGTH (65,535 bytes at most) stay within a few MiB.
 */
const TOPIC_SCAN = 64;
/** Topics scanned in one call at most (bounded CPU per call); the next page goes on. */
export const SCAN_PER_CALL = 20_000;

export interface RetainedStoreDeps {
  /** This shard's SQLite, with rows written counted. */
  sql: SqlStorage;
  /** MAX_RETAINED_MESSAGES and MAX_RETAINED_BYTES: the shard's quota. */
  maxMessages: number;
  maxBytes: number;
  /** Counts a retained message that expired, found on reading. */
  expired: () => void;
}

export class RetainedStore {
  private readonly deps: RetainedStoreDeps;
  /** Retained messages held, and their payload bytes. */
  private count: number;
  private bytes: number;

  /** Counts what storage holds already. */
  constructor(deps: RetainedStoreDeps) {
    this.deps = deps;
    const totals = deps.sql
      .exec<{ n: number; bytes: number | null }>(
        "SELECT COUNT(*) AS n, SUM(LENGTH(payload)) AS bytes FROM retained",
      )
      .one();
    this.count = totals.n;
    this.bytes = totals.bytes ?? 0;
  }

  /** Retained messages held, and their payload bytes. */
  get held(): { count: number; bytes: number } {
    return { count: this.count, bytes: this.bytes };
  }

  /**
   * MQTT-3.3.1-5/-10/-11: a retained PUBLISH replaces the topic's message; an empty
   * one clears it. False if keeping it would pass the shard's retained quota.
   */
  store(m: Message, allow: { overQuota: boolean } = { overQuota: false }): boolean {
    const sql = this.deps.sql;
    const old = sql
      .exec<{ bytes: number }>("SELECT LENGTH(payload) AS bytes FROM retained WHERE topic = ?", m.topic)
      .toArray()[0];
    if (m.payload.length === 0) {
      if (old !== undefined) this.drop(m.topic, old.bytes);
      return true;
    }
    const count = this.count + (old === undefined ? 1 : 0);
    const bytes = this.bytes - (old?.bytes ?? 0) + m.payload.length;
    if (!allow.overQuota && (count > this.deps.maxMessages || bytes > this.deps.maxBytes)) {
      log("warn", "retained_quota", { topic: m.topic, count, bytes });
      return false;
    }
    this.count = count;
    this.bytes = bytes;
    const row = messageToRow(m);
    sql.exec(
      `INSERT OR REPLACE INTO retained (${MESSAGE_COLUMNS}) VALUES (${MESSAGE_PLACEHOLDERS})`,
      ...messageValues(row),
    );
    return true;
  }

  /**
   * One page of the retained messages whose topic matches any of `filters`, each
   * once: at most a call's worth of messages, read a row at a time. Exact topics
   * come first (in order, looked up by key); then, for wildcard filters, topics
   * are scanned in order, TOPIC_SCAN topics at a time, loading only the rows that
   * match, at most SCAN_PER_CALL topics a call. `after` is where the previous
   * page ended: "e:<topic>" in the exact phase, "w:<topic>" in the scan.
   */
  page(filters: string[], after: string | null): RetainedPage {
    const sql = this.deps.sql;
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
          this.clear(m.topic);
          this.deps.expired();
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

  // ---- rows handed over in a re-shard (resharding.ts) ---------------------

  /** A retained message by its rowid, to hand over, with its weight in a call. */
  load(id: number, into: MovedRows): number | undefined {
    const row = this.deps.sql.exec<MessageRow>("SELECT * FROM retained WHERE rowid = ?", id).toArray()[0];
    if (row === undefined) return undefined;
    const m = rowToMessage(row);
    into.retained.push(m);
    return messageBytes(m);
  }

  /** Deletes a retained message this shard no longer holds. */
  remove(id: number): void {
    // The key only: the payload stays on disk.
    const row = this.deps.sql
      .exec<{ topic: string }>("SELECT topic FROM retained WHERE rowid = ?", id)
      .toArray()[0];
    if (row !== undefined) this.clear(row.topic);
  }

  /** Messages another shard handed over: past the quota too, since refusing would lose a message the old shard held. */
  accept(messages: Message[]): void {
    for (const m of messages) this.store(m, { overQuota: true });
  }

  /** Clears a topic's retained message, if it has one. */
  private clear(topic: string): void {
    const old = this.deps.sql
      .exec<{ bytes: number }>("SELECT LENGTH(payload) AS bytes FROM retained WHERE topic = ?", topic)
      .toArray()[0];
    if (old !== undefined) this.drop(topic, old.bytes);
  }

  private drop(topic: string, bytes: number): void {
    this.deps.sql.exec("DELETE FROM retained WHERE topic = ?", topic);
    this.count--;
    this.bytes -= bytes;
  }
}
