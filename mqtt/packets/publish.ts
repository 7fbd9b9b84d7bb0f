/** PUBLISH (3.1.1 section 3.3, 5.0 section 3.3): the hot path, kept lean. */
import { malformed } from "../errors.ts";
import type { ProtocolVersion, PublishPacket } from "../packet.ts";
import { readProperties, writeProperties } from "../properties.ts";
import type { Reader } from "../wire/reader.ts";
import { Writer } from "../wire/writer.ts";

export function decodePublish(r: Reader, flags: number, version: ProtocolVersion): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  // MQTT-3.3.1-4: a PUBLISH must not have both QoS bits set.
  if (qos === 3) malformed("PUBLISH with QoS 3 (MQTT-3.3.1-4)");
  const dup = (flags & 0x08) !== 0;
  const retain = (flags & 0x01) !== 0;
  const topic = r.utf8("topic name");
  if (qos === 0) {
    // MQTT-3.3.1-2: DUP must be 0 for QoS 0.
    if (dup) malformed("PUBLISH QoS 0 with DUP set (MQTT-3.3.1-2)");
    const properties = version === 5 ? readProperties(r, "publish") : undefined;
    const payload = r.rest();
    return properties === undefined
      ? { type: "publish", topic, payload, qos, dup: false, retain }
      : { type: "publish", topic, payload, qos, dup: false, retain, properties };
  }
  const packetId = r.u16("packet identifier");
  // MQTT-2.3.1-1 (3.1.1), MQTT-2.2.1-3 (5.0): a QoS > 0 PUBLISH needs a non-zero id.
  if (packetId === 0) malformed("PUBLISH QoS > 0 with packet identifier 0 (MQTT-2.3.1-1)");
  const properties = version === 5 ? readProperties(r, "publish") : undefined;
  const payload = r.rest();
  const q = qos as 1 | 2;
  return properties === undefined
    ? { type: "publish", topic, payload, qos: q, dup, retain, packetId }
    : { type: "publish", topic, payload, qos: q, dup, retain, packetId, properties };
}

export function encodePublish(p: PublishPacket, version: ProtocolVersion): Uint8Array {
  const w = new Writer(p.topic.length * 3 + p.payload.length + (version === 5 ? 16 : 4));
  w.utf8(p.topic);
  if (p.qos > 0) w.u16(p.packetId as number);
  if (version === 5) writeProperties(w, p.properties);
  w.bytes(p.payload);
  return w.finish(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0));
}
