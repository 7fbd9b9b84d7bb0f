/**
 * PUBACK, PUBREC, PUBREL and PUBCOMP from a client (sections 3.4 to 3.7, and the
 * QoS 1/2 flows of 4.3): they retire outbound messages, which frees room in the
 * in-flight window, and release inbound QoS 2 messages.
 */
import { log } from "../../broker/log.ts";
import { type PubAckLikePacket, ReasonCode } from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import type { Connection } from "./connection.ts";

export function handleAck(
  gw: Gateway,
  conn: Connection,
  p: PubAckLikePacket<"puback" | "pubrec" | "pubrel" | "pubcomp">,
): Promise<void> | undefined {
  const att = conn.connected;
  if (att === undefined) return;
  const { clientId } = att;
  const v5 = conn.version === 5;
  const packetId = p.packetId;

  if (p.type === "pubrel") {
    // MQTT-4.3.3-11: PUBCOMP releases the packet id; 0x92 if it was not known.
    const known = gw.store.deleteInboundQos2(clientId, packetId);
    if (known && conn.inbound.awaitingRelease !== undefined) conn.inbound.awaitingRelease--;
    gw.send(
      conn,
      v5 && !known
        ? { type: "pubcomp", packetId, reasonCode: ReasonCode.PacketIdentifierNotFound }
        : { type: "pubcomp", packetId },
    );
    return;
  }

  const window = gw.outbound.windowOf(conn, clientId);
  // The client is making progress: its held messages need not be written yet.
  window.activeAt = Date.now();
  const entry = window.inflight.get(packetId);
  const retire = (): void => {
    if (entry === undefined) return;
    window.remove(packetId);
    if (entry.seq !== null) gw.store.deleteOutbound(entry.seq);
    gw.outbound.pump(conn);
  };

  // 4.3: an acknowledgement that belongs to the other QoS flow of a packet id in
  // flight (PUBACK for QoS 2, PUBREC or PUBCOMP for QoS 1, PUBCOMP before PUBREL) is
  // a Protocol Error. One for no packet id in flight is ignored: it can be a late
  // answer to a message sent again after a reconnect.
  const wrongFlow =
    entry !== undefined &&
    (p.type === "puback"
      ? entry.qos !== 1
      : entry.qos !== 2 || (p.type === "pubcomp" && entry.state !== "released"));
  if (wrongFlow) {
    return gw.fail(
      conn,
      ReasonCode.ProtocolError,
      `${p.type.toUpperCase()} for packet id ${packetId}, a QoS ${entry.qos} message ${entry.state === "released" ? "released" : "in flight"} (4.3)`,
    );
  }
  switch (p.type) {
    case "puback":
      if (entry !== undefined) retire();
      else log("debug", "unexpected_ack", { clientId, type: p.type, packetId });
      return;
    case "pubrec":
      // 5.0 4.3.3: a PUBREC with a failure code ends the flow: no PUBREL follows.
      if ((p.reasonCode ?? 0) >= 0x80) {
        retire();
        return;
      }
      if (entry === undefined) {
        gw.send(
          conn,
          v5
            ? { type: "pubrel", packetId, reasonCode: ReasonCode.PacketIdentifierNotFound }
            : { type: "pubrel", packetId },
        );
        return;
      }
      if (entry.state === "sent") {
        if (entry.seq !== null) gw.store.markOutbound(entry.seq, "released", packetId);
        entry.state = "released";
      }
      gw.send(conn, { type: "pubrel", packetId });
      return;
    case "pubcomp":
      if (entry !== undefined) retire();
      else log("debug", "unexpected_ack", { clientId, type: p.type, packetId });
      return;
  }
}
