/** CONNECT (3.1.1 section 3.1, 5.0 section 3.1). */
import { DecodeFailure, malformed } from "../errors.ts";
import type { ConnectPacket, ProtocolVersion, QoS, Will } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { ReasonCode } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

const FLAG_USERNAME = 0x80;
const FLAG_PASSWORD = 0x40;
const FLAG_WILL_RETAIN = 0x20;
const FLAG_WILL_QOS = 0x18;
const FLAG_WILL = 0x04;
const FLAG_CLEAN = 0x02;
const FLAG_RESERVED = 0x01;

/** Protocol name and level pairs Nimbus speaks (3.1.1 section 3.1.2.1-2, 5.0 3.1.2.1-2). */
function checkProtocol(name: string, level: number): ProtocolVersion {
  if (name === "MQTT" && (level === 4 || level === 5)) return level;
  if (name === "MQIsdp" && level === 3) return 3;
  if (name !== "MQTT" && name !== "MQIsdp") {
    // MQTT-3.1.2-1: a wrong protocol name may be refused with 0x84 and a close.
    throw new DecodeFailure(ReasonCode.UnsupportedProtocolVersion, `unknown protocol name "${name}"`);
  }
  // MQTT-3.1.2-2: an unsupported level gets CONNACK 0x01 (3.1.1) / 0x84 (5.0).
  throw new DecodeFailure(
    ReasonCode.UnsupportedProtocolVersion,
    `unsupported protocol level ${level} for "${name}"`,
  );
}

export function decodeConnect(r: Reader): ConnectPacket {
  const protocolName = r.utf8("protocol name");
  const protocolVersion = checkProtocol(protocolName, r.u8("protocol level"));
  const flags = r.u8("connect flags");
  // MQTT-3.1.2-3: the reserved flag must be zero.
  if (flags & FLAG_RESERVED) malformed("CONNECT reserved flag is set (MQTT-3.1.2-3)");
  const hasWill = (flags & FLAG_WILL) !== 0;
  const willQos = (flags & FLAG_WILL_QOS) >> 3;
  const willRetain = (flags & FLAG_WILL_RETAIN) !== 0;
  if (!hasWill && (willQos !== 0 || willRetain)) {
    malformed("will QoS or retain set without the will flag (MQTT-3.1.2-11, MQTT-3.1.2-13)");
  }
  if (willQos === 3) malformed("will QoS 3 (MQTT-3.1.2-14)");
  const hasUsername = (flags & FLAG_USERNAME) !== 0;
  const hasPassword = (flags & FLAG_PASSWORD) !== 0;
  if (protocolVersion < 5 && hasPassword && !hasUsername) {
    malformed("password without user name (MQTT-3.1.2-22)");
  }
  const keepAlive = r.u16("keep alive");
  const properties = protocolVersion === 5 ? readProperties(r, "connect") : undefined;
  const clientId = r.utf8("client identifier");
  let will: Will | undefined;
  if (hasWill) {
    const willProperties = protocolVersion === 5 ? readProperties(r, "will") : undefined;
    will = {
      topic: r.utf8("will topic"),
      payload: r.binary("will payload"),
      qos: willQos as QoS,
      retain: willRetain,
    };
    if (willProperties !== undefined) will.properties = willProperties;
  }
  const packet: ConnectPacket = {
    type: "connect",
    protocolVersion,
    protocolName: protocolName as ConnectPacket["protocolName"],
    clientId,
    cleanStart: (flags & FLAG_CLEAN) !== 0,
    keepAlive,
  };
  if (hasUsername) packet.username = r.utf8("user name");
  if (hasPassword) packet.password = r.binary("password");
  if (will !== undefined) packet.will = will;
  if (properties !== undefined) packet.properties = properties;
  r.done("CONNECT");
  return packet;
}

export function encodeConnect(p: ConnectPacket): Uint8Array {
  const v5 = p.protocolVersion === 5;
  const w = new Writer(32 + p.clientId.length + (p.will?.payload.length ?? 0));
  w.utf8(p.protocolVersion === 3 ? "MQIsdp" : "MQTT");
  w.u8(p.protocolVersion);
  let flags = p.cleanStart ? FLAG_CLEAN : 0;
  if (p.will) {
    flags |= FLAG_WILL | (p.will.qos << 3);
    if (p.will.retain) flags |= FLAG_WILL_RETAIN;
  }
  if (p.username !== undefined) flags |= FLAG_USERNAME;
  if (p.password !== undefined) flags |= FLAG_PASSWORD;
  w.u8(flags);
  w.u16(p.keepAlive);
  if (v5) writeProperties(w, p.properties);
  w.utf8(p.clientId);
  if (p.will) {
    if (v5) writeProperties(w, p.will.properties);
    w.utf8(p.will.topic);
    w.binary(p.will.payload);
  }
  if (p.username !== undefined) w.utf8(p.username);
  if (p.password !== undefined) w.binary(p.password);
  return w.finish(0x10);
}
