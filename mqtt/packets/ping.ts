/** PINGREQ and PINGRESP (section 3.12 and 3.13 of both versions): no body. */
import type { PingreqPacket, PingrespPacket } from "../packet.ts";
import type { Reader } from "../wire/reader.ts";

const PINGREQ = Uint8Array.of(0xc0, 0x00);
const PINGRESP = Uint8Array.of(0xd0, 0x00);

export function decodePingreq(r: Reader): PingreqPacket {
  r.done("PINGREQ");
  return { type: "pingreq" };
}

export function decodePingresp(r: Reader): PingrespPacket {
  r.done("PINGRESP");
  return { type: "pingresp" };
}

/** A fresh copy each time, so a caller that transfers or mutates it harms no one. */
export function encodePingreq(): Uint8Array {
  return PINGREQ.slice();
}

export function encodePingresp(): Uint8Array {
  return PINGRESP.slice();
}
