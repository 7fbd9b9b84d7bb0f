/**
 * A message to publish, given as JSON by someone other than an MQTT client: the
 * HTTP API's POST /api/publish, or a Queue message the Worker consumes. Both take
 * the same fields and are checked the same way:
 * `{ topic, payload | payloadBase64, qos?, retain?, properties? }`.
 */
import type { BrokerConfig } from "../broker/config.ts";
import { foreignMessageProblem, foreignTopicProblem } from "../broker/foreign-publish.ts";
import { type Message, newMessageId } from "../broker/message.ts";
import { shardOf } from "../broker/routing.ts";
import { shardStub } from "../durable-objects/stubs.ts";
import type { Env } from "./env.ts";
import { apiProperties } from "./publish-properties.ts";

export interface PublishBody {
  topic?: unknown;
  payload?: unknown;
  payloadBase64?: unknown;
  qos?: unknown;
  retain?: unknown;
  properties?: unknown;
}

const BODY_KEYS = new Set(["topic", "payload", "payloadBase64", "qos", "retain", "properties"]);

/** A message, or why the body is not one (with the HTTP status it deserves). */
export type PublishInput = { ok: true; message: Message } | { ok: false; status: 400 | 403; problem: string };

/** Checks a body; `acceptor` names where it came in (part of the message id). */
export function messageOf(body: PublishBody, config: BrokerConfig, acceptor: string): PublishInput {
  const bad = (problem: string, status: 400 | 403 = 400): PublishInput => ({ ok: false, status, problem });
  if (typeof body !== "object" || body === null) return bad("the body must be a JSON object");
  for (const key of Object.keys(body))
    if (!BODY_KEYS.has(key))
      // A rule's envelope (clientId, userProperties, time) is not a message: a Queue
      // a rule sends envelopes to, consumed by this Worker, would republish forever.
      return bad(
        `unknown field ${JSON.stringify(key)} (topic, payload, payloadBase64, qos, retain, properties)`,
      );
  if (typeof body.topic !== "string") return bad("topic must be a string");
  const topicProblem = foreignTopicProblem(config, body.topic);
  if (topicProblem !== null) return bad(topicProblem.problem, topicProblem.status);
  const qos = body.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2) return bad("qos must be 0, 1 or 2");
  let payload: Uint8Array;
  if (typeof body.payloadBase64 === "string") {
    try {
      payload = Uint8Array.from(atob(body.payloadBase64), (c) => c.charCodeAt(0));
    } catch {
      return bad("payloadBase64 is not base64");
    }
  } else if (typeof body.payload === "string" || body.payload === undefined) {
    payload = new TextEncoder().encode((body.payload as string | undefined) ?? "");
  } else {
    payload = new TextEncoder().encode(JSON.stringify(body.payload));
  }
  const checked = apiProperties(body.properties);
  if (!checked.ok) return bad(checked.problem);
  const problem = foreignMessageProblem(config, body.topic, payload, checked.properties);
  if (problem !== null) return bad(problem.problem, problem.status);
  const message: Message = {
    id: newMessageId(acceptor),
    topic: body.topic,
    payload,
    qos,
    retain: body.retain === true,
  };
  if (checked.properties !== undefined) message.properties = checked.properties;
  if (checked.messageExpiryInterval !== undefined)
    message.expiresAt = Date.now() + checked.messageExpiryInterval * 1000;
  return { ok: true, message };
}

/**
 * Routes a message to its shard: resolves once the shard has it (QoS 0) or every
 * destination that stores it durably has it (QoS 1/2), as a PUBACK would. The
 * shard's reason code: 0x00, 0x10 (nobody subscribes) or 0x97 (retained quota).
 */
export async function route(env: Env, config: BrokerConfig, message: Message): Promise<number> {
  const [code] = await shardStub(env, shardOf(message.topic, config.layout)).publish([message]);
  return code as number;
}
