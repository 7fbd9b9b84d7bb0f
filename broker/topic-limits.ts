/**
 * The broker's own rules on topic names and filters, beyond the specification's:
 * the configured bounds (MAX_TOPIC_LENGTH, MAX_TOPIC_LEVELS), and no control
 * characters (U+0001–U+001F, U+007F–U+009F), which MQTT 1.5.4 says SHOULD NOT be
 * sent and lets a receiver refuse; Mosquitto refuses them too, since topics end
 * up in logs, dashboards and file names.
 */
import { validateTopicName } from "../mqtt/index.ts";
import { utf8Length } from "../mqtt/wire/utf8.ts";
import { hasControlCharacters } from "./client-ids.ts";
import type { BrokerConfig } from "./config.ts";

/** The configured bounds on topics. */
export type TopicLimits = Pick<BrokerConfig, "maxTopicLength" | "maxTopicLevels">;

export function topicLimitProblem(config: TopicLimits, topic: string): string | null {
  if (hasControlCharacters(topic)) return "topic with control characters";
  if (utf8Length(topic) > config.maxTopicLength) return `topic longer than ${config.maxTopicLength} bytes`;
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  if (levels > config.maxTopicLevels) return `topic with more than ${config.maxTopicLevels} levels`;
  return null;
}

/** Why a topic cannot be published to: the specification's rules, then the configured bounds. */
export function publishTopicProblem(config: TopicLimits, topic: string): string | null {
  return validateTopicName(topic) ?? topicLimitProblem(config, topic);
}
