/**
 * A persistent session's stored queue: QoS 1/2 messages for its client, oldest
 * first, kept while the client is offline (or while its queue is still on its
 * way to its gateway) within MAX_QUEUED_MESSAGES, and handed to the client's
 * gateway a page at a time (OutboundPage). A page handed out stays stored until
 * the gateway asks for the next one, so nothing is deleted before the gateway
 * has it: if the client leaves first, its rows are still here.
 */
import {
  MESSAGE_BATCH,
  MESSAGE_COLUMNS,
  MESSAGE_PLACEHOLDERS,
  type MessageRow,
  messageToRow,
  messageValues,
  rowToMessage,
} from "../../broker/message.ts";

import {
  type OutboundMessage,
  type OutboundPage,
  type OutboundState,
  pageOf,
  QUEUE_START,
  type QueuedMessage,
} from "../../broker/session-state.ts";

export interface SessionQueueDeps {
  /** The session's tables (SessionStorage.sql: created the first time they are needed). */
  sql: () => SqlStorage;
  /** MAX_QUEUED_MESSAGES: rows waiting here at most. */
  max: number;
}

type QueueRow = MessageRow & { seq: number; packet_id: number | null; state: string; sub_ids: string };

export class SessionQueue {
  private readonly deps: SessionQueueDeps;
  /**
   * The last row handed to the client's gateway (page). Those rows stay here
   * until it asks for the next page, in case the answer is lost, but they wait
   * here no more: MAX_QUEUED_MESSAGES counts only the rows after this. In
   * memory: an object that starts again counts every row, as before.
   */
  private handedThrough = QUEUE_START;

  constructor(deps: SessionQueueDeps) {
    this.deps = deps;
  }

  /** Rows stored, handed out or not. */
  length(): number {
    return this.deps.sql().exec<{ n: number }>("SELECT COUNT(*) AS n FROM queue").one().n;
  }

  /**
   * Queues messages after every other, as long as fewer than MAX_QUEUED_MESSAGES
   * rows wait; returns how many were dropped (the newest, as Mosquitto does).
   */
  keep(entries: QueuedMessage[]): number {
    let dropped = 0;
    // Counted once per batch, not per message: a long queue must not make each
    // arrival scan it.
    let length = this.waiting();
    for (const entry of entries) {
      if (length >= this.deps.max) {
        dropped++;
        continue;
      }
      this.insert({ packetId: null, state: "queued", ...entry });
      length++;
    }
    return dropped;
  }

  /** The rows not handed to the client's gateway yet. */
  private waiting(): number {
    return this.deps
      .sql()
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM queue WHERE seq > ?", this.handedThrough)
      .one().n;
  }

  /**
   * Queues a message, at row `seq` if given (else after every other); one the
   * queue has already (by message id) is kept (IGNORE) or replaced (REPLACE).
   */
  insert(entry: OutboundMessage, seq: number | null = null, conflict: "IGNORE" | "REPLACE" = "IGNORE"): void {
    const row = messageToRow(entry.message);
    this.deps
      .sql()
      .exec(
        `INSERT OR ${conflict} INTO queue (seq, packet_id, state, sub_ids, ${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ${MESSAGE_PLACEHOLDERS})`,
        seq,
        entry.packetId,
        entry.state,
        entry.subscriptionIds.join(","),
        ...messageValues(row),
      );
  }

  /** The row number of the oldest message; null when the queue is empty. */
  oldest(): number | null {
    return this.deps.sql().exec<{ seq: number | null }>("SELECT MIN(seq) AS seq FROM queue").one().seq;
  }

  /**
   * The first page, for a resuming client. Messages that expired while it was
   * away are dropped first, once: a scan of the queue reads past every payload,
   * too dear for every page.
   */
  firstPage(): OutboundPage {
    this.deps
      .sql()
      .exec(
        "DELETE FROM queue WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= ?",
        Date.now(),
      );
    return this.page(QUEUE_START);
  }

  /**
   * Deletes the queue up to `after` (the gateway has stored it) and returns the
   * page that follows. A queue of any length thus moves a call's worth at a time.
   */
  handOut(after: number): OutboundPage {
    this.deps.sql().exec("DELETE FROM queue WHERE seq <= ?", after);
    return this.page(after);
  }

  /** Every row stored waits here again: the gateway handed back what it had. */
  reclaim(): void {
    this.handedThrough = QUEUE_START;
  }

  clear(): void {
    this.deps.sql().exec("DELETE FROM queue");
    this.reclaim();
  }

  /**
   * The queue after row `after`, a call's worth, handed to the client's gateway
   * (the gateway drops what expires meanwhile).
   */
  private page(after: number): OutboundPage {
    const rows = this.deps
      .sql()
      .exec<QueueRow>(
        "SELECT * FROM queue WHERE seq > ? ORDER BY seq LIMIT ?",
        after,
        MESSAGE_BATCH.maxItems + 1,
      );
    const page = pageOf(rows, after, (r) => ({
      seq: r.seq,
      entry: {
        packetId: r.packet_id,
        state: r.state as OutboundState,
        subscriptionIds: r.sub_ids === "" ? [] : r.sub_ids.split(",").map(Number),
        message: rowToMessage(r),
      },
    }));
    this.handedThrough = page.through;
    return page;
  }
}
