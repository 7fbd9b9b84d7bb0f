/** DISCONNECT (3.1.1 section 3.14, 5.0 section 3.14). */
import { protocolError } from "../errors.ts";
import type { DisconnectPacket, ProtocolVersion } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { allowedReasonCodes } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodeDisconnect(r: Reader, version: ProtocolVersion): DisconnectPacket {
  const packet: DisconnectPacket = { type: "disconnect" };
  // 3.14.2.1: remaining length 0 means 0x00 Normal disconnection, no properties.
  if (version === 5 && r.remaining() > 0) {
    const reasonCode = r.u8("reason code");
    if (!allowedReasonCodes.disconnect.has(reasonCode)) {
      protocolError(`reason code 0x${reasonCode.toString(16)} is not valid in DISCONNECT`);
    }
    packet.reasonCode = reasonCode;
    if (r.remaining() > 0) {
      const properties = readProperties(r, "disconnect");
      if (properties !== undefined) packet.properties = properties;
    }
  }
  r.done("DISCONNECT");
  return packet;
}

export function encodeDisconnect(p: DisconnectPacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(2);
  if (version === 5) {
    const code = p.reasonCode ?? 0;
    if (code !== 0 || p.properties !== undefined) {
      w.u8(code);
      if (p.properties !== undefined) writeProperties(w, p.properties);
    }
  }
  return w.finish(0xe0);
}
