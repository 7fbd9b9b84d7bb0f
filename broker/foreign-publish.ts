/**
 * Messages that come in other than from an MQTT client of this broker: the HTTP
 * API's POST /api/publish, a Queue the Worker consumes, a bridge's remote broker.
 * They act with the operator's authority (no ACL), so what the broker itself
 * would refuse from a client is refused here too, the same way for all three
 * (README, Integrations): a topic MQTT could not carry or past the topic limits,
 * a `$` topic (the broker's own, `$SYS`, or reserved), a message whose PUBLISH
 * would pass MAX_PACKET_SIZE (topic, properties and payload together: a stored
 * message is one SQLite row, 2 MB at most), a payload that says it is UTF-8
 * (Payload Format Indicator 1) and is not.
 */
import { encode, isWellFormedUtf8 } from "../mqtt/index.ts";
import type { BrokerConfig } from "./config.ts";
import { type MessageProperties, packetProperties } from "./message.ts";
import { publishTopicProblem } from "./topic-limits.ts";

/** Why the message cannot be published; 403 for a `$` topic, 400 for the rest. */
export type ForeignProblem = { status: 400 | 403; problem: string };

export function foreignTopicProblem(config: BrokerConfig, topic: string): ForeignProblem | null {
  const problem = publishTopicProblem(config, topic);
  if (problem !== null) return { status: 400, problem };
  // MQTT 4.7.2: `$` topics are the server's; `$SYS` is read-only to everyone.
  if (topic.startsWith("$"))
    return { status: 403, problem: "topics starting with $ are the broker's ($SYS)" };
  return null;
}

/** The size of the PUBLISH (5.0, QoS 1) that carries the message, in bytes. */
export function publishSize(topic: string, payload: Uint8Array, properties?: MessageProperties): number {
  const head = encode(
    {
      type: "publish",
      topic,
      payload: new Uint8Array(0),
      qos: 1,
      packetId: 1,
      dup: false,
      retain: false,
      properties: packetProperties(properties),
    },
    5,
  ).length;
  // The Remaining Length grows by up to three bytes with the payload (2.2.3).
  return head + 3 + payload.length;
}

export function foreignMessageProblem(
  config: BrokerConfig,
  topic: string,
  payload: Uint8Array,
  properties?: MessageProperties,
): ForeignProblem | null {
  const topicProblem = foreignTopicProblem(config, topic);
  if (topicProblem !== null) return topicProblem;
  const size = publishSize(topic, payload, properties);
  if (size > config.maxPacketSize)
    return {
      status: 400,
      problem: `message of ${size} bytes (topic, properties and payload) is larger than MAX_PACKET_SIZE (${config.maxPacketSize})`,
    };
  // 5.0 3.3.2.3.2: a payload declared UTF-8 must be (a subscriber would refuse it with 0x99).
  if (properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(payload))
    return { status: 400, problem: "payloadFormatIndicator is 1 but the payload is not UTF-8" };
  return null;
}
