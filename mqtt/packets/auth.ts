/** AUTH (5.0 section 3.15); type 15 is reserved in 3.1.1. */
import { protocolError } from "../errors.ts";
import type { AuthPacket } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import { allowedReasonCodes } from "../reason-codes.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodeAuth(r: Reader): AuthPacket {
  // 3.15.2.1: remaining length 0 means 0x00 Success, no properties.
  if (r.remaining() === 0) return { type: "auth", reasonCode: 0 };
  const reasonCode = r.u8("reason code");
  if (!allowedReasonCodes.auth.has(reasonCode)) {
    protocolError(`reason code 0x${reasonCode.toString(16)} is not valid in AUTH`);
  }
  const packet: AuthPacket = { type: "auth", reasonCode };
  if (r.remaining() > 0) {
    const properties = readProperties(r, "auth");
    if (properties !== undefined) packet.properties = properties;
  }
  r.done("AUTH");
  return packet;
}

export function encodeAuth(p: AuthPacket): Uint8Array {
  const w = new Writer(32);
  if (p.reasonCode !== 0 || p.properties !== undefined) {
    w.u8(p.reasonCode);
    if (p.properties !== undefined) writeProperties(w, p.properties);
  }
  return w.finish(0xf0);
}
