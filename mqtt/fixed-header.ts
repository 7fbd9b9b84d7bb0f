/** The fixed header (section 2.1): type and flags byte, then the Remaining Length. */
import type { DecodeError } from "./errors.ts";
import { ReasonCode } from "./reason-codes.ts";

/** The largest packet MQTT can express: 1 + 4 length bytes + 268,435,455. */
export const MAX_PACKET_SIZE = 268_435_460;

export type Header =
  | { kind: "incomplete" }
  | { kind: "error"; error: DecodeError }
  | {
      kind: "ok";
      headerLen: number;
      total: number;
      /** Its Remaining Length takes more bytes than it needs (accepted unless `minimal`). */
      overlong: boolean;
    };

/** A Remaining Length not in the fewest bytes, in a packet held to MQTT-1.5.5-1 (5.0). */
export function overlongLength(packetType: number): DecodeError {
  return {
    ok: false,
    reasonCode: ReasonCode.MalformedPacket,
    message: "remaining length not encoded in the fewest bytes (MQTT-1.5.5-1)",
    packetType,
  };
}

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
      const overlong = i > 1 && b === 0;
      if (minimal && overlong) return { kind: "error", error: overlongLength((buf[pos] as number) >> 4) };
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
      return { kind: "ok", headerLen: 1 + i, total, overlong };
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
