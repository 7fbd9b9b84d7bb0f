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
