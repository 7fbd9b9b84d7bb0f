/** UNSUBSCRIBE (3.1.1 section 3.10, 5.0 section 3.10). */
import { malformed, protocolError } from "../errors.ts";
import type { ProtocolVersion, UnsubscribePacket } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodeUnsubscribe(r: Reader, version: ProtocolVersion): UnsubscribePacket {
  const packetId = r.u16("packet identifier");
  if (packetId === 0) malformed("UNSUBSCRIBE with packet identifier 0 (MQTT-2.3.1-1)");
  const properties = version === 5 ? readProperties(r, "unsubscribe") : undefined;
  const topicFilters: string[] = [];
  while (r.remaining() > 0) {
    const filter = r.utf8("topic filter");
    // MQTT-4.7.3-1: at least one character, or the packet is malformed.
    if (filter === "") malformed("empty topic filter (MQTT-4.7.3-1)");
    topicFilters.push(filter);
  }
  // MQTT-3.10.3-2: at least one topic filter.
  if (topicFilters.length === 0) protocolError("UNSUBSCRIBE with no topic filter (MQTT-3.10.3-2)");
  const packet: UnsubscribePacket = { type: "unsubscribe", packetId, topicFilters };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodeUnsubscribe(p: UnsubscribePacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(8 + p.topicFilters.length * 32);
  w.u16(p.packetId);
  if (version === 5) writeProperties(w, p.properties);
  for (const f of p.topicFilters) w.utf8(f);
  // MQTT-3.10.1-1: UNSUBSCRIBE fixed header flags are 0010.
  return w.finish(0xa2);
}
