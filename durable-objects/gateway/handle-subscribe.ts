/**
 * SUBSCRIBE and UNSUBSCRIBE (sections 3.8 and 3.10), carried out: what is granted
 * is broker/protocol/subscribe.ts's decision. Subscriptions go into the gateway's
 * local table and, for filters new to this client, are registered at their
 * shards before SUBACK; retained messages follow the SUBACK.
 */
import type { AclSource, Principal } from "../../broker/acl.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import { grantOf } from "../../broker/grant.ts";
import { type Message, newMessageId } from "../../broker/message.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { decideSubscribe, matchingFilters, wantsRetained } from "../../broker/protocol/subscribe.ts";
import { TokenBucket } from "../../broker/rate-limit.ts";
import type { SubscriptionOptions } from "../../broker/session-state.ts";
import { ReasonCode, type SubscribePacket, topicMatches, type UnsubscribePacket } from "../../mqtt/index.ts";
import { matchingFilter, retainedPages } from "../registration.ts";
import type { Connection } from "./connection.ts";
import type { Links } from "./links.ts";
import type { Outbound } from "./outbound.ts";
import type { GatewayStore } from "./store.ts";
import type { LocalSubscriptions } from "./subscriptions.ts";
import { isSysFilter } from "./sys-topics.ts";
import type { Wire } from "./wire.ts";

/** What handling SUBSCRIBE and UNSUBSCRIBE needs of the gateway. */
export interface SubscribeDeps {
  config: BrokerConfig;
  store: Pick<GatewayStore, "subscriptionCount" | "hasSub">;
  acl: AclSource;
  principal(conn: Connection): Principal;
  subscriptions: Pick<LocalSubscriptions, "add" | "remove">;
  links: Pick<Links, "registerFilters" | "unregisterFilters" | "shard">;
  outbound: Pick<Outbound, "gathered" | "deliver">;
  wire: Pick<Wire, "send" | "ackProperties">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
  /** Sends $SYS values now (a new $SYS subscriber gets them at once, then every SYS_INTERVAL). */
  publishSys(): Promise<void>;
  name(): string;
}

/**
 * Waits for the connection's SUBSCRIBE_RATE token: a client over it is shaped, as
 * PUBLISH_RATE shapes QoS 1/2 (inbound.ts), not ended. Its packets are handled in
 * order, one at a time (Connection.read), so what it sends meanwhile waits
 * undecoded, within the connection's byte bound. False if the connection ended.
 */
async function subscribeToken(d: SubscribeDeps, conn: Connection): Promise<boolean> {
  conn.subscribeBucket ??= new TokenBucket(d.config.subscribeRate, d.config.subscribeBurst);
  for (;;) {
    const wait = conn.subscribeBucket.waitFor();
    if (wait === 0) return !conn.finished;
    await new Promise((resolve) => setTimeout(resolve, wait));
    if (conn.finished) return false;
  }
}

export async function handleSubscribe(d: SubscribeDeps, conn: Connection, p: SubscribePacket): Promise<void> {
  const att = conn.connected;
  if (att === undefined || !(await subscribeToken(d, conn))) return;
  const { clientId } = att;
  // The ACL is asked first (it may be asynchronous), for each filter that parses.
  const principal = d.principal(conn);
  const allowed = new Map<string, boolean>();
  for (const matching of matchingFilters(p)) {
    if (matching !== null && !allowed.has(matching))
      allowed.set(matching, await d.acl.canSubscribe(principal, matching));
  }
  const decision = decideSubscribe(
    p,
    {
      version: conn.version,
      held: d.store.subscriptionCount(clientId),
      has: (filter) => d.store.hasSub(clientId, filter),
      allowed: (matching) => allowed.get(matching) === true,
    },
    d.config,
  );
  if (decision.kind === "close") return d.close(conn, decision.reason);
  const { granted, reasonCodes, problems } = decision;
  for (const g of granted) d.subscriptions.add(clientId, g.filter, g.options);
  const retainedFor = granted.filter(wantsRetained).map((g) => g.filter);
  const retained = await d.links.registerFilters(
    clientId,
    granted.filter((g) => !g.replaces).map((g) => g.filter),
    retainedFor,
  );
  const properties = problems.length > 0 ? d.wire.ackProperties(conn, problems.join("; ")) : undefined;
  d.wire.send(conn, { type: "suback", packetId: p.packetId, reasonCodes, properties });
  const subs = granted
    .filter((g) => retainedFor.includes(g.filter))
    .map((g): [string, SubscriptionOptions] => [g.filter, g.options]);
  // A page at a time, the next asked for once this one is handed to the client.
  for (const from of retained) {
    for await (const page of retainedPages((i) => d.links.shard(i), from)) {
      if (conn.finished) return;
      sendRetained(d, conn, page, subs);
    }
  }
  if (granted.some((g) => isSysFilter(g.filter))) await d.publishSys();
}

/** MQTT-3.3.1-6/-8: retained messages go to the new subscriber with RETAIN set. */
function sendRetained(
  d: SubscribeDeps,
  conn: Connection,
  retained: Message[],
  subs: Array<[string, SubscriptionOptions]>,
) {
  d.outbound.gathered(() => {
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
        d.outbound.deliver(
          conn,
          { ...m, id: newMessageId(d.name()) },
          grant.qos,
          grant.subscriptionIds,
          true,
        );
    }
  });
}

export async function handleUnsubscribe(
  d: SubscribeDeps,
  conn: Connection,
  p: UnsubscribePacket,
): Promise<void> {
  const att = conn.connected;
  if (att === undefined || !(await subscribeToken(d, conn))) return;
  const reasonCodes: number[] = [];
  const removed: string[] = [];
  for (const filter of p.topicFilters) {
    if (d.subscriptions.remove(att.clientId, filter)) {
      removed.push(filter);
      reasonCodes.push(ReasonCode.Success);
    } else {
      reasonCodes.push(ReasonCode.NoSubscriptionExisted);
    }
  }
  await d.links.unregisterFilters(att.clientId, removed);
  // MQTT-3.10.4-4: UNSUBACK even when nothing was unsubscribed.
  d.wire.send(conn, { type: "unsuback", packetId: p.packetId, reasonCodes });
}
