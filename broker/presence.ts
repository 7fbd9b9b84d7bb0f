/**
 * Presence (docs/sys-topics.md, Presence): who is online, as events an app subscribes to, as
 * AWS IoT Core's lifecycle events and EMQX's client events do.
 *
 *   $SYS/presence/connected/<client id>      when CONNACK has gone out
 *   $SYS/presence/disconnected/<client id>   when that connection has ended
 *
 * Each is a QoS 0 message, never retained, published through the topic's shard
 * like any publish: subscribers (and rules) get it as any other message, and a
 * subscriber needs what any `$SYS` subscriber needs, an ACL that lets it
 * subscribe to a filter covering the topic (`$SYS/presence/#`); `$SYS` stays
 * read-only to clients. The payload is JSON:
 *
 *   {"event":"disconnected","clientId":"dev-1","connectionId":"…","principal":"user:alice",
 *    "protocolLevel":5,"time":1767225600000,"reason":"keep-alive","reasonCode":141,
 *    "detail":"keep-alive expired (3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22)","address":"203.0.113.7"}
 *
 * `principal` is the owner key of ownerOf (`user:alice`, `jwt:…`, `cert:…`,
 * `anonymous`); `connectionId` pairs a connection's two events (a client id's
 * events can come from two gateways, and so out of order: order them by `time`
 * and pair them by `connectionId`); `reason` (a CloseReason's kind),
 * `reasonCode` and `detail` only on `disconnected`; `address` only with
 * PRESENCE_ADDRESS=true.
 *
 * Messages are a pure function of the connection's facts: the Gateway calls
 * presenceMessage at CONNACK and at the end of the connection, and publishes what
 * it returns (nothing while PRESENCE is off).
 */

import type { ProtocolVersion } from "../mqtt/index.ts";
import { type Identity, ownerOf } from "./auth/authenticator.ts";
import { type Message, newMessageId } from "./message.ts";
import { type CloseReason, goodbye } from "./protocol/close.ts";

export const PRESENCE_TOPIC_PREFIX = "$SYS/presence/";

export type PresenceEvent = "connected" | "disconnected";

/** PRESENCE and PRESENCE_ADDRESS (BrokerConfig.presence). */
export interface PresenceSettings {
  enabled: boolean;
  /** Whether events carry the client's network address. */
  address: boolean;
}

/** What is known of a connection, at CONNACK and at its end. */
export interface ConnectionFacts {
  clientId: string;
  /** Unique per connection (the Gateway's connId): pairs its two events. */
  connectionId: string;
  identity: Identity;
  protocolLevel: ProtocolVersion;
  /** The client's network address (CF-Connecting-IP), if known. */
  address?: string;
  /** Epoch ms of the event. */
  time: number;
}

/**
 * Which event: `disconnected` with the reason the connection ended, from the
 * close table (broker/protocol/close.ts), so that presence says what the client
 * was told and no second list of reasons can drift from it.
 */
export type PresenceFacts = { event: "connected" } | { event: "disconnected"; reason: CloseReason };

/** The longest principal an event carries, UTF-8 bytes (a token's claim may be longer; it is cut). */
export const MAX_PRESENCE_PRINCIPAL_BYTES = 1024;

/**
 * The message of one presence event, or undefined while presence is off.
 * `acceptor` names who publishes it (the gateway), for the message's id.
 */
export function presenceMessage(
  settings: PresenceSettings,
  facts: ConnectionFacts & PresenceFacts,
  acceptor: string,
): Message | undefined {
  if (!settings.enabled) return undefined;
  const principal = cut(ownerOf(facts.identity), MAX_PRESENCE_PRINCIPAL_BYTES);
  const body: Record<string, unknown> = {
    event: facts.event,
    clientId: facts.clientId,
    connectionId: facts.connectionId,
    principal: principal.text,
  };
  if (principal.cut) body.principalTruncated = true;
  body.protocolLevel = facts.protocolLevel;
  body.time = facts.time;
  if (facts.event === "disconnected") {
    const reason = facts.reason;
    body.reason = reason.kind;
    // The code the client sent, or the one the broker sent it (none for a socket that closed).
    const code = reason.kind === "client-disconnect" ? reason.reasonCode : goodbye(reason).disconnect;
    if (code !== undefined) body.reasonCode = code;
    // The close frame's words (an internal error's detail is not among them).
    body.detail = goodbye(reason).why.slice(0, 100);
  }
  if (settings.address && facts.address !== undefined && facts.address !== "") body.address = facts.address;
  return {
    id: newMessageId(acceptor),
    topic: presenceTopic(facts.event, facts.clientId),
    payload: new TextEncoder().encode(JSON.stringify(body)),
    qos: 0,
    retain: false,
    // 5.0 3.3.2.3.2: the payload is UTF-8 (JSON), for clients that check.
    properties: { payloadFormatIndicator: 1, contentType: "application/json" },
  };
}

/**
 * The topic of a client's event. A client id may hold what a topic level may
 * not: `/` would split it into levels (and `$SYS/presence/connected/+` would miss
 * it), `+` and `#` are not allowed in a topic name (MQTT-4.7.1-1). Those and `%`
 * are percent-encoded (`a/b` → `a%2Fb`), so that every client id has its own
 * topic; the payload carries the client id as it is.
 */
export function presenceTopic(event: PresenceEvent, clientId: string): string {
  const level = clientId.replace(/[%/+#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${PRESENCE_TOPIC_PREFIX}${event}/${level}`;
}

/** `s` cut to at most `max` UTF-8 bytes, on a character's boundary. */
function cut(s: string, max: number): { text: string; cut: boolean } {
  const bytes = new TextEncoder().encode(s);
  if (bytes.length <= max) return { text: s, cut: false };
  let end = max;
  // Back off continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return { text: new TextDecoder().decode(bytes.subarray(0, end)), cut: true };
}
