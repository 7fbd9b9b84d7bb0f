/** SUBSCRIBE (3.1.1 section 3.8, 5.0 section 3.8). */
import { malformed, protocolError } from "../errors.ts";
import type { ProtocolVersion, QoS, RetainHandling, SubscribePacket, Subscription } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodeSubscribe(r: Reader, version: ProtocolVersion): SubscribePacket {
  const packetId = r.u16("packet identifier");
  if (packetId === 0) malformed("SUBSCRIBE with packet identifier 0 (MQTT-2.3.1-1)");
  const properties = version === 5 ? readProperties(r, "subscribe") : undefined;
  const subscriptions: Subscription[] = [];
  while (r.remaining() > 0) {
    const topicFilter = r.utf8("topic filter");
    // MQTT-4.7.3-1: a topic filter is at least one character; an empty one makes
    // the packet malformed (not a SUBACK failure).
    if (topicFilter === "") malformed("empty topic filter (MQTT-4.7.3-1)");
    const options = r.u8("subscription options");
    const qos = options & 0x03;
    if (qos === 3) malformed("SUBSCRIBE with QoS 3 (MQTT-3.8.3-4)");
    if (version === 5) {
      // MQTT-3.8.3-5: bits 6 and 7 are reserved.
      if (options & 0xc0) malformed("SUBSCRIBE reserved option bits set (MQTT-3.8.3-5)");
      const retainHandling = (options >> 4) & 0x03;
      if (retainHandling === 3) protocolError("SUBSCRIBE with Retain Handling 3 (3.8.3.1)");
      subscriptions.push({
        topicFilter,
        qos: qos as QoS,
        noLocal: (options & 0x04) !== 0,
        retainAsPublished: (options & 0x08) !== 0,
        retainHandling: retainHandling as RetainHandling,
      });
    } else {
      // MQTT-3.8.3-4 (3.1.1): the upper six bits are reserved.
      if (options & 0xfc) malformed("SUBSCRIBE reserved option bits set (MQTT-3.8.3-4)");
      subscriptions.push({
        topicFilter,
        qos: qos as QoS,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      });
    }
  }
  // MQTT-3.8.3-3 (3.1.1), MQTT-3.8.3-2 (5.0): at least one topic filter.
  if (subscriptions.length === 0) protocolError("SUBSCRIBE with no topic filter (MQTT-3.8.3-3)");
  const packet: SubscribePacket = { type: "subscribe", packetId, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodeSubscribe(p: SubscribePacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(8 + p.subscriptions.length * 32);
  w.u16(p.packetId);
  if (version === 5) writeProperties(w, p.properties);
  for (const s of p.subscriptions) {
    w.utf8(s.topicFilter);
    let options = s.qos;
    if (version === 5) {
      if (s.noLocal) options |= 0x04;
      if (s.retainAsPublished) options |= 0x08;
      options |= s.retainHandling << 4;
    }
    w.u8(options);
  }
  // MQTT-3.8.1-1: SUBSCRIBE fixed header flags are 0010.
  return w.finish(0x82);
}
