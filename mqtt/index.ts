/** The protocol core: plain TypeScript, no Cloudflare imports, tested in Node. */
import { decodeBody } from "./decode.ts";
import type { DecodeError } from "./errors.ts";
import { MAX_PACKET_SIZE, readHeader } from "./fixed-header.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";
import { ReasonCode } from "./reason-codes.ts";

export { isDecodeError } from "./decode.ts";
export { encode } from "./encode.ts";
export type { DecodeError } from "./errors.ts";
export * from "./packet.ts";
export type * from "./properties.ts";
export { PropertyId } from "./properties.ts";
export * from "./reason-codes.ts";
export * from "./stream-decoder.ts";
export * from "./topics/subscription-index.ts";
export * from "./topics/validate.ts";
export { isWellFormedUtf8 } from "./wire/utf8.ts";

/** Decodes exactly one whole packet from `bytes` (fixtures, tests, tools). */
export function decodePacket(bytes: Uint8Array, version: ProtocolVersion): Packet | DecodeError {
  const header = readHeader(bytes, 0, MAX_PACKET_SIZE, version === 5);
  if (header.kind === "error") return header.error;
  if (header.kind === "incomplete" || header.total !== bytes.length) {
    return {
      ok: false,
      reasonCode: ReasonCode.MalformedPacket,
      message: "length does not match the bytes given",
    };
  }
  return decodeBody(bytes[0] as number, bytes, header.headerLen, header.total, version);
}
