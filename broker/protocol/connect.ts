/**
 * The parts of CONNECT (3.1.1 and 5.0, section 3.1) that are decisions: which
 * client id the connection gets, whether its will may be set, the session's
 * lifetime and keep-alive, and the CONNACK that answers it. No I/O: the
 * Gateway authenticates, claims the session and sends the CONNACK
 * (durable-objects/gateway/handle-connect.ts).
 */
import {
  type ConnackPacket,
  type ConnectPacket,
  ConnectReturnCode,
  encode,
  isWellFormedUtf8,
  ReasonCode,
} from "../../mqtt/index.ts";
import { clientIdShapeProblem } from "../client-ids.ts";
import type { BrokerConfig } from "../config.ts";
import { publishTopicProblem } from "../topic-limits.ts";

/** A CONNECT refused: CONNACK with the 5.0 code, or the 3.1.1 code (null: 3.1.1 has none, the socket just closes). */
export interface ConnectRefusal {
  refused: true;
  code5: number;
  code311: number | null;
  why: string;
}

export const refusal = (code5: number, code311: number | null, why: string): ConnectRefusal => ({
  refused: true,
  code5,
  code311,
  why,
});

/** The client id a CONNECT gets, or why it is refused; and the will checked (before anything is claimed). */
export function checkConnect(
  p: ConnectPacket,
  config: Pick<BrokerConfig, "maxClientId" | "maxTopicLength" | "maxTopicLevels">,
  newId: () => string,
): { refused: false; clientId: string; assigned: boolean } | ConnectRefusal {
  const v5 = p.protocolVersion === 5;
  let clientId = p.clientId;
  let assigned = false;
  if (clientId === "") {
    // MQTT-3.1.3-8: an empty client id with Clean Session 0 is refused with 0x02;
    // 3.1 (level 3) requires 1 to 23 characters.
    if (!v5 && (!p.cleanStart || p.protocolVersion === 3))
      return refusal(
        ReasonCode.ClientIdentifierNotValid,
        ConnectReturnCode.IdentifierRejected,
        "empty client id (MQTT-3.1.3-8)",
      );
    // MQTT-3.1.3-6 / 5.0 MQTT-3.1.3-6: the server assigns a unique client id.
    clientId = newId();
    assigned = true;
  }
  // MQTT-3.1.3-5 lets a server refuse client ids it does not accept: too long for
  // the attachment, or with control characters, or reserved.
  const shape = clientIdShapeProblem(clientId, config.maxClientId);
  if (shape !== null)
    return refusal(ReasonCode.ClientIdentifierNotValid, ConnectReturnCode.IdentifierRejected, shape.reason);
  if (p.will !== undefined) {
    const problem = publishTopicProblem(config, p.will.topic);
    if (problem !== null) return refusal(ReasonCode.TopicNameInvalid, null, `will topic: ${problem}`);
    // 5.0 3.1.3.2.3: a will declared as UTF-8 must be UTF-8.
    if (p.will.properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(p.will.payload))
      return refusal(ReasonCode.PayloadFormatInvalid, null, "will payload is not UTF-8");
  }
  return { refused: false, clientId, assigned };
}

/** How long the session lives after the connection and the keep-alive in force. */
export interface SessionTerms {
  /** Session Expiry Interval, seconds (0: it ends with the connection). */
  expiry: number;
  persistent: boolean;
  keepAlive: number;
}

export function sessionTerms(
  p: ConnectPacket,
  config: Pick<BrokerConfig, "maxSessionExpiry" | "sessionExpiryDefault" | "maxKeepAlive">,
): SessionTerms {
  const v5 = p.protocolVersion === 5;
  // 3.1.1 Clean Session 0 keeps the session for a configured time; 5.0 asks with
  // Session Expiry Interval (3.1.2.11.2), capped by the configuration.
  const expiry = v5
    ? Math.min(p.properties?.sessionExpiryInterval ?? 0, config.maxSessionExpiry)
    : p.cleanStart
      ? 0
      : config.sessionExpiryDefault;
  const persistent = v5 ? expiry > 0 : !p.cleanStart;
  // 3.2.2.3.14: a 5.0 client is told the Server Keep Alive when it differs.
  const keepAlive = v5 && p.keepAlive > config.maxKeepAlive ? config.maxKeepAlive : p.keepAlive;
  return { expiry, persistent, keepAlive };
}

/** What the CONNACK of an accepted CONNECT says besides the settings. */
export interface Accepted {
  sessionPresent: boolean;
  terms: SessionTerms;
  clientId: string;
  assigned: boolean;
  /** The enhanced authentication method used, and its last data. */
  authMethod?: string;
  authenticationData?: Uint8Array;
}

/** The CONNACK for an accepted CONNECT (3.2), 5.0 with what the broker allows (3.2.2.3). */
export function acceptedConnack(
  p: ConnectPacket,
  a: Accepted,
  config: Pick<BrokerConfig, "maxPacketSize" | "receiveMaximum" | "topicAliasMaximum">,
): ConnackPacket {
  const connack: ConnackPacket = { type: "connack", sessionPresent: a.sessionPresent, reasonCode: 0 };
  if (p.protocolVersion !== 5) return connack;
  const properties: NonNullable<ConnackPacket["properties"]> = {
    maximumPacketSize: config.maxPacketSize,
    topicAliasMaximum: config.topicAliasMaximum,
    retainAvailable: 1,
    wildcardSubscriptionAvailable: 1,
    subscriptionIdentifiersAvailable: 1,
    sharedSubscriptionAvailable: 1,
  };
  // Absent means 65,535 (3.2.2.3.3).
  if (config.receiveMaximum < 65535) properties.receiveMaximum = config.receiveMaximum;
  if (a.assigned) properties.assignedClientIdentifier = a.clientId;
  if (a.authMethod !== undefined) {
    // 3.2.2.3.17: CONNACK names the method the exchange used.
    properties.authenticationMethod = a.authMethod;
    if (a.authenticationData !== undefined) properties.authenticationData = a.authenticationData;
  }
  if (a.terms.keepAlive !== p.keepAlive) properties.serverKeepAlive = a.terms.keepAlive;
  if (a.terms.expiry !== (p.properties?.sessionExpiryInterval ?? 0))
    properties.sessionExpiryInterval = a.terms.expiry;
  // 5.0 3.1.2.11.7: on request, a topic prefix for this client's responses.
  if (p.properties?.requestResponseInformation === 1)
    properties.responseInformation = `response/${a.clientId}/`;
  connack.properties = properties;
  return connack;
}

/** The CONNACK of a refused CONNECT, or undefined when 3.1.1 has no code for it. */
export function refusedConnack(
  p: ConnectPacket,
  r: ConnectRefusal,
  reasonString?: string,
): ConnackPacket | undefined {
  const v5 = p.protocolVersion === 5;
  if (!v5 && r.code311 === null) return undefined;
  const connack: ConnackPacket = {
    type: "connack",
    sessionPresent: false,
    reasonCode: v5 ? r.code5 : (r.code311 as number),
  };
  if (v5 && reasonString !== undefined) connack.properties = { reasonString };
  return connack;
}

/**
 * Properties a CONNACK may go without and still mean the same, in the order they
 * are left out when it exceeds the client's Maximum Packet Size: diagnostics
 * first (MQTT-3.2.2-19, -20), then what the client assumes when absent (these
 * "available" flags default to 1), then what it may simply not learn (no Response
 * Information, no aliases towards us). What the client must know to stay within
 * our limits (Maximum Packet Size, Receive Maximum, Server Keep Alive, Session
 * Expiry, the assigned client id, the authentication method) is never left out.
 */
const SHEDDABLE: Array<keyof NonNullable<ConnackPacket["properties"]>> = [
  "reasonString",
  "userProperties",
  "retainAvailable",
  "wildcardSubscriptionAvailable",
  "subscriptionIdentifiersAvailable",
  "sharedSubscriptionAvailable",
  "responseInformation",
  "topicAliasMaximum",
];

/**
 * The CONNACK within the client's Maximum Packet Size (MQTT-3.1.2-24), with what
 * may be left out left out as needed; undefined when even that does not fit.
 */
export function fitConnack(connack: ConnackPacket, p: ConnectPacket): ConnackPacket | undefined {
  const max = p.protocolVersion === 5 ? p.properties?.maximumPacketSize : undefined;
  if (max === undefined) return connack;
  const properties = { ...connack.properties };
  const trial: ConnackPacket = { ...connack, properties };
  for (const name of [undefined, ...SHEDDABLE]) {
    if (name !== undefined) delete properties[name];
    if (encode(trial, 5).length <= max) return trial;
  }
  return undefined;
}
