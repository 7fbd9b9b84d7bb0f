/**
 * PUBACK, PUBREC, PUBREL and PUBCOMP from a client (sections 3.4 to 3.7, and the
 * QoS 1/2 flows of 4.3), carried out: the decision is broker/protocol/acks.ts's.
 * They retire outbound messages, which frees room in the in-flight window, and
 * release inbound QoS 2 messages.
 */
import { log } from "../../broker/log.ts";
import { decideAck } from "../../broker/protocol/acks.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { type PubAckLikePacket, ReasonCode } from "../../mqtt/index.ts";
import type { Connection } from "./connection.ts";
import type { Outbound } from "./outbound.ts";
import type { GatewayStore } from "./store.ts";
import type { Wire } from "./wire.ts";

/** What handling an acknowledgement needs of the gateway. */
export interface AckDeps {
  store: Pick<GatewayStore, "deleteInboundQos2" | "deleteOutbound" | "markOutbound">;
  outbound: Pick<Outbound, "windowOf" | "pump">;
  wire: Pick<Wire, "send">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
}

export function handleAck(
  d: AckDeps,
  conn: Connection,
  p: PubAckLikePacket<"puback" | "pubrec" | "pubrel" | "pubcomp">,
): Promise<void> | undefined {
  const att = conn.connected;
  if (att === undefined) return;
  const { clientId } = att;
  const packetId = p.packetId;

  if (p.type === "pubrel") {
    // MQTT-4.3.3-11 (5.0; 3.1.1 MQTT-4.3.3-2): PUBCOMP releases the packet id; 0x92 if it was not known.
    const known = d.store.deleteInboundQos2(clientId, packetId);
    if (known && conn.inbound.awaitingRelease !== undefined) conn.inbound.awaitingRelease--;
    d.wire.send(
      conn,
      conn.version === 5 && !known
        ? { type: "pubcomp", packetId, reasonCode: ReasonCode.PacketIdentifierNotFound }
        : { type: "pubcomp", packetId },
    );
    return;
  }

  const window = d.outbound.windowOf(conn, clientId);
  // The client is making progress: its held messages need not be written yet.
  window.activeAt = Date.now();
  const entry = window.inflight.get(packetId);
  const decision = decideAck(p.type, packetId, p.reasonCode, entry, conn.version);
  switch (decision.kind) {
    case "close":
      return d.close(conn, decision.reason);
    case "ignore":
      log("debug", "unexpected_ack", { clientId, type: p.type, packetId });
      return;
    case "retire":
      if (entry === undefined) return;
      window.remove(packetId);
      if (entry.seq !== null) d.store.deleteOutbound(entry.seq);
      d.outbound.pump(conn);
      return;
    case "release-unknown":
      d.wire.send(
        conn,
        decision.reasonCode === undefined
          ? { type: "pubrel", packetId }
          : { type: "pubrel", packetId, reasonCode: decision.reasonCode },
      );
      return;
    case "release":
      if (entry !== undefined && decision.record) {
        if (entry.seq !== null) d.store.markOutbound(entry.seq, "released", packetId);
        entry.state = "released";
      }
      d.wire.send(conn, { type: "pubrel", packetId });
      return;
  }
}
