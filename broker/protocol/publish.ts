/**
 * What a PUBLISH from a client comes to (3.1.1 and 5.0, section 3.3), decided
 * from what is known of it: its topic (aliases resolved), whether the ACL lets
 * its principal publish there, the connection's protocol level. No I/O: the
 * Gateway carries the decision out (durable-objects/gateway/handle-publish.ts).
 */
import { isWellFormedUtf8, type PublishPacket, ReasonCode } from "../../mqtt/index.ts";
import { type Message, messageProperties, ownedBytes } from "../message.ts";
import { publishTopicProblem, type TopicLimits } from "../topic-limits.ts";
import type { CloseReason } from "./close.ts";

export type PublishDecision =
  /** The connection ends. */
  | { kind: "close"; reason: CloseReason }
  /** 5.0: the acknowledgement carries a failure code and the message goes nowhere. */
  | { kind: "refuse"; ack: "puback" | "pubrec"; reasonCode: number; why: string }
  /** Nothing is sent back and the message goes nowhere (QoS 0 a 5.0 client may not publish). */
  | { kind: "drop"; why: string }
  /**
   * 3.1.1 has no code to refuse with: the message is acknowledged and dropped
   * (MQTT-3.3.5-2); QoS 2 still completes its flow (the id is kept until PUBREL).
   */
  | { kind: "acknowledge-dropped"; why: string }
  /** On to the shard of its topic. */
  | { kind: "route"; message: Message };

/** What is known of a PUBLISH when it is decided. */
export interface PublishFacts {
  packet: PublishPacket;
  /** The topic the message goes to: the packet's, or its alias's (5.0 3.3.2.3.4). */
  topic: string;
  version: number;
  /** The ACL's answer for this principal and topic. */
  allowed: boolean;
  /** The publisher's client id (for No Local, 5.0 3.8.3.1). */
  clientId: string;
  /** The id the accepted message gets (unique per accepted PUBLISH). */
  id: string;
  now: number;
}

export function decidePublish(f: PublishFacts, limits: TopicLimits): PublishDecision {
  const p = f.packet;
  const problem = publishTopicProblem(limits, f.topic);
  // 5.0 3.3.2.1: an invalid topic name ends the connection with 0x90.
  if (problem !== null)
    return {
      kind: "close",
      reason: { kind: "protocol-error", reasonCode: ReasonCode.TopicNameInvalid, why: problem },
    };
  const v5 = f.version === 5;
  if (!f.allowed) {
    const why = "not authorized to publish to this topic";
    if (!v5) return { kind: "acknowledge-dropped", why };
    // 5.0: PUBACK/PUBREC 0x87; QoS 0 has no acknowledgement to carry it.
    if (p.qos === 0) return { kind: "drop", why };
    return {
      kind: "refuse",
      ack: p.qos === 1 ? "puback" : "pubrec",
      reasonCode: ReasonCode.NotAuthorized,
      why,
    };
  }
  // 5.0 3.3.2.3.2: a payload declared as UTF-8 must be UTF-8 (0x99).
  if (v5 && p.properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(p.payload)) {
    const why = "payload is not UTF-8 as its Payload Format Indicator says";
    if (p.qos === 0)
      return {
        kind: "close",
        reason: { kind: "protocol-error", reasonCode: ReasonCode.PayloadFormatInvalid, why },
      };
    return {
      kind: "refuse",
      ack: p.qos === 1 ? "puback" : "pubrec",
      reasonCode: ReasonCode.PayloadFormatInvalid,
      why,
    };
  }
  const message: Message = {
    id: f.id,
    topic: f.topic,
    // A copy: the frame it arrived in is not kept alive by the message.
    payload: ownedBytes(p.payload),
    qos: p.qos,
    retain: p.retain,
    origin: f.clientId,
  };
  const properties = messageProperties(p.properties);
  if (properties !== undefined) message.properties = properties;
  const expiry = p.properties?.messageExpiryInterval;
  if (expiry !== undefined) message.expiresAt = f.now + expiry * 1000;
  return { kind: "route", message };
}

/**
 * The topic of a PUBLISH through the client's topic aliases (5.0 3.3.2.3.4),
 * decided before anything else: a mapping is set in the order packets arrive,
 * by a publish that is then dropped too. `set`: the mapping this packet changes.
 */
export type AliasDecision =
  | { kind: "topic"; topic: string; set?: { alias: number; topic: string } }
  | { kind: "close"; reason: CloseReason };

export function resolveAlias(
  p: Pick<PublishPacket, "topic" | "properties">,
  version: number,
  known: (alias: number) => string | undefined,
  topicAliasMaximum: number,
): AliasDecision {
  const alias = p.properties?.topicAlias;
  const close = (reasonCode: number, why: string): AliasDecision => ({
    kind: "close",
    reason: { kind: "protocol-error", reasonCode, why },
  });
  if (alias === undefined) {
    // 5.0 3.3.2.1: an empty Topic Name without a Topic Alias is a Protocol Error.
    if (p.topic === "" && version === 5)
      return close(ReasonCode.ProtocolError, "empty topic name without a Topic Alias");
    return { kind: "topic", topic: p.topic };
  }
  // MQTT-3.3.2-8 / -9: 0 and values above our Topic Alias Maximum are a Topic Alias invalid (0x94).
  if (alias === 0 || alias > topicAliasMaximum)
    return close(ReasonCode.TopicAliasInvalid, `Topic Alias ${alias} outside 1..${topicAliasMaximum}`);
  const current = known(alias);
  if (p.topic === "") {
    // 5.0 3.3.2.3.4: an alias with no mapping yet is a Protocol Error.
    if (current === undefined) return close(ReasonCode.ProtocolError, `unknown Topic Alias ${alias}`);
    return { kind: "topic", topic: current };
  }
  if (current === p.topic) return { kind: "topic", topic: p.topic };
  return { kind: "topic", topic: p.topic, set: { alias, topic: p.topic } };
}

/** What is known of a QoS 1/2 PUBLISH's packet id and of the client's window when it arrives. */
export interface WindowFacts {
  qos: 1 | 2;
  /** QoS 2: a PUBLISH with this packet id was accepted and is not answered with PUBREC yet. */
  pending: boolean;
  /** QoS 2: this packet id is stored awaiting PUBREL (PUBREC sent). */
  awaitingRelease: boolean;
  /** QoS 1/2 PUBLISH of this client not acknowledged yet (QoS 2: until PUBCOMP), this one aside. */
  unacknowledged: number;
}

export type WindowDecision =
  /** A new message within the window: on to the ACL and the shard. */
  | { kind: "accept" }
  /** QoS 2 sent again before PUBREL: PUBREC again, not routed twice. */
  | { kind: "pubrec-again" }
  /** QoS 2 sent again while the first is on its way: its PUBREC answers both. */
  | { kind: "ignore" }
  | { kind: "close"; reason: CloseReason };

/**
 * Where a QoS 1/2 PUBLISH stands against the packet ids the client has open,
 * decided before its packet id is stored or the message routed, in every path.
 */
export function decideWindow(f: WindowFacts, receiveMaximum: number): WindowDecision {
  // QoS 2, method B of 4.3.3: until PUBREL, a PUBLISH with the same packet id is
  // acknowledged with PUBREC and not delivered onward again (MQTT-4.3.3-10 in
  // 5.0, MQTT-4.3.3-2 in 3.1.1).
  if (f.qos === 2 && f.pending) return { kind: "ignore" };
  if (f.qos === 2 && f.awaitingRelease) return { kind: "pubrec-again" };
  // A client may have at most our Receive Maximum QoS 1/2 PUBLISH unacknowledged
  // (MQTT-3.3.4-7, the client's rule); the Server answers one more with DISCONNECT
  // 0x93 (3.3.4). 3.1.1 has no Receive Maximum: the same bound ends the
  // connection, so stored QoS 2 ids stay bounded while PUBREL is withheld.
  if (f.unacknowledged >= receiveMaximum) {
    const why = `more than ${receiveMaximum} unacknowledged QoS 1/2 PUBLISH (Receive Maximum)`;
    return {
      kind: "close",
      reason: { kind: "protocol-error", reasonCode: ReasonCode.ReceiveMaximumExceeded, why },
    };
  }
  return { kind: "accept" };
}

/** What answers a routed QoS 1/2 message, given its shard's reason code. */
export type SettledDecision =
  | { kind: "ack"; ack: "puback" | "pubrec"; reasonCode?: number; why?: string }
  | { kind: "close"; reason: CloseReason };

/**
 * PUBACK or PUBREC for a message its shard has: in 5.0 with 0x10 when it reached
 * no subscriber (3.4.2.1, 3.5.2.1). A shard's refusal (0x80 and above, the
 * retained quota, 0x97) goes in the 5.0 acknowledgement; a 3.1.1
 * acknowledgement has no code to carry it, so that connection ends instead.
 * QoS 0 has no acknowledgement: only the 3.1.1 close applies to it.
 */
export function decideSettled(
  ack: "puback" | "pubrec",
  code: number | undefined,
  version: number,
): SettledDecision {
  const v5 = version === 5;
  if (code !== undefined && code >= 0x80) {
    const why = "retained message quota exceeded";
    if (!v5) return { kind: "close", reason: { kind: "protocol-error", reasonCode: code, why } };
    return { kind: "ack", ack, reasonCode: code, why };
  }
  if (v5 && code === ReasonCode.NoMatchingSubscribers) return { kind: "ack", ack, reasonCode: code };
  return { kind: "ack", ack };
}
