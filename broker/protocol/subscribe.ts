/**
 * What a SUBSCRIBE comes to (section 3.8): a reason code per filter (one failure
 * code for all in 3.1.1), the subscriptions granted, or the end of the
 * connection. No I/O: the Gateway registers what is granted at the shards and
 * answers SUBACK (durable-objects/gateway/handle-subscribe.ts).
 */
import {
  parseSubscriptionFilter,
  ReasonCode,
  SubackFailure311,
  type SubscribePacket,
} from "../../mqtt/index.ts";
import type { BrokerConfig } from "../config.ts";
import type { SubscriptionOptions } from "../session-state.ts";
import { topicLimitProblem } from "../topic-limits.ts";
import type { CloseReason } from "./close.ts";

export interface Granted {
  filter: string;
  options: SubscriptionOptions;
  /** The client had this filter already: the options are replaced (MQTT-3.8.4-3). */
  replaces: boolean;
}

export type SubscribeDecision =
  | { kind: "close"; reason: CloseReason }
  | {
      kind: "grant";
      /** SUBACK's payload, in the order of the filters (MQTT-3.8.4-6). */
      reasonCodes: number[];
      granted: Granted[];
      /** Why each refused filter was refused, for the Reason String. */
      problems: string[];
    };

/** What is known of the subscribing client when its SUBSCRIBE is decided. */
export interface SubscribeFacts {
  version: number;
  /** Subscriptions the session holds now. */
  held: number;
  has(filter: string): boolean;
  /** The ACL's answer for the filter a subscription matches with (inside `$share/{group}/`). */
  allowed(matching: string): boolean;
}

/** The filter each subscription is authorized and matched by, for those that parse; null for the others. */
export function matchingFilters(p: SubscribePacket): Array<string | null> {
  return p.subscriptions.map((s) => {
    const parsed = parseSubscriptionFilter(s.topicFilter);
    return "problem" in parsed ? null : parsed.filter;
  });
}

export function decideSubscribe(
  p: SubscribePacket,
  f: SubscribeFacts,
  config: Pick<BrokerConfig, "maxSubscriptions" | "maxTopicLength" | "maxTopicLevels">,
): SubscribeDecision {
  const v5 = f.version === 5;
  const subscriptionId = p.properties?.subscriptionIdentifiers?.[0];
  const reasonCodes: number[] = [];
  const problems: string[] = [];
  const granted: Granted[] = [];
  let held = f.held;
  // MQTT-3.9.3-1: a failure code per refused filter; the others are granted.
  const refuse = (code5: number, filter: string, why: string) => {
    reasonCodes.push(v5 ? code5 : SubackFailure311);
    problems.push(`${JSON.stringify(filter.slice(0, 64))}: ${why}`);
  };
  for (const s of p.subscriptions) {
    const tooBig = topicLimitProblem(config, s.topicFilter);
    if (tooBig !== null) {
      refuse(ReasonCode.TopicFilterInvalid, s.topicFilter, tooBig);
      continue;
    }
    const parsed = parseSubscriptionFilter(s.topicFilter);
    if ("problem" in parsed) {
      refuse(ReasonCode.TopicFilterInvalid, s.topicFilter, parsed.problem);
      continue;
    }
    if (parsed.shareGroup !== undefined && s.noLocal) {
      // MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error.
      const why = "No Local set on a shared subscription (MQTT-3.8.3-4)";
      return { kind: "close", reason: { kind: "protocol-error", reasonCode: ReasonCode.ProtocolError, why } };
    }
    if (!f.allowed(parsed.filter)) {
      refuse(ReasonCode.NotAuthorized, s.topicFilter, "not authorized");
      continue;
    }
    const replaces = f.has(s.topicFilter) || granted.some((g) => g.filter === s.topicFilter);
    if (!replaces && held >= config.maxSubscriptions) {
      // A quota, not a protocol fault: this filter is refused, the session goes on.
      refuse(ReasonCode.QuotaExceeded, s.topicFilter, `more than ${config.maxSubscriptions} subscriptions`);
      continue;
    }
    if (!replaces) held++;
    const options: SubscriptionOptions = {
      qos: s.qos,
      noLocal: s.noLocal,
      retainAsPublished: s.retainAsPublished,
      retainHandling: s.retainHandling,
    };
    if (subscriptionId !== undefined) options.subscriptionId = subscriptionId;
    granted.push({ filter: s.topicFilter, options, replaces });
    reasonCodes.push(s.qos);
  }
  return { kind: "grant", reasonCodes, granted, problems };
}

/** Retain Handling (5.0 3.8.3.1): 0 always, 1 only for a new subscription, 2 never. */
export function wantsRetained(g: Granted): boolean {
  return g.options.retainHandling === 0 || (g.options.retainHandling === 1 && !g.replaces);
}
