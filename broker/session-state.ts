/**
 * What a session is made of (3.1.1 section 3.1.2.4, 5.0 section 4.1), as it moves
 * between a Gateway (while the client is online) and its Session object (while
 * offline, and as the one owner that decides takeovers).
 */
import type { QoS, RetainHandling } from "../mqtt/index.ts";
import type { Message } from "./message.ts";

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

/** A session's state handed from one holder to the next. */
export interface SessionState {
  subscriptions: Array<[filter: string, options: SubscriptionOptions]>;
  /** Unacknowledged and queued messages to the client, oldest first. */
  outbound: OutboundMessage[];
  /** QoS 2 packet ids received from the client and not yet released. */
  inboundQos2: number[];
}

export function emptySessionState(): SessionState {
  return { subscriptions: [], outbound: [], inboundQos2: [] };
}
