/**
 * SUBSCRIBE and UNSUBSCRIBE (sections 3.8 and 3.10). Subscriptions go into the
 * gateway's local table and, for filters new to this client, are registered at
 * their shards before SUBACK; retained messages follow the SUBACK.
 */
import { grantOf } from "../../broker/grant.ts";
import { type Message, newMessageId } from "../../broker/message.ts";
import type { SubscriptionOptions } from "../../broker/session-state.ts";
import { topicLimitProblem } from "../../broker/topic-limits.ts";
import {
  parseSubscriptionFilter,
  ReasonCode,
  SubackFailure311,
  type SubscribePacket,
  topicMatches,
  type UnsubscribePacket,
} from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import { matchingFilter, retainedPages } from "../registration.ts";
import type { Connection } from "./connection.ts";
import { isSysFilter } from "./sys-topics.ts";

export async function handleSubscribe(gw: Gateway, conn: Connection, p: SubscribePacket): Promise<void> {
  const att = conn.connected;
  if (att === undefined) return;
  const v5 = conn.version === 5;
  const subscriptionId = p.properties?.subscriptionIdentifiers?.[0];
  const reasonCodes: number[] = [];
  const problems: string[] = [];
  const accepted: Array<[string, SubscriptionOptions]> = [];
  let held = gw.store.subscriptionCount(att.clientId);
  // MQTT-3.9.3: a failure code per refused filter (one code for all in 3.1.1); the others are granted.
  const refuse = (code5: number, filter: string, why: string) => {
    reasonCodes.push(v5 ? code5 : SubackFailure311);
    problems.push(`${JSON.stringify(filter.slice(0, 64))}: ${why}`);
  };
  for (const s of p.subscriptions) {
    const parsed = parseSubscriptionFilter(s.topicFilter);
    const tooBig = topicLimitProblem(gw.config, s.topicFilter);
    if (tooBig !== null) {
      refuse(ReasonCode.TopicFilterInvalid, s.topicFilter, tooBig);
      continue;
    }
    if ("problem" in parsed) {
      refuse(ReasonCode.TopicFilterInvalid, s.topicFilter, parsed.problem);
      continue;
    }
    if (parsed.shareGroup !== undefined && s.noLocal) {
      // MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error.
      return gw.fail(conn, ReasonCode.ProtocolError, "No Local set on a shared subscription (MQTT-3.8.3-4)");
    }
    const options: SubscriptionOptions = {
      qos: s.qos,
      noLocal: s.noLocal,
      retainAsPublished: s.retainAsPublished,
      retainHandling: s.retainHandling,
    };
    if (subscriptionId !== undefined) options.subscriptionId = subscriptionId;
    if (!gw.acl.canSubscribe(gw.principal(conn), parsed.filter)) {
      refuse(ReasonCode.NotAuthorized, s.topicFilter, "not authorized");
      continue;
    }
    const isNew = !gw.store.hasSub(att.clientId, s.topicFilter);
    if (isNew && held >= gw.config.maxSubscriptions) {
      // A quota, not a protocol fault: this filter is refused, the session goes on.
      refuse(
        ReasonCode.QuotaExceeded,
        s.topicFilter,
        `more than ${gw.config.maxSubscriptions} subscriptions`,
      );
      continue;
    }
    if (isNew) held++;
    accepted.push([s.topicFilter, options]);
    reasonCodes.push(s.qos);
  }

  // MQTT-3.8.4-3: a subscription to a filter the client already has replaces it.
  const existing = new Set(accepted.filter(([f]) => gw.store.hasSub(att.clientId, f)).map(([f]) => f));
  for (const [filter, options] of accepted) gw.addSubscription(att.clientId, filter, options);
  // Retain Handling (5.0 3.8.3.1): 0 always, 1 only for a new subscription, 2 never.
  const retainedFor = accepted
    .filter(([f, o]) => o.retainHandling === 0 || (o.retainHandling === 1 && !existing.has(f)))
    .map(([f]) => f);
  const retained = await gw.registerFilters(
    att.clientId,
    accepted.map(([f]) => f).filter((f) => !existing.has(f)),
    retainedFor,
  );
  const properties = problems.length > 0 ? gw.ackProperties(conn, problems.join("; ")) : undefined;
  gw.send(conn, { type: "suback", packetId: p.packetId, reasonCodes, properties });
  const subs = accepted.filter(([f]) => retainedFor.includes(f));
  // A page at a time, the next asked for once this one is handed to the client.
  for (const from of retained) {
    for await (const page of retainedPages((i) => gw.shard(i), from)) {
      if (conn.finished) return;
      sendRetained(gw, conn, page, subs);
    }
  }
  // $SYS values go out at once to a new subscriber, then every SYS_INTERVAL.
  if (accepted.some(([f]) => isSysFilter(f))) await gw.publishSys();
}

/** MQTT-3.3.1-6/-8: retained messages go to the new subscriber with RETAIN set. */
function sendRetained(
  gw: Gateway,
  conn: Connection,
  retained: Message[],
  subs: Array<[string, SubscriptionOptions]>,
) {
  gw.outbound.gathered(() => {
    for (const m of retained) {
      const matching = subs.filter(([filter]) => topicMatches(matchingFilter(filter), m.topic));
      // Not a forwarding of a publish: No Local does not apply (clientId undefined).
      const grant = grantOf(
        m,
        matching.map(([, options]) => options),
        undefined,
      );
      // Each sending of a retained message is a delivery of its own: a fresh id, so
      // that a second subscription does not look like a duplicate of the first.
      if (grant !== undefined)
        gw.outbound.deliver(
          conn,
          { ...m, id: newMessageId(gw.name) },
          grant.qos,
          grant.subscriptionIds,
          true,
        );
    }
  });
}

export async function handleUnsubscribe(gw: Gateway, conn: Connection, p: UnsubscribePacket): Promise<void> {
  const att = conn.connected;
  if (att === undefined) return;
  const reasonCodes: number[] = [];
  const removed: string[] = [];
  for (const filter of p.topicFilters) {
    if (gw.removeSubscription(att.clientId, filter)) {
      removed.push(filter);
      reasonCodes.push(ReasonCode.Success);
    } else {
      reasonCodes.push(ReasonCode.NoSubscriptionExisted);
    }
  }
  await gw.unregisterFilters(att.clientId, removed);
  // MQTT-3.10.4-4: UNSUBACK even when nothing was unsubscribed.
  gw.send(conn, { type: "unsuback", packetId: p.packetId, reasonCodes });
}
