/**
 * PUBLISH from a client (3.1.1 section 3.3, 5.0 section 3.3), carried out: the
 * decision is broker/protocol/publish.ts's. The message goes to the shard of its
 * topic through the gateway's inbound path (inbound.ts), which shapes each
 * connection to its rate; the acknowledgement (PUBACK for QoS 1, PUBREC for QoS
 * 2) is sent once the shard has handed it to every destination that stores it
 * durably. The connection is not held up meanwhile: packets keep flowing.
 */
import type { AclSource, Principal } from "../../broker/acl.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import type { Counters } from "../../broker/counters.ts";
import { log } from "../../broker/log.ts";
import { type Message, newMessageId } from "../../broker/message.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { decidePublish } from "../../broker/protocol/publish.ts";
import type { GatewayCounter } from "../../broker/stats.ts";
import { type PublishPacket, ReasonCode } from "../../mqtt/index.ts";
import type { Connected, Connection } from "./connection.ts";
import type { Inbound, Routed } from "./inbound.ts";
import type { GatewayStore } from "./store.ts";
import type { Wire } from "./wire.ts";

/** What handling a PUBLISH needs of the gateway. */
export interface PublishDeps {
  config: BrokerConfig;
  counters: Pick<Counters<GatewayCounter>, "add">;
  store: Pick<
    GatewayStore,
    "topicAliases" | "setTopicAlias" | "hasInboundQos2" | "inboundQos2Count" | "addInboundQos2"
  >;
  acl: AclSource;
  principal(conn: Connection): Principal;
  inbound: Pick<Inbound, "admitQos0" | "route" | "enqueue">;
  wire: Pick<Wire, "send" | "ackProperties">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
  name(): string;
}

const protocolError = (reasonCode: number, why: string): CloseReason => ({
  kind: "protocol-error",
  reasonCode,
  why,
});

export async function handlePublish(d: PublishDeps, conn: Connection, p: PublishPacket): Promise<void> {
  const att = conn.connected;
  if (att === undefined) return;
  d.counters.add("messages_in");
  d.counters.add("bytes_in", p.payload.length + p.topic.length);
  // Aliases are set in the order packets arrive, by a publish that is then dropped too.
  const topic = resolveTopic(d, conn, att, p);
  if (typeof topic !== "string") return d.close(conn, protocolError(topic.reasonCode, topic.why));
  // QoS 0 over the connection's rate, or while the way to the shards is full, is
  // dropped and counted here, before it costs more than its decoding.
  if (p.qos === 0 && !d.inbound.admitQos0(conn)) return;
  const allowed = await d.acl.canPublish(d.principal(conn), topic);
  const now = Date.now();
  const decision = decidePublish(
    {
      packet: p,
      topic,
      version: conn.version,
      allowed,
      clientId: att.clientId,
      id: newMessageId(d.name()),
      now,
    },
    d.config,
  );
  switch (decision.kind) {
    case "close":
      return d.close(conn, decision.reason);
    case "drop":
      logOnce(d, conn, "publish_denied", { topic });
      return;
    case "refuse":
      logOnce(d, conn, "publish_refused", { reason: decision.why });
      if (p.qos === 0) return;
      d.wire.send(conn, {
        type: decision.ack,
        packetId: p.packetId,
        reasonCode: decision.reasonCode,
        properties: d.wire.ackProperties(conn, decision.why),
      });
      return;
    case "acknowledge-dropped":
      logOnce(d, conn, "publish_denied", { topic });
      if (p.qos === 1) d.wire.send(conn, { type: "puback", packetId: p.packetId });
      if (p.qos === 2) {
        awaitRelease(d, conn, att.clientId, p.packetId);
        d.wire.send(conn, { type: "pubrec", packetId: p.packetId });
      }
      return;
    case "route":
      return route(d, conn, att, p, decision.message);
  }
}

/** Events a client can repeat with every message are logged once per connection (Connection.firstTime). */
function logOnce(d: PublishDeps, conn: Connection, event: string, fields: Record<string, unknown>): void {
  if (conn.firstTime(event))
    log("info", event, { gateway: d.name(), clientId: conn.connected?.clientId, ...fields });
}

/**
 * Hands an accepted PUBLISH to the inbound path: QoS 0 straight on (it was
 * admitted above), QoS 1/2 in the connection's turn, acknowledged once the shard
 * has it (4.3).
 */
function route(
  d: PublishDeps,
  conn: Connection,
  att: Connected,
  p: PublishPacket,
  message: Message,
): Promise<void> | undefined {
  if (p.qos === 0) {
    d.inbound.route(message).then(
      (code) => (refused(code) && conn.version !== 5 ? quotaRefused(d, conn, "puback", 0, code) : undefined),
      (err) => log("warn", "publish_failed", { clientId: att.clientId, error: String(err) }),
    );
    return;
  }
  const state = conn.inbound;
  const packetId = p.packetId;
  if (p.qos === 2 && (state.qos2.has(packetId) || d.store.hasInboundQos2(att.clientId, packetId))) {
    // QoS 2, method B of 4.3.3: a PUBLISH sent again with the same packet id before
    // PUBREL is acknowledged and not routed again (MQTT-4.3.3-10 in 5.0); while the
    // first is still on its way, its own PUBREC answers both.
    if (!state.qos2.has(packetId)) d.wire.send(conn, { type: "pubrec", packetId });
    return;
  }
  // The client may have at most our Receive Maximum QoS 1/2 PUBLISH unacknowledged
  // (MQTT-3.3.4-7, the client's rule); past it the Server uses DISCONNECT 0x93
  // (3.3.4). 3.1.1 has no Receive Maximum: the same bound applies and ends the
  // connection. Acknowledgements wait while the client is over its rate, so this
  // is what stops a client that does not wait for them.
  state.awaitingRelease ??= d.store.inboundQos2Count(att.clientId);
  if (state.qos1 + state.qos2.size + state.awaitingRelease >= d.config.receiveMaximum) {
    const why = `more than ${d.config.receiveMaximum} unacknowledged QoS 1/2 PUBLISH (Receive Maximum)`;
    return d.close(conn, protocolError(ReasonCode.ReceiveMaximumExceeded, why));
  }
  let refusal: ReturnType<typeof d.inbound.enqueue>;
  if (p.qos === 1) {
    state.qos1++;
    refusal = d.inbound.enqueue(conn, message, (routed) => {
      state.qos1--;
      const code = settledCode(d, conn, routed);
      if (code === null) return;
      if (refused(code)) return quotaRefused(d, conn, "puback", packetId, code);
      d.wire.send(conn, acknowledgement("puback", packetId, code, conn.version));
    });
  } else {
    state.qos2.add(packetId);
    refusal = d.inbound.enqueue(conn, message, (routed) => {
      state.qos2.delete(packetId);
      const code = settledCode(d, conn, routed);
      if (code === null) return;
      if (refused(code)) return quotaRefused(d, conn, "pubrec", packetId, code);
      awaitRelease(d, conn, att.clientId, packetId);
      d.wire.send(conn, acknowledgement("pubrec", packetId, code, conn.version));
    });
  }
  if (refusal !== undefined) return d.close(conn, protocolError(refusal.reasonCode, refusal.why));
  return;
}

/** A QoS 2 packet id is stored until its PUBREL (4.3.3), and counted. */
function awaitRelease(d: PublishDeps, conn: Connection, clientId: string, packetId: number): void {
  if (d.store.addInboundQos2(clientId, packetId) && conn.inbound.awaitingRelease !== undefined)
    conn.inbound.awaitingRelease++;
}

/**
 * The shard's reason code for a routed QoS 1/2 message; null when there is no one
 * to answer (the connection ended meanwhile) or the call failed (it ends now).
 */
function settledCode(d: PublishDeps, conn: Connection, routed: Routed): number | undefined | null {
  if (conn.finished) return null;
  if (routed.ok) return routed.code;
  void d.close(conn, protocolError(ReasonCode.UnspecifiedError, `publish failed: ${String(routed.error)}`));
  return null;
}

/** Whether a shard's answer refuses the message (0x80 and above). */
function refused(code: number | undefined): code is number {
  return code !== undefined && code >= 0x80;
}

/**
 * PUBACK or PUBREC for an accepted message: in 5.0 with 0x10 when it reached no
 * subscriber (3.4.2.1, 3.5.2.1); 3.1.1 acknowledgements carry no reason code.
 */
function acknowledgement(
  type: "puback" | "pubrec",
  packetId: number,
  code: number | undefined,
  version: number,
) {
  return version === 5 && code === ReasonCode.NoMatchingSubscribers
    ? { type, packetId, reasonCode: code }
    : { type, packetId };
}

/** A shard refused the message (retained quota): 5.0 gets the code in the ack, 3.1.1 a close. */
function quotaRefused(
  d: PublishDeps,
  conn: Connection,
  ack: "puback" | "pubrec",
  packetId: number,
  code: number,
) {
  const why = "retained message quota exceeded";
  if (conn.version !== 5) return d.close(conn, protocolError(code, why));
  d.wire.send(conn, { type: ack, packetId, reasonCode: code, properties: d.wire.ackProperties(conn, why) });
  return undefined;
}

/**
 * The topic of a PUBLISH, through the client's topic aliases (5.0 3.3.2.3.4): a
 * topic with an alias sets the mapping, an empty topic with an alias uses it.
 */
function resolveTopic(
  d: PublishDeps,
  conn: Connection,
  att: Connected,
  p: PublishPacket,
): string | { reasonCode: number; why: string } {
  const alias = p.properties?.topicAlias;
  if (alias === undefined) {
    if (p.topic === "" && conn.version === 5)
      return { reasonCode: ReasonCode.ProtocolError, why: "empty topic name without a Topic Alias" };
    return p.topic;
  }
  // 5.0 3.3.2.3.4: 0 and values above our Topic Alias Maximum are a Topic Alias invalid (0x94).
  if (alias === 0 || alias > d.config.topicAliasMaximum) {
    return {
      reasonCode: ReasonCode.TopicAliasInvalid,
      why: `Topic Alias ${alias} outside 1..${d.config.topicAliasMaximum}`,
    };
  }
  conn.inboundAliases ??= d.store.topicAliases(att.connId);
  if (p.topic === "") {
    const known = conn.inboundAliases.get(alias);
    if (known === undefined)
      return { reasonCode: ReasonCode.ProtocolError, why: `unknown Topic Alias ${alias}` };
    return known;
  }
  if (conn.inboundAliases.get(alias) !== p.topic) {
    conn.inboundAliases.set(alias, p.topic);
    d.store.setTopicAlias(att.connId, alias, p.topic);
  }
  return p.topic;
}
