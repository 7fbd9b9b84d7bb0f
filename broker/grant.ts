/**
 * What one client gets of one message through all its matching subscriptions:
 * one delivery at the highest QoS any of them grants, each capped at the
 * message's QoS (MQTT-3.3.4-2, MQTT-3.8.4-6), every Subscription Identifier
 * among them (5.0 3.3.4, MQTT-3.3.4-3), RETAIN kept when one asks Retain As
 * Published, and none through a No Local subscription back to the publisher
 * (5.0 3.8.3.1). The one place that decides it, for live delivery at a gateway,
 * queueing at an offline Session, and retained messages at subscribe time.
 */
import type { QoS } from "../mqtt/index.ts";
import type { Message } from "./message.ts";
import type { SubscriptionOptions } from "./session-state.ts";

export interface Grant {
  qos: QoS;
  subscriptionIds: number[];
  retainAsPublished: boolean;
}

/**
 * Folds one matching subscription of `clientId` into its grant so far; the
 * grant, new or updated (unchanged when No Local keeps the message from it).
 * `clientId` undefined: No Local does not apply (retained messages at subscribe).
 */
export function addMatch(
  grant: Grant | undefined,
  options: SubscriptionOptions,
  message: Message,
  clientId: string | undefined,
): Grant | undefined {
  if (options.noLocal && clientId !== undefined && message.origin === clientId) return grant;
  const qos = Math.min(options.qos, message.qos) as QoS;
  const id = options.subscriptionId;
  if (grant === undefined)
    return {
      qos,
      subscriptionIds: id === undefined ? [] : [id],
      retainAsPublished: options.retainAsPublished,
    };
  grant.qos = Math.max(grant.qos, qos) as QoS;
  if (id !== undefined) grant.subscriptionIds.push(id);
  grant.retainAsPublished ||= options.retainAsPublished;
  return grant;
}

/** The grant of a client's subscriptions that match a message; undefined if none applies. */
export function grantOf(
  message: Message,
  matching: Iterable<SubscriptionOptions>,
  clientId: string | undefined,
): Grant | undefined {
  let grant: Grant | undefined;
  for (const options of matching) grant = addMatch(grant, options, message, clientId);
  return grant;
}
