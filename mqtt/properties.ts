/**
 * MQTT 5.0 properties (section 2.2.2.2): identifiers, data types, which packets may
 * carry each, and their reading and writing.
 */
import { malformed, protocolError } from "./errors.ts";
import type { Reader } from "./wire/reader.ts";
import type { Writer } from "./wire/writer.ts";

export interface Properties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  /** Repeatable in PUBLISH (one per matching subscription), single in SUBSCRIBE. */
  subscriptionIdentifiers?: number[];
  sessionExpiryInterval?: number;
  assignedClientIdentifier?: string;
  serverKeepAlive?: number;
  authenticationMethod?: string;
  authenticationData?: Uint8Array;
  requestProblemInformation?: number;
  willDelayInterval?: number;
  requestResponseInformation?: number;
  responseInformation?: string;
  serverReference?: string;
  reasonString?: string;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  topicAlias?: number;
  maximumQoS?: number;
  retainAvailable?: number;
  /** In the order they appeared: order is significant (section 3.3.2.3.7). */
  userProperties?: Array<[string, string]>;
  maximumPacketSize?: number;
  wildcardSubscriptionAvailable?: number;
  subscriptionIdentifiersAvailable?: number;
  sharedSubscriptionAvailable?: number;
}

type PropertyName = keyof Properties;

/** Where a property may appear. "will" is the Will Properties of CONNECT. */
export type PropertyContext =
  | "connect"
  | "will"
  | "connack"
  | "publish"
  | "puback"
  | "subscribe"
  | "suback"
  | "unsubscribe"
  | "disconnect"
  | "auth";

export type ConnectProperties = Pick<
  Properties,
  | "sessionExpiryInterval"
  | "authenticationMethod"
  | "authenticationData"
  | "requestProblemInformation"
  | "requestResponseInformation"
  | "receiveMaximum"
  | "topicAliasMaximum"
  | "userProperties"
  | "maximumPacketSize"
>;
export type WillProperties = Pick<
  Properties,
  | "payloadFormatIndicator"
  | "messageExpiryInterval"
  | "contentType"
  | "responseTopic"
  | "correlationData"
  | "willDelayInterval"
  | "userProperties"
>;
export type ConnackProperties = Pick<
  Properties,
  | "sessionExpiryInterval"
  | "assignedClientIdentifier"
  | "serverKeepAlive"
  | "authenticationMethod"
  | "authenticationData"
  | "responseInformation"
  | "serverReference"
  | "reasonString"
  | "receiveMaximum"
  | "topicAliasMaximum"
  | "maximumQoS"
  | "retainAvailable"
  | "userProperties"
  | "maximumPacketSize"
  | "wildcardSubscriptionAvailable"
  | "subscriptionIdentifiersAvailable"
  | "sharedSubscriptionAvailable"
>;
export type PublishProperties = Pick<
  Properties,
  | "payloadFormatIndicator"
  | "messageExpiryInterval"
  | "contentType"
  | "responseTopic"
  | "correlationData"
  | "subscriptionIdentifiers"
  | "topicAlias"
  | "userProperties"
>;
/** PUBACK, PUBREC, PUBREL, PUBCOMP. */
export type PubackProperties = Pick<Properties, "reasonString" | "userProperties">;
export type SubscribeProperties = Pick<Properties, "subscriptionIdentifiers" | "userProperties">;
/** SUBACK and UNSUBACK. */
export type SubackProperties = Pick<Properties, "reasonString" | "userProperties">;
export type UnsubscribeProperties = Pick<Properties, "userProperties">;
export type DisconnectProperties = Pick<
  Properties,
  "sessionExpiryInterval" | "serverReference" | "reasonString" | "userProperties"
>;
export type AuthProperties = Pick<
  Properties,
  "authenticationMethod" | "authenticationData" | "reasonString" | "userProperties"
>;

type DataType = "byte" | "u16" | "u32" | "varint" | "utf8" | "binary" | "pair";

interface PropertyDef {
  id: number;
  name: PropertyName;
  type: DataType;
  contexts: ReadonlySet<PropertyContext>;
  /** Values a receiver accepts, else Protocol Error; omitted: any value of the type. */
  valid?: (v: number) => boolean;
}

const ACKS: PropertyContext[] = ["puback", "suback", "disconnect", "auth", "connack"];
const zeroOrOne = (v: number) => v === 0 || v === 1;
const nonZero = (v: number) => v !== 0;

const defs: PropertyDef[] = [
  def(0x01, "payloadFormatIndicator", "byte", ["publish", "will"], zeroOrOne),
  def(0x02, "messageExpiryInterval", "u32", ["publish", "will"]),
  def(0x03, "contentType", "utf8", ["publish", "will"]),
  def(0x08, "responseTopic", "utf8", ["publish", "will"]),
  def(0x09, "correlationData", "binary", ["publish", "will"]),
  def(0x0b, "subscriptionIdentifiers", "varint", ["publish", "subscribe"], nonZero),
  def(0x11, "sessionExpiryInterval", "u32", ["connect", "connack", "disconnect"]),
  def(0x12, "assignedClientIdentifier", "utf8", ["connack"]),
  def(0x13, "serverKeepAlive", "u16", ["connack"]),
  def(0x15, "authenticationMethod", "utf8", ["connect", "connack", "auth"]),
  def(0x16, "authenticationData", "binary", ["connect", "connack", "auth"]),
  def(0x17, "requestProblemInformation", "byte", ["connect"], zeroOrOne),
  def(0x18, "willDelayInterval", "u32", ["will"]),
  def(0x19, "requestResponseInformation", "byte", ["connect"], zeroOrOne),
  def(0x1a, "responseInformation", "utf8", ["connack"]),
  def(0x1c, "serverReference", "utf8", ["connack", "disconnect"]),
  def(0x1f, "reasonString", "utf8", ACKS),
  def(0x21, "receiveMaximum", "u16", ["connect", "connack"], nonZero),
  def(0x22, "topicAliasMaximum", "u16", ["connect", "connack"]),
  // Topic Alias 0 or above the maximum is for the receiver to refuse with 0x94
  // Topic Alias invalid (3.3.2.3.4), which it knows and the codec does not.
  def(0x23, "topicAlias", "u16", ["publish"]),
  def(0x24, "maximumQoS", "byte", ["connack"], zeroOrOne),
  def(0x25, "retainAvailable", "byte", ["connack"], zeroOrOne),
  def(0x26, "userProperties", "pair", [
    "connect",
    "will",
    "connack",
    "publish",
    "puback",
    "subscribe",
    "suback",
    "unsubscribe",
    "disconnect",
    "auth",
  ]),
  def(0x27, "maximumPacketSize", "u32", ["connect", "connack"], nonZero),
  def(0x28, "wildcardSubscriptionAvailable", "byte", ["connack"], zeroOrOne),
  def(0x29, "subscriptionIdentifiersAvailable", "byte", ["connack"], zeroOrOne),
  def(0x2a, "sharedSubscriptionAvailable", "byte", ["connack"], zeroOrOne),
];

function def(
  id: number,
  name: PropertyName,
  type: DataType,
  contexts: PropertyContext[],
  valid?: (v: number) => boolean,
): PropertyDef {
  return { id, name, type, contexts: new Set(contexts), valid };
}

const byId: Array<PropertyDef | undefined> = [];
const byName = new Map<string, PropertyDef>();
for (const d of defs) {
  byId[d.id] = d;
  byName.set(d.name, d);
}

/** Property identifiers, for tests and logs. */
export const PropertyId = Object.fromEntries(defs.map((d) => [d.name, d.id])) as Record<PropertyName, number>;

/**
 * Reads a property block: its Variable Byte Integer length, then the properties.
 * Returns undefined for an empty block.
 */
export function readProperties(r: Reader, context: PropertyContext): Properties | undefined {
  const len = r.varint("property length");
  if (len === 0) return undefined;
  if (len > r.remaining()) malformed("property length exceeds the packet");
  const end = r.pos + len;
  const props: Record<string, unknown> = {};
  while (r.pos < end) {
    const id = r.varint("property identifier");
    const d = byId[id];
    // 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
    if (d === undefined) malformed(`unknown property 0x${id.toString(16)}`);
    if (!d.contexts.has(context)) malformed(`property ${d.name} is not allowed in ${context}`);
    const value = readValue(r, d);
    if (d.valid !== undefined && !d.valid(value as number)) {
      protocolError(`property ${d.name} has invalid value ${value}`);
    }
    if (d.type === "pair" || d.name === "subscriptionIdentifiers") {
      // User Property may repeat; so may Subscription Identifier, except in SUBSCRIBE.
      const list = props[d.name] as unknown[] | undefined;
      if (list === undefined) {
        props[d.name] = [value];
      } else if (d.type !== "pair" && context === "subscribe") {
        protocolError("Subscription Identifier included more than once in SUBSCRIBE");
      } else {
        list.push(value);
      }
    } else {
      if (d.name in props) protocolError(`property ${d.name} included more than once`);
      props[d.name] = value;
    }
  }
  if (r.pos !== end) malformed("property block overruns its length");
  return props as Properties;
}

function readValue(r: Reader, d: PropertyDef): unknown {
  switch (d.type) {
    case "byte":
      return r.u8(d.name);
    case "u16":
      return r.u16(d.name);
    case "u32":
      return r.u32(d.name);
    case "varint":
      return r.varint(d.name);
    case "utf8":
      return r.utf8(d.name);
    case "binary":
      return r.binary(d.name);
    case "pair":
      return [r.utf8(d.name), r.utf8(d.name)];
  }
}

/** Writes a property block, length first; `undefined` writes an empty block. */
export function writeProperties(w: Writer, props: Properties | undefined): void {
  if (props === undefined) {
    w.u8(0);
    return;
  }
  w.lengthPrefixed(() => {
    for (const name in props) {
      const value = (props as Record<string, unknown>)[name];
      if (value === undefined) continue;
      const d = byName.get(name);
      if (d === undefined) continue;
      if (d.type === "pair") {
        for (const [k, v] of value as Array<[string, string]>) {
          w.u8(d.id);
          w.utf8(k);
          w.utf8(v);
        }
      } else if (d.name === "subscriptionIdentifiers") {
        for (const id of value as number[]) {
          w.u8(d.id);
          w.varint(id);
        }
      } else {
        w.u8(d.id);
        writeValue(w, d.type, value);
      }
    }
  });
}

function writeValue(w: Writer, type: DataType, value: unknown): void {
  switch (type) {
    case "byte":
      w.u8(value as number);
      return;
    case "u16":
      w.u16(value as number);
      return;
    case "u32":
      w.u32(value as number);
      return;
    case "varint":
      w.varint(value as number);
      return;
    case "utf8":
      w.utf8(value as string);
      return;
    case "binary":
      w.binary(value as Uint8Array);
      return;
    case "pair":
      return;
  }
}
