/**
 * Topic names and topic filters (3.1.1 section 4.7, 5.0 section 4.7), and shared
 * subscription filters `$share/{ShareName}/{filter}` (5.0 section 4.8.2).
 */
import { utf8Length } from "../wire/utf8.ts";

/** Why a topic or filter is refused; `null` means it is valid. */
export type TopicProblem = string | null;

const MAX_TOPIC_BYTES = 65535;

/** A topic name as sent in PUBLISH: no wildcards, not empty. */
export function validateTopicName(topic: string): TopicProblem {
  // MQTT-4.7.3-1: topic names and filters are at least one character long.
  if (topic.length === 0) return "topic name is empty (MQTT-4.7.3-1)";
  if (utf8Length(topic) > MAX_TOPIC_BYTES) return "topic name is longer than 65,535 bytes";
  // MQTT-3.3.2-2 (both versions): the topic name must not contain wildcards.
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x23 || c === 0x2b) return "topic name contains a wildcard (MQTT-3.3.2-2)";
  }
  return null;
}

/** A topic filter as sent in SUBSCRIBE or UNSUBSCRIBE, not shared. */
export function validateTopicFilter(filter: string): TopicProblem {
  if (filter.length === 0) return "topic filter is empty (MQTT-4.7.3-1)";
  if (utf8Length(filter) > MAX_TOPIC_BYTES) return "topic filter is longer than 65,535 bytes";
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      // MQTT-4.7.1-2: '#' stands alone and last.
      return "'#' must be the whole last level (MQTT-4.7.1-2)";
    }
    if (level.includes("+") && level !== "+") {
      // MQTT-4.7.1-3: '+' occupies a whole level.
      return "'+' must be a whole level (MQTT-4.7.1-3)";
    }
  }
  return null;
}

export interface ParsedFilter {
  /** The filter that topics are matched against (without `$share/{group}/`). */
  filter: string;
  /** Share name for a shared subscription. */
  shareGroup?: string;
}

const SHARE_PREFIX = "$share/";

/** Validates a subscription filter, recognising `$share/{group}/{filter}`. */
export function parseSubscriptionFilter(raw: string): ParsedFilter | { problem: string } {
  if (!raw.startsWith(SHARE_PREFIX)) {
    const problem = validateTopicFilter(raw);
    return problem === null ? { filter: raw } : { problem };
  }
  const rest = raw.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf("/");
  const group = slash < 0 ? rest : rest.slice(0, slash);
  // MQTT-4.8.2-1: the ShareName is at least one character, with no '/', '+' or '#'.
  if (group.length === 0 || group.includes("+") || group.includes("#")) {
    return { problem: "invalid share name (MQTT-4.8.2-1)" };
  }
  // MQTT-4.8.2-2: a '/' and a topic filter follow the ShareName.
  if (slash < 0) return { problem: "shared subscription without a topic filter (MQTT-4.8.2-2)" };
  const filter = rest.slice(slash + 1);
  const problem = validateTopicFilter(filter);
  return problem === null ? { filter, shareGroup: group } : { problem };
}

/**
 * Whether `topic` matches `filter`: the plain, level-by-level definition, used
 * where one filter meets one topic (retained messages) and as the reference the
 * subscription index is tested against.
 */
export function topicMatches(filter: string, topic: string): boolean {
  // MQTT-4.7.2-1: a filter starting with a wildcard does not match a '$' topic.
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Whether a filter contains a wildcard at all. */
export function hasWildcard(filter: string): boolean {
  return filter.includes("+") || filter.includes("#");
}
