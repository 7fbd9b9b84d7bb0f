/** UNSUBACK (3.1.1 section 3.11, 5.0 section 3.11). */
import { malformed, protocolError } from "../errors.ts";
import type { ProtocolVersion, UnsubackPacket } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { allowedReasonCodes } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodeUnsuback(r: Reader, version: ProtocolVersion): UnsubackPacket {
  const packetId = r.u16("packet identifier");
  if (packetId === 0) malformed("UNSUBACK with packet identifier 0");
  const packet: UnsubackPacket = { type: "unsuback", packetId };
  if (version === 5) {
    const properties = readProperties(r, "suback");
    const reasonCodes: number[] = [];
    while (r.remaining() > 0) {
      const code = r.u8("reason code");
      if (!allowedReasonCodes.unsuback.has(code)) {
        protocolError(`reason code 0x${code.toString(16)} is not valid in UNSUBACK`);
      }
      reasonCodes.push(code);
    }
    if (reasonCodes.length === 0) protocolError("UNSUBACK with no reason code");
    packet.reasonCodes = reasonCodes;
    if (properties !== undefined) packet.properties = properties;
  }
  r.done("UNSUBACK");
  return packet;
}

export function encodeUnsuback(p: UnsubackPacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(4 + (p.reasonCodes?.length ?? 0));
  w.u16(p.packetId);
  if (version === 5) {
    writeProperties(w, p.properties);
    for (const code of p.reasonCodes ?? []) w.u8(code);
  }
  return w.finish(0xb0);
}
