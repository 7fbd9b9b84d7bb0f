/** Encoding any control packet for a given protocol version. */
import type { Packet, ProtocolVersion } from "./packet.ts";
import { encodeAuth } from "./packets/auth.ts";
import { encodeConnack } from "./packets/connack.ts";
import { encodeConnect } from "./packets/connect.ts";
import { encodeDisconnect } from "./packets/disconnect.ts";
import { encodePingreq, encodePingresp } from "./packets/ping.ts";
import { encodePubAck } from "./packets/pub-acks.ts";
import { encodePublish } from "./packets/publish.ts";
import { encodeSuback } from "./packets/suback.ts";
import { encodeSubscribe } from "./packets/subscribe.ts";
import { encodeUnsuback } from "./packets/unsuback.ts";
import { encodeUnsubscribe } from "./packets/unsubscribe.ts";

/**
 * Encodes `packet` for a connection at `version`. 5.0-only fields are left out for
 * 3.1.1; CONNECT always uses its own protocolVersion.
 */
export function encode(packet: Packet, version: ProtocolVersion): Uint8Array {
  switch (packet.type) {
    case "connect":
      return encodeConnect(packet);
    case "connack":
      return encodeConnack(packet, version);
    case "publish":
      return encodePublish(packet, version);
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return encodePubAck(packet, version);
    case "subscribe":
      return encodeSubscribe(packet, version);
    case "suback":
      return encodeSuback(packet, version);
    case "unsubscribe":
      return encodeUnsubscribe(packet, version);
    case "unsuback":
      return encodeUnsuback(packet, version);
    case "pingreq":
      return encodePingreq();
    case "pingresp":
      return encodePingresp();
    case "disconnect":
      return encodeDisconnect(packet, version);
    case "auth":
      return encodeAuth(packet);
  }
}
