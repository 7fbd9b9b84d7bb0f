/**
 * The control packets of MQTT 3.1 (level 3), 3.1.1 (level 4) and 5.0 (level 5) as
 * plain data. One shape serves every version: fields that only 5.0 carries
 * (properties, most reason codes) are optional and ignored when encoding for 3.1.1.
 */
import type {
  AuthProperties,
  ConnackProperties,
  ConnectProperties,
  DisconnectProperties,
  PubackProperties,
  PublishProperties,
  SubackProperties,
  SubscribeProperties,
  UnsubscribeProperties,
  WillProperties,
} from "./properties.ts";

/** Protocol level from CONNECT: 3 is MQTT 3.1 ("MQIsdp"), 4 is 3.1.1, 5 is 5.0. */
export type ProtocolVersion = 3 | 4 | 5;
export type QoS = 0 | 1 | 2;

/** Control packet type numbers (section 2.1.2). */
export const PacketType = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
} as const;
export type PacketTypeName = keyof typeof PacketType;

export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties?: WillProperties;
}

export interface ConnectPacket {
  type: "connect";
  protocolVersion: ProtocolVersion;
  /** "MQTT" for levels 4 and 5, "MQIsdp" for level 3. */
  protocolName: "MQTT" | "MQIsdp";
  clientId: string;
  /** Clean Session in 3.1.1, Clean Start in 5.0. */
  cleanStart: boolean;
  keepAlive: number;
  username?: string;
  password?: Uint8Array;
  will?: Will;
  properties?: ConnectProperties;
}

export interface ConnackPacket {
  type: "connack";
  sessionPresent: boolean;
  /** 5.0 reason code, or 3.1.1 return code. */
  reasonCode: number;
  properties?: ConnackProperties;
}

interface PublishCommon {
  type: "publish";
  topic: string;
  payload: Uint8Array;
  retain: boolean;
  properties?: PublishProperties;
}
/** QoS 0 carries no packet identifier and never DUP (MQTT-2.2.1-2, MQTT-3.3.1-2). */
export interface PublishQoS0 extends PublishCommon {
  qos: 0;
  dup: false;
  packetId?: undefined;
}
export interface PublishQoS12 extends PublishCommon {
  qos: 1 | 2;
  dup: boolean;
  packetId: number;
}
export type PublishPacket = PublishQoS0 | PublishQoS12;

/** PUBACK, PUBREC, PUBREL and PUBCOMP share one layout (sections 3.4 to 3.7). */
export interface PubAckLikePacket<T extends "puback" | "pubrec" | "pubrel" | "pubcomp"> {
  type: T;
  packetId: number;
  /** 5.0 only; absent means 0x00 Success. */
  reasonCode?: number;
  properties?: PubackProperties;
}
export type PubackPacket = PubAckLikePacket<"puback">;
export type PubrecPacket = PubAckLikePacket<"pubrec">;
export type PubrelPacket = PubAckLikePacket<"pubrel">;
export type PubcompPacket = PubAckLikePacket<"pubcomp">;

/** Retain Handling (section 3.8.3.1): 0 send retained, 1 only if new, 2 never. */
export type RetainHandling = 0 | 1 | 2;

export interface Subscription {
  topicFilter: string;
  qos: QoS;
  /** 5.0 subscription options; false/0 for 3.1.1. */
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: RetainHandling;
}

export interface SubscribePacket {
  type: "subscribe";
  packetId: number;
  subscriptions: Subscription[];
  properties?: SubscribeProperties;
}

export interface SubackPacket {
  type: "suback";
  packetId: number;
  /** Granted QoS or failure code, one per requested subscription. */
  reasonCodes: number[];
  properties?: SubackProperties;
}

export interface UnsubscribePacket {
  type: "unsubscribe";
  packetId: number;
  topicFilters: string[];
  properties?: UnsubscribeProperties;
}

export interface UnsubackPacket {
  type: "unsuback";
  packetId: number;
  /** 5.0 only: one per topic filter. */
  reasonCodes?: number[];
  properties?: SubackProperties;
}

export interface PingreqPacket {
  type: "pingreq";
}
export interface PingrespPacket {
  type: "pingresp";
}

export interface DisconnectPacket {
  type: "disconnect";
  /** 5.0 only; absent means 0x00 Normal disconnection. */
  reasonCode?: number;
  properties?: DisconnectProperties;
}

/** 5.0 only (section 3.15). */
export interface AuthPacket {
  type: "auth";
  reasonCode: number;
  properties?: AuthProperties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;
