/**
 * PUBLISH from a client (3.1.1 section 3.3, 5.0 section 3.3). The message goes to
 * the shard of its topic through the gateway's inbound path (inbound.ts), which
 * shapes each connection to its rate; the acknowledgement (PUBACK for QoS 1,
 * PUBREC for QoS 2) is sent once the shard has handed it to every destination
 * that stores it durably. The connection is not held up meanwhile: packets keep
 * flowing.
 */
import { log } from "../../broker/log.ts";
import { type Message, messageProperties, newMessageId, ownedBytes } from "../../broker/message.ts";
import { publishTopicProblem } from "../../broker/topic-limits.ts";
import { isWellFormedUtf8, type PublishPacket, ReasonCode } from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import type { Connected, Connection } from "./connection.ts";
import type { Refusal, Routed } from "./inbound.ts";

export function handlePublish(gw: Gateway, conn: Connection, p: PublishPacket): Promise<void> | undefined {
  const att = conn.connected;
  if (att === undefined) return;
  gw.counters.add("messages_in");
  gw.counters.add("bytes_in", p.payload.length + p.topic.length);
  // Aliases are set in the order packets arrive, by a publish that is then dropped too.
  const topic = resolveTopic(gw, conn, att, p);
  if (typeof topic !== "string") return gw.fail(conn, topic.reasonCode, topic.why);
  // QoS 0 over the connection's rate, or while the way to the shards is full, is
  // dropped and counted here, before it costs more than its decoding.
  if (p.qos === 0 && !gw.inbound.admitQos0(conn)) return;
  const problem = publishTopicProblem(gw.config, topic);
  // 5.0 3.3.2.1: an invalid topic name ends the connection with 0x90.
  if (problem !== null) return gw.fail(conn, ReasonCode.TopicNameInvalid, problem);

  const v5 = conn.version === 5;
  const refuse = (reasonCode: number, why: string): Promise<void> | undefined => {
    if (conn.firstTime("publish_refused"))
      log("info", "publish_refused", { gateway: gw.name, clientId: att.clientId, reason: why });
    if (p.qos === 0) return gw.fail(conn, reasonCode, why);
    const ack = p.qos === 1 ? "puback" : "pubrec";
    gw.send(conn, { type: ack, packetId: p.packetId, reasonCode, properties: gw.ackProperties(conn, why) });
    return;
  };
  if (!gw.acl.canPublish(gw.principal(conn), topic)) {
    if (conn.firstTime("publish_denied"))
      log("info", "publish_denied", { gateway: gw.name, clientId: att.clientId, topic });
    // 5.0: PUBACK/PUBREC 0x87. 3.1.1 has no such code: the message is acknowledged
    // and dropped, as MQTT-3.3.5-2 allows; QoS 2 still completes its flow.
    if (v5) {
      if (p.qos === 0) return;
      return refuse(ReasonCode.NotAuthorized, "not authorized to publish to this topic");
    }
    if (p.qos === 1) gw.send(conn, { type: "puback", packetId: p.packetId });
    if (p.qos === 2) {
      awaitRelease(gw, conn, att.clientId, p.packetId);
      gw.send(conn, { type: "pubrec", packetId: p.packetId });
    }
    return;
  }
  // 5.0 3.3.2.3.2: a payload declared as UTF-8 must be UTF-8 (0x99).
  if (v5 && p.properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(p.payload)) {
    return refuse(
      ReasonCode.PayloadFormatInvalid,
      "payload is not UTF-8 as its Payload Format Indicator says",
    );
  }

  const message: Message = {
    id: newMessageId(gw.name),
    topic,
    payload: ownedBytes(p.payload),
    qos: p.qos,
    retain: p.retain,
    origin: att.clientId,
  };
  const properties = messageProperties(p.properties);
  if (properties !== undefined) message.properties = properties;
  const expiry = p.properties?.messageExpiryInterval;
  if (expiry !== undefined) message.expiresAt = Date.now() + expiry * 1000;

  return route(gw, conn, att, p, message);
}

/**
 * Hands an accepted PUBLISH to the inbound path: QoS 0 straight on (it was
 * admitted above), QoS 1/2 in the connection's turn, acknowledged once the shard
 * has it (4.3).
 */
function route(
  gw: Gateway,
  conn: Connection,
  att: Connected,
  p: PublishPacket,
  message: Message,
): Promise<void> | undefined {
  if (p.qos === 0) {
    gw.inbound.route(message).then(
      (code) => (refused(code) && conn.version !== 5 ? quotaRefused(gw, conn, "puback", 0, code) : undefined),
      (err) => log("warn", "publish_failed", { clientId: att.clientId, error: String(err) }),
    );
    return;
  }
  const state = conn.inbound;
  const packetId = p.packetId;
  if (p.qos === 2 && (state.qos2.has(packetId) || gw.store.hasInboundQos2(att.clientId, packetId))) {
    // QoS 2, method B of 4.3.3: a PUBLISH sent again with the same packet id before
    // PUBREL is acknowledged and not routed again (MQTT-4.3.3-9); while the first
    // is still on its way, its own PUBREC answers both.
    if (!state.qos2.has(packetId)) gw.send(conn, { type: "pubrec", packetId });
    return;
  }
  // The client may have at most our Receive Maximum QoS 1/2 PUBLISH unacknowledged
  // (MQTT-3.3.4-7, the client's rule); past it the Server uses DISCONNECT 0x93
  // (3.3.4). 3.1.1 has no Receive Maximum: the same bound applies and ends the
  // connection. Acknowledgements wait while the client is over its rate, so this
  // is what stops a client that does not wait for them.
  state.awaitingRelease ??= gw.store.inboundQos2Count(att.clientId);
  if (state.qos1 + state.qos2.size + state.awaitingRelease >= gw.config.receiveMaximum) {
    return gw.fail(
      conn,
      ReasonCode.ReceiveMaximumExceeded,
      `more than ${gw.config.receiveMaximum} unacknowledged QoS 1/2 PUBLISH (Receive Maximum)`,
    );
  }
  let refusal: Refusal | undefined;
  if (p.qos === 1) {
    state.qos1++;
    refusal = gw.inbound.enqueue(conn, message, (routed) => {
      state.qos1--;
      const code = settledCode(gw, conn, routed);
      if (code === null) return;
      if (refused(code)) return quotaRefused(gw, conn, "puback", packetId, code);
      gw.send(conn, acknowledgement("puback", packetId, code, conn.version));
    });
  } else {
    state.qos2.add(packetId);
    refusal = gw.inbound.enqueue(conn, message, (routed) => {
      state.qos2.delete(packetId);
      const code = settledCode(gw, conn, routed);
      if (code === null) return;
      if (refused(code)) return quotaRefused(gw, conn, "pubrec", packetId, code);
      awaitRelease(gw, conn, att.clientId, packetId);
      gw.send(conn, acknowledgement("pubrec", packetId, code, conn.version));
    });
  }
  if (refusal !== undefined) return gw.fail(conn, refusal.reasonCode, refusal.why);
  return;
}

/** A QoS 2 packet id is stored until its PUBREL (MQTT-4.3.3-9), and counted. */
function awaitRelease(gw: Gateway, conn: Connection, clientId: string, packetId: number): void {
  if (gw.store.addInboundQos2(clientId, packetId) && conn.inbound.awaitingRelease !== undefined)
    conn.inbound.awaitingRelease++;
}

/**
 * The shard's reason code for a routed QoS 1/2 message; null when there is no one
 * to answer (the connection ended meanwhile) or the call failed (it ends now).
 */
function settledCode(gw: Gateway, conn: Connection, routed: Routed): number | undefined | null {
  if (conn.finished) return null;
  if (routed.ok) return routed.code;
  void gw.fail(conn, ReasonCode.UnspecifiedError, `publish failed: ${String(routed.error)}`);
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
  gw: Gateway,
  conn: Connection,
  ack: "puback" | "pubrec",
  packetId: number,
  code: number,
) {
  if (conn.version !== 5) return gw.fail(conn, code, "retained message quota exceeded");
  gw.send(conn, {
    type: ack,
    packetId,
    reasonCode: code,
    properties: gw.ackProperties(conn, "retained message quota exceeded"),
  });
  return undefined;
}

/**
 * The topic of a PUBLISH, through the client's topic aliases (5.0 3.3.2.3.4): a
 * topic with an alias sets the mapping, an empty topic with an alias uses it.
 */
function resolveTopic(
  gw: Gateway,
  conn: Connection,
  att: Connected,
  p: PublishPacket,
): string | { reasonCode: number; why: string } {
  const alias = p.properties?.topicAlias;
  if (alias === undefined) {
    if (p.topic === "" && conn.version === 5) {
      return { reasonCode: ReasonCode.ProtocolError, why: "empty topic name without a Topic Alias" };
    }
    return p.topic;
  }
  // MQTT-3.3.2-9 / 3.3.2.3.4: 0 and values above our Topic Alias Maximum are invalid.
  if (alias === 0 || alias > gw.config.topicAliasMaximum) {
    return {
      reasonCode: ReasonCode.TopicAliasInvalid,
      why: `Topic Alias ${alias} outside 1..${gw.config.topicAliasMaximum}`,
    };
  }
  conn.inboundAliases ??= gw.store.topicAliases(att.connId);
  if (p.topic === "") {
    const known = conn.inboundAliases.get(alias);
    if (known === undefined)
      return { reasonCode: ReasonCode.ProtocolError, why: `unknown Topic Alias ${alias}` };
    return known;
  }
  if (conn.inboundAliases.get(alias) !== p.topic) {
    conn.inboundAliases.set(alias, p.topic);
    gw.store.setTopicAlias(att.connId, alias, p.topic);
  }
  return p.topic;
}
