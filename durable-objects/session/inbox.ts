/**
 * Messages arriving for a Session's client: from the shards while the Session is
 * their destination (enqueue), or from its gateway, matched there already
 * (append). While the client is online they are passed on to its gateway; when
 * it does not take them (the client left, or its queue is still on its way
 * there, so newer messages wait behind it) they are queued. Only QoS 1/2 is kept
 * for an offline session, as Mosquitto does.
 */
import { grantOf } from "../../broker/grant.ts";

import { log } from "../../broker/log.ts";

import { assertWithinCall, isExpired, type Message } from "../../broker/message.ts";

import type { QueuedMessage, SubscriptionOptions } from "../../broker/session-state.ts";

import { topicMatches } from "../../mqtt/index.ts";
import { isShared, matchingFilter } from "../registration.ts";
import type { SessionRecord } from "./ownership.ts";

export interface InboxDeps {
  readRecord: () => SessionRecord | undefined;
  /** The session's stored subscriptions, by filter. */
  subscriptions: () => Array<[string, SubscriptionOptions]>;
  /** Queues messages within MAX_QUEUED_MESSAGES; how many were dropped (SessionQueue). */
  keep: (entries: QueuedMessage[]) => number;
  /** Passes messages to the client's gateway; false if it did not take them. */
  deliverTo: (record: SessionRecord, entries: QueuedMessage[]) => Promise<boolean>;
  /** MAX_QUEUED_MESSAGES, for the log. */
  maxQueued: number;
}

export class Inbox {
  private readonly deps: InboxDeps;

  constructor(deps: InboxDeps) {
    this.deps = deps;
  }

  /** Messages for the client from a shard or from a gateway it just left: granted by the stored subscriptions. */
  async enqueue(messages: Message[]): Promise<void> {
    assertWithinCall(messages);
    const record = this.deps.readRecord();
    if (record === undefined) return;
    const subs = this.deps.subscriptions();
    const now = Date.now();
    const accepted: QueuedMessage[] = [];
    for (const m of messages) {
      if (isExpired(m, now)) continue;
      const grant = grantOf(m, matching(m, subs), record.clientId);
      // Only QoS 1/2 messages are kept for an offline session (as Mosquitto does).
      if (grant === undefined || grant.qos === 0) continue;
      const message = { ...m, qos: grant.qos, retain: grant.retainAsPublished && m.retain };
      accepted.push({ message, subscriptionIds: grant.subscriptionIds });
    }
    await this.keep(record, accepted);
  }

  /**
   * Messages for the client that its gateway matched already (the client has
   * just moved, or its queue is still on its way to the gateway): queued as
   * granted there, since subscriptions made meanwhile are known only there.
   */
  async append(entries: QueuedMessage[], heldBy?: string): Promise<void> {
    assertWithinCall(entries.map((e) => e.message));
    const record = this.deps.readRecord();
    if (record === undefined) return;
    const now = Date.now();
    // The gateway that sent them holds newer messages back while its connection
    // takes the queue: offering them back to it would only be refused (one more
    // hop each way), so they are queued at once, behind the queue.
    const offer = heldBy === undefined || heldBy !== record.ownerConn;
    await this.keep(
      record,
      entries.filter((e) => e.message.qos > 0 && !isExpired(e.message, now)),
      offer,
    );
  }

  /** Passes accepted messages to the client's gateway while it is online (when `offer`), else queues them. */
  private async keep(record: SessionRecord, accepted: QueuedMessage[], offer = true): Promise<void> {
    if (accepted.length === 0) return;
    if (offer && record.online && (await this.deps.deliverTo(record, accepted))) return;
    const dropped = this.deps.keep(accepted);
    if (dropped > 0)
      log("warn", "queue_full", { clientId: record.clientId, dropped, max: this.deps.maxQueued });
  }
}

/** The options of this session's subscriptions that match a message. */
function* matching(m: Message, subs: Array<[string, SubscriptionOptions]>): Iterable<SubscriptionOptions> {
  for (const [filter, options] of subs) {
    // A shared subscription counts only for the message its group chose this client for.
    if (isShared(filter) ? m.target?.filter !== filter : m.target !== undefined) continue;
    if (topicMatches(matchingFilter(filter), m.topic)) yield options;
  }
}
