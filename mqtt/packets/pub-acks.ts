/**
 * PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 to 3.7 of both versions): one
 * layout, a packet identifier, and in 5.0 an optional reason code and properties.
 */
import { malformed, protocolError } from "../errors.ts";
import type { ProtocolVersion, PubAckLikePacket } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { allowedReasonCodes } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export type PubAckType = "puback" | "pubrec" | "pubrel" | "pubcomp";

const FIRST_BYTE: Record<PubAckType, number> = {
  puback: 0x40,
  pubrec: 0x50,
  // MQTT-3.6.1-1: PUBREL fixed header flags are 0010.
  pubrel: 0x62,
  pubcomp: 0x70,
};

export function decodePubAck<T extends PubAckType>(
  r: Reader,
  type: T,
  version: ProtocolVersion,
): PubAckLikePacket<T> {
  const packetId = r.u16("packet identifier");
  if (packetId === 0) malformed(`${type.toUpperCase()} with packet identifier 0`);
  const packet: PubAckLikePacket<T> = { type, packetId };
  if (version === 5) {
    // 3.4.2.1: with remaining length 2 the reason code 0x00 is implied.
    if (r.remaining() > 0) {
      const reasonCode = r.u8("reason code");
      if (!allowedReasonCodes[type].has(reasonCode)) {
        protocolError(`reason code 0x${reasonCode.toString(16)} is not valid in ${type}`);
      }
      packet.reasonCode = reasonCode;
      // 3.4.2.2.1: with remaining length < 4 there are no properties.
      if (r.remaining() > 0) {
        const properties = readProperties(r, "puback");
        if (properties !== undefined) packet.properties = properties;
      }
    }
  }
  r.done(type.toUpperCase());
  return packet;
}

export function encodePubAck(p: PubAckLikePacket<PubAckType>, version: ProtocolVersion): Uint8Array {
  const w = new Writer(4);
  w.u16(p.packetId);
  if (version === 5) {
    const code = p.reasonCode ?? 0;
    // The shortest form the specification allows: omit a 0x00 code with no properties.
    if (code !== 0 || p.properties !== undefined) {
      w.u8(code);
      if (p.properties !== undefined) writeProperties(w, p.properties);
    }
  }
  return w.finish(FIRST_BYTE[p.type]);
}
