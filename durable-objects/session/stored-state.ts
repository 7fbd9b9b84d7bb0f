/**
 * A persistent session's state as its Session stores it between connections:
 * subscriptions, QoS 2 packet ids received from the client and not yet released,
 * and its messages (SessionQueue). It comes in from a gateway when the client
 * leaves or is taken over (absorb), and goes out to the gateway of a resuming
 * client (take), the messages a page at a time.
 */
import {
  assertPageWithinCall,
  type OutboundMessage,
  type OutboundPage,
  type SessionState,
  type SubscriptionOptions,
} from "../../broker/session-state.ts";

/** Rows between a gateway's messages put back before a queue and the queue's oldest: more than any queue holds. */
const QUEUE_GAP = 2 ** 32;

/** The stored queue, as the state's hand-over uses it (SessionQueue). */
export interface QueueRows {
  oldest(): number | null;
  insert(entry: OutboundMessage, seq: number | null, conflict: "IGNORE" | "REPLACE"): void;
  firstPage(): OutboundPage;
  reclaim(): void;
  clear(): void;
}

export interface StoredStateDeps {
  /** The session's tables (SessionStorage.sql: created the first time they are needed). */
  sql: () => SqlStorage;
  queue: QueueRows;
}

export class StoredState {
  private readonly deps: StoredStateDeps;

  constructor(deps: StoredStateDeps) {
    this.deps = deps;
  }

  subscriptions(): Array<[string, SubscriptionOptions]> {
    return this.deps
      .sql()
      .exec<{ filter: string; options: string }>("SELECT filter, options FROM subs")
      .toArray()
      .map((r) => [r.filter, JSON.parse(r.options) as SubscriptionOptions]);
  }

  /** The filters of the session's subscriptions, as written (shared ones with their `$share/{group}/`). */
  filters(): string[] {
    return this.subscriptions().map(([f]) => f);
  }

  /**
   * Stores state handed over by a gateway: subscriptions, inbound QoS 2 ids and
   * the first page of messages, then each further page as `next` gives it. The
   * gateway's subscriptions and QoS 2 ids replace those stored here: the client
   * may have unsubscribed while it was there.
   *
   * The queue may still hold rows the gateway had not taken when the client left
   * (it takes a long queue a page at a time while the client is connected). The
   * gateway's messages are older than those: they go in before them, numbered
   * from QUEUE_GAP below the oldest; and where the gateway has a message this
   * queue has too (a page it was handed last), the gateway's row, which knows
   * whether it was sent and with which packet id, replaces this one.
   */
  async absorb(state: SessionState, next: (after: number) => Promise<OutboundPage | null>): Promise<void> {
    const { queue } = this.deps;
    const sql = this.deps.sql();
    const oldest = queue.oldest();
    let slot = oldest === null ? null : oldest - QUEUE_GAP;
    // What the gateway had, and what was handed to it, waits here again.
    queue.reclaim();
    sql.exec("DELETE FROM subs");
    sql.exec("DELETE FROM inbound_qos2");
    for (const { filter, options } of state.subscriptions) {
      sql.exec(
        "INSERT OR REPLACE INTO subs (filter, options) VALUES (?, ?)",
        filter,
        JSON.stringify(options),
      );
    }
    for (const id of state.inboundQos2)
      sql.exec("INSERT OR IGNORE INTO inbound_qos2 (packet_id) VALUES (?)", id);
    let page: OutboundPage | null = state.outbound;
    while (page !== null) {
      assertPageWithinCall(page);
      for (const entry of page.entries) {
        queue.insert(entry, slot, "REPLACE");
        if (slot !== null) slot++;
      }
      if (!page.more) break;
      page = await next(page.through);
    }
  }

  /** The stored state for a resuming client: everything but its messages' later pages. */
  take(): SessionState {
    const outbound = this.deps.queue.firstPage();
    const inboundQos2 = this.deps
      .sql()
      .exec<{ packet_id: number }>("SELECT packet_id FROM inbound_qos2")
      .toArray()
      .map((r) => r.packet_id);
    const subscriptions = this.subscriptions().map(([filter, options]) => ({ filter, options }));
    return { subscriptions, outbound, inboundQos2 };
  }

  /** Discards what is stored: a claim that does not keep it. */
  clear(): void {
    const sql = this.deps.sql();
    sql.exec("DELETE FROM subs");
    this.deps.queue.clear();
    sql.exec("DELETE FROM inbound_qos2");
  }

  /** Rows in the session's tables. */
  rows(): number {
    return this.deps
      .sql()
      .exec<{ n: number }>(
        "SELECT (SELECT COUNT(*) FROM subs) + (SELECT COUNT(*) FROM queue) + (SELECT COUNT(*) FROM inbound_qos2) AS n",
      )
      .one().n;
  }
}
