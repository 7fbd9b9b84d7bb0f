/**
 * PUBLISH from a client (3.1.1 section 3.3, 5.0 section 3.3). The message goes to
 * the shard of its topic; the acknowledgement (PUBACK for QoS 1, PUBREC for
 * QoS 2) is sent once the shard has handed it to every destination that stores
 * it durably. The connection is not held up meanwhile: packets keep flowing.
 */
import { log } from "../../broker/log.ts";
import { type Message, messageProperties, newMessageId } from "../../broker/message.ts";
import { type PublishPacket, ReasonCode, validateTopicName } from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import type { Connection } from "./connection.ts";

export function handlePublish(gw: Gateway, conn: Connection, p: PublishPacket): Promise<void> | undefined {
  const att = conn.connected;
  if (att === undefined) return;
  const problem = validateTopicName(p.topic);
  // 5.0 3.3.2.1: an invalid topic name ends the connection with 0x90.
  if (problem !== null) return gw.fail(conn, ReasonCode.TopicNameInvalid, problem);

  const message: Message = {
    id: newMessageId(gw.name),
    topic: p.topic,
    payload: p.payload,
    qos: p.qos,
    retain: p.retain,
    origin: att.clientId,
  };
  const properties = messageProperties(p.properties);
  if (properties !== undefined) message.properties = properties;
  const expiry = p.properties?.messageExpiryInterval;
  if (expiry !== undefined) message.expiresAt = Date.now() + expiry * 1000;

  if (p.qos === 0) {
    gw.publishMessage(message).catch((err) =>
      log("warn", "publish_failed", { clientId: att.clientId, error: String(err) }),
    );
    return;
  }
  const packetId = p.packetId;
  if (p.qos === 1) {
    gw.publishMessage(message).then(
      () => gw.send(conn, { type: "puback", packetId }),
      (err) => gw.fail(conn, ReasonCode.UnspecifiedError, `publish failed: ${String(err)}`),
    );
    return;
  }
  // QoS 2, method B of 4.3.3: the message is routed once; a PUBLISH sent again
  // with the same packet id before PUBREL is only acknowledged (MQTT-4.3.3-9).
  if (conn.publishing.has(packetId)) return;
  if (gw.store.hasInboundQos2(att.clientId, packetId)) {
    gw.send(conn, { type: "pubrec", packetId });
    return;
  }
  conn.publishing.add(packetId);
  gw.publishMessage(message).then(
    () => {
      gw.store.addInboundQos2(att.clientId, packetId);
      conn.publishing.delete(packetId);
      gw.send(conn, { type: "pubrec", packetId });
    },
    (err) => {
      conn.publishing.delete(packetId);
      return gw.fail(conn, ReasonCode.UnspecifiedError, `publish failed: ${String(err)}`);
    },
  );
  return;
}
