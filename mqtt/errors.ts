import { ReasonCode } from "./reason-codes.ts";

/**
 * Why a byte stream could not be decoded. Every decoding failure is one of these,
 * never an exception: the broker answers with `reasonCode` (5.0) or closes (3.1.1).
 */
export interface DecodeError {
  readonly ok: false;
  /** 5.0 reason code: 0x81 Malformed Packet, 0x82 Protocol Error, 0x84, 0x95 … */
  readonly reasonCode: number;
  /** Human-readable cause, for logs. Never contains payload bytes. */
  readonly message: string;
  /** Control packet type from the fixed header, when it was read. */
  readonly packetType?: number;
}

/**
 * Thrown inside the decoder only, caught at its boundary and turned into a
 * DecodeError. Throwing keeps the per-field readers free of result plumbing.
 */
export class DecodeFailure extends Error {
  readonly reasonCode: number;
  constructor(reasonCode: number, message: string) {
    super(message);
    this.reasonCode = reasonCode;
  }
}

export function malformed(message: string): never {
  throw new DecodeFailure(ReasonCode.MalformedPacket, message);
}

export function protocolError(message: string): never {
  throw new DecodeFailure(ReasonCode.ProtocolError, message);
}

export function toDecodeError(err: unknown, packetType?: number): DecodeError {
  if (err instanceof DecodeFailure) {
    return { ok: false, reasonCode: err.reasonCode, message: err.message, packetType };
  }
  // A bug in a reader must still never escape as an untyped error.
  const message = err instanceof Error ? err.message : String(err);
  return { ok: false, reasonCode: ReasonCode.MalformedPacket, message, packetType };
}
