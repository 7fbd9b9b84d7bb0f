/**
 * What a session is made of (3.1.1 section 3.1.2.4, 5.0 section 4.1), as it moves
 * between a Gateway (while the client is online) and its Session object (while
 * offline, and as the one owner that decides takeovers).
 */
import type { QoS, RetainHandling } from "../mqtt/index.ts";
import { takeWithin } from "./batcher.ts";
import { assertWithinCall, MESSAGE_BATCH, type Message } from "./message.ts";

export interface SubscriptionOptions {
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: RetainHandling;
  /** 5.0 Subscription Identifier given with the SUBSCRIBE. */
  subscriptionId?: number;
}

/** Where an outbound QoS 1/2 message stands (4.3.2, 4.3.3). */
export type OutboundState = "queued" | "sent" | "released";

export interface OutboundMessage {
  /** The packet id it was sent with, kept for resending (MQTT-4.4.0-1). */
  packetId: number | null;
  state: OutboundState;
  message: Message;
  /** 5.0 Subscription Identifiers of the subscriptions it matched (3.3.2.3.8). */
  subscriptionIds: number[];
}

/** A message an offline session kept, with the Subscription Identifiers it was granted. */
export type QueuedMessage = Pick<OutboundMessage, "message" | "subscriptionIds">;

/**
 * Part of a session's unacknowledged and queued messages, oldest first, on its
 * way from one holder to the next: a call carries one page (at most a call's
 * worth, MESSAGE_BATCH), and the receiver asks for the next one from `through`
 * once it has stored this one.
 */
export interface OutboundPage {
  entries: OutboundMessage[];
  /** The sender's position of the last entry (or the `after` it was asked for). */
  through: number;
  /** Whether entries follow this page. */
  more: boolean;
}

/** A session's state handed from one holder to the next; its messages come a page at a time. */
/** A subscription as a session's state carries it between objects. */
export interface Subscription {
  filter: string;
  options: SubscriptionOptions;
}

export interface SessionState {
  subscriptions: Subscription[];
  /** The first page of unacknowledged and queued messages to the client. */
  outbound: OutboundPage;
  /** QoS 2 packet ids received from the client and not yet released. */
  inboundQos2: number[];
}

/**
 * Where a queue's pages start: before every row. Not 0: a Session numbers the
 * messages a gateway hands back below its oldest row (StoredState.absorb), which
 * may be below zero.
 */
export const QUEUE_START = Number.MIN_SAFE_INTEGER;

export function emptyPage(through = QUEUE_START): OutboundPage {
  return { entries: [], through, more: false };
}

export function emptySessionState(): SessionState {
  return { subscriptions: [], outbound: emptyPage(), inboundQos2: [] };
}

/**
 * The page that `rows` (a query's cursor, in order, read lazily) begin: rows are
 * read one at a time until a call's worth of messages is reached, so a queue of
 * any length never sits in memory whole. The query should ask for one row more
 * than MESSAGE_BATCH.maxItems, which tells whether more follow.
 */
export function pageOf<R>(
  rows: Iterable<R>,
  after: number,
  toEntry: (row: R) => { seq: number; entry: OutboundMessage },
): OutboundPage {
  function* entries() {
    for (const row of rows) yield toEntry(row);
  }
  const { taken, more } = takeWithin(
    entries(),
    (e) => MESSAGE_BATCH.sizeOf(e.entry.message),
    MESSAGE_BATCH.maxItems,
    MESSAGE_BATCH.maxBytes,
  );
  return { entries: taken.map((e) => e.entry), through: taken.at(-1)?.seq ?? after, more };
}

/** Refuses a page past what a call may carry, where it arrives (assertWithinCall). */
export function assertPageWithinCall(page: OutboundPage): OutboundPage {
  assertWithinCall(page.entries.map((e) => e.message));
  return page;
}
