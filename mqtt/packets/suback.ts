/** SUBACK (3.1.1 section 3.9, 5.0 section 3.9). */
import { malformed, protocolError } from "../errors.ts";
import type { ProtocolVersion, SubackPacket } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { allowedReasonCodes } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

const V311_CODES = new Set([0x00, 0x01, 0x02, 0x80]);

export function decodeSuback(r: Reader, version: ProtocolVersion): SubackPacket {
  const packetId = r.u16("packet identifier");
  if (packetId === 0) malformed("SUBACK with packet identifier 0");
  const properties = version === 5 ? readProperties(r, "suback") : undefined;
  const reasonCodes: number[] = [];
  const allowed = version === 5 ? allowedReasonCodes.suback : V311_CODES;
  while (r.remaining() > 0) {
    const code = r.u8("reason code");
    if (!allowed.has(code)) protocolError(`reason code 0x${code.toString(16)} is not valid in SUBACK`);
    reasonCodes.push(code);
  }
  if (reasonCodes.length === 0) protocolError("SUBACK with no reason code");
  const packet: SubackPacket = { type: "suback", packetId, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodeSuback(p: SubackPacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(4 + p.reasonCodes.length);
  w.u16(p.packetId);
  if (version === 5) writeProperties(w, p.properties);
  for (const code of p.reasonCodes) w.u8(code);
  return w.finish(0x90);
}
