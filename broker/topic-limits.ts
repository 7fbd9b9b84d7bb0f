/** The configured bounds on topic names and filters (MAX_TOPIC_LENGTH, MAX_TOPIC_LEVELS). */
import { validateTopicName } from "../mqtt/index.ts";
import { utf8Length } from "../mqtt/wire/utf8.ts";
import type { BrokerConfig } from "./config.ts";

export function topicLimitProblem(config: BrokerConfig, topic: string): string | null {
  if (utf8Length(topic) > config.maxTopicLength) return `topic longer than ${config.maxTopicLength} bytes`;
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  if (levels > config.maxTopicLevels) return `topic with more than ${config.maxTopicLevels} levels`;
  return null;
}

/** Why a topic cannot be published to: the specification's rules, then the configured bounds. */
export function publishTopicProblem(config: BrokerConfig, topic: string): string | null {
  return validateTopicName(topic) ?? topicLimitProblem(config, topic);
}
