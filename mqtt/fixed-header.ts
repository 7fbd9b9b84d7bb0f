/** The fixed header (section 2.1): type and flags byte, then the Remaining Length. */
import type { DecodeError } from "./errors.ts";
import { ReasonCode } from "./reason-codes.ts";

/** The largest packet MQTT can express: 1 + 4 length bytes + 268,435,455. */
export const MAX_PACKET_SIZE = 268_435_460;

export type Header =
  | { kind: "incomplete" }
  | { kind: "error"; error: DecodeError }
  | { kind: "ok"; headerLen: number; total: number };

/**
 * Reads the fixed header at `pos`: type byte and Remaining Length (section 2.2.3).
 * `minimal`: a length not in the fewest bytes is malformed (5.0, MQTT-1.5.5-1; 3.1.1
 * describes the encoding without requiring it, so its clients are not held to it).
 */
export function readHeader(buf: Uint8Array, pos: number, maxPacketSize: number, minimal = false): Header {
  let remaining = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    if (pos + i >= buf.length) return { kind: "incomplete" };
    const b = buf[pos + i] as number;
    remaining += (b & 0x7f) * multiplier;
    if ((b & 0x80) === 0) {
      // A last byte of 0 after others adds nothing: the same value fits in fewer bytes.
      if (minimal && i > 1 && b === 0) {
        return {
          kind: "error",
          error: {
            ok: false,
            reasonCode: ReasonCode.MalformedPacket,
            message: "remaining length not encoded in the fewest bytes (MQTT-1.5.5-1)",
            packetType: (buf[pos] as number) >> 4,
          },
        };
      }
      const total = 1 + i + remaining;
      if (total > maxPacketSize) {
        return {
          kind: "error",
          error: {
            ok: false,
            reasonCode: ReasonCode.PacketTooLarge,
            message: `packet of ${total} bytes exceeds the maximum of ${maxPacketSize}`,
            packetType: (buf[pos] as number) >> 4,
          },
        };
      }
      return { kind: "ok", headerLen: 1 + i, total };
    }
    multiplier *= 128;
  }
  return {
    kind: "error",
    error: {
      ok: false,
      reasonCode: ReasonCode.MalformedPacket,
      message: "remaining length is longer than four bytes (2.2.3)",
      packetType: (buf[pos] as number) >> 4,
    },
  };
}

/** The fewest bytes a Remaining Length of `remaining` takes (1.5.5). */
export function lengthBytes(remaining: number): number {
  if (remaining < 128) return 1;
  if (remaining < 16_384) return 2;
  if (remaining < 2_097_152) return 3;
  return 4;
}
