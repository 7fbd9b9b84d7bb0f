/** Decoding one whole control packet, dispatched on its fixed header (section 2.1). */
import { type DecodeError, malformed, toDecodeError } from "./errors.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";
import { decodeAuth } from "./packets/auth.ts";
import { decodeConnack } from "./packets/connack.ts";
import { decodeConnect } from "./packets/connect.ts";
import { decodeDisconnect } from "./packets/disconnect.ts";
import { decodePingreq, decodePingresp } from "./packets/ping.ts";
import { decodePubAck } from "./packets/pub-acks.ts";
import { decodePublish } from "./packets/publish.ts";
import { decodeSuback } from "./packets/suback.ts";
import { decodeSubscribe } from "./packets/subscribe.ts";
import { decodeUnsuback } from "./packets/unsuback.ts";
import { decodeUnsubscribe } from "./packets/unsubscribe.ts";
import { Reader } from "./wire/reader.ts";

/**
 * The fixed header flags each type must carry (3.1.1 table 2.2, 5.0 table 2-2);
 * PUBLISH (type 3) carries DUP, QoS and RETAIN instead and is checked on its own.
 */
const REQUIRED_FLAGS = [-1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];

/**
 * Why a packet's first byte is refused, or undefined: a reserved type, or
 * reserved flag bits not as the table requires (MQTT-2.2.2-1/-2 in 3.1.1,
 * MQTT-2.1.3-1 in 5.0). Checked as soon as the byte arrives, before any body.
 */
export function firstByteProblem(first: number, version: ProtocolVersion): string | undefined {
  const type = first >> 4;
  if (type === 0) return "packet type 0 is reserved";
  if (type === 15 && version !== 5) return "packet type 15 is reserved before MQTT 5.0";
  const flags = first & 0x0f;
  const required = REQUIRED_FLAGS[type] as number;
  if (required >= 0 && flags !== required) {
    return `reserved flags 0x${flags.toString(16)} in packet type ${type} (MQTT-2.1.3-1)`;
  }
  return undefined;
}

/**
 * Decodes the packet whose body is `buf[start, end)` and whose first byte is
 * `first`. `version` is the connection's protocol level (CONNECT carries its own).
 */
export function decodeBody(
  first: number,
  buf: Uint8Array,
  start: number,
  end: number,
  version: ProtocolVersion,
): Packet | DecodeError {
  const type = first >> 4;
  try {
    const problem = firstByteProblem(first, version);
    if (problem !== undefined) malformed(problem);
    const flags = first & 0x0f;
    const r = new Reader(buf, start, end);
    switch (type) {
      case 1:
        return decodeConnect(r);
      case 2:
        return decodeConnack(r, version);
      case 3:
        return decodePublish(r, flags, version);
      case 4:
        return decodePubAck(r, "puback", version);
      case 5:
        return decodePubAck(r, "pubrec", version);
      case 6:
        return decodePubAck(r, "pubrel", version);
      case 7:
        return decodePubAck(r, "pubcomp", version);
      case 8:
        return decodeSubscribe(r, version);
      case 9:
        return decodeSuback(r, version);
      case 10:
        return decodeUnsubscribe(r, version);
      case 11:
        return decodeUnsuback(r, version);
      case 12:
        return decodePingreq(r);
      case 13:
        return decodePingresp(r);
      case 14:
        return decodeDisconnect(r, version);
      default:
        return decodeAuth(r);
    }
  } catch (err) {
    return toDecodeError(err, type);
  }
}

export function isDecodeError(x: Packet | DecodeError): x is DecodeError {
  return (x as DecodeError).ok === false;
}
