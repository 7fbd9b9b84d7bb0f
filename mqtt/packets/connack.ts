/** CONNACK (3.1.1 section 3.2, 5.0 section 3.2). */
import { malformed, protocolError } from "../errors.ts";
import type { ConnackPacket, ProtocolVersion } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { allowedReasonCodes } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodeConnack(r: Reader, version: ProtocolVersion): ConnackPacket {
  const ackFlags = r.u8("connect acknowledge flags");
  // 3.2.2.1: bits 7-1 are reserved and must be 0.
  if (ackFlags & 0xfe) malformed("CONNACK reserved flags are set");
  const reasonCode = r.u8("connect reason code");
  const packet: ConnackPacket = { type: "connack", sessionPresent: ackFlags === 1, reasonCode };
  if (version === 5) {
    if (!allowedReasonCodes.connack.has(reasonCode)) {
      protocolError(`reason code 0x${reasonCode.toString(16)} is not valid in CONNACK`);
    }
    const properties = readProperties(r, "connack");
    if (properties !== undefined) packet.properties = properties;
  } else if (reasonCode > 5) {
    malformed(`CONNACK return code ${reasonCode} is reserved`);
  }
  r.done("CONNACK");
  return packet;
}

export function encodeConnack(p: ConnackPacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(version === 5 ? 64 : 2);
  // MQTT 3.1 (level 3) has no session present flag: the byte is reserved, 0.
  w.u8(p.sessionPresent && version !== 3 ? 1 : 0);
  w.u8(p.reasonCode);
  if (version === 5) writeProperties(w, p.properties);
  return w.finish(0x20);
}
