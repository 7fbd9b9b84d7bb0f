/**
 * Which handler a packet goes to, by the connection's phase: before CONNACK only
 * CONNECT and the AUTH of its exchange (MQTT-3.1.0-1), then every packet a
 * client may send. DISCONNECT from the client and undecodable input are handled
 * here; a fault of ours ends only the connection it happened on.
 */
import { log } from "../../broker/log.ts";
import { decideDisconnect } from "../../broker/protocol/disconnect.ts";
import { type DecodeError, type DisconnectPacket, type Packet, ReasonCode } from "../../mqtt/index.ts";
import type { Connection } from "./connection.ts";
import { type AckDeps, handleAck } from "./handle-acks.ts";
import { type AuthDeps, handleAuth } from "./handle-auth.ts";
import { handleConnect } from "./handle-connect.ts";
import { handlePublish, type PublishDeps } from "./handle-publish.ts";
import { handleSubscribe, handleUnsubscribe, type SubscribeDeps } from "./handle-subscribe.ts";
import type { GatewayStore } from "./store.ts";

/** What every handler needs, together: the Gateway provides one object for all; each handler sees its own part. */
export type DispatchDeps = PublishDeps &
  AckDeps &
  SubscribeDeps &
  AuthDeps & { store: Pick<GatewayStore, "setExpiry" | "clearWill"> };

const protocolError = (reasonCode: number, why: string) =>
  ({ kind: "protocol-error", reasonCode, why }) as const;

export async function dispatch(d: DispatchDeps, conn: Connection, packet: Packet): Promise<void> {
  if (conn.finished) return;
  if (conn.att.phase === "awaiting-connect") {
    if (packet.type === "connect" && conn.auth === undefined) return handleConnect(d, conn, packet);
    // 4.12: the AUTH packets of an exchange begun by CONNECT.
    if (packet.type === "auth" && conn.auth?.pending !== undefined) return handleAuth(d, conn, packet);
    // MQTT-3.1.0-1: the first packet from the client must be CONNECT.
    return d.close(
      conn,
      protocolError(ReasonCode.ProtocolError, `${packet.type} before CONNECT (MQTT-3.1.0-1)`),
    );
  }
  switch (packet.type) {
    case "connect":
      // MQTT-3.1.0-2: a second CONNECT is a protocol violation.
      return d.close(conn, protocolError(ReasonCode.ProtocolError, "second CONNECT (MQTT-3.1.0-2)"));
    case "publish":
      return handlePublish(d, conn, packet);
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return handleAck(d, conn, packet);
    case "subscribe":
      return handleSubscribe(d, conn, packet);
    case "unsubscribe":
      return handleUnsubscribe(d, conn, packet);
    case "pingreq":
      d.wire.send(conn, { type: "pingresp" });
      return;
    case "disconnect":
      return clientDisconnect(d, conn, packet);
    case "auth":
      return handleAuth(d, conn, packet);
    default:
      return d.close(
        conn,
        protocolError(ReasonCode.ProtocolError, `${packet.type} is a server-to-client packet`),
      );
  }
}

/** DISCONNECT from the client (3.14): 0x00 drops the will, any other code keeps it (MQTT-3.1.2-8). */
function clientDisconnect(
  d: DispatchDeps,
  conn: Connection,
  packet: DisconnectPacket,
): Promise<void> | undefined {
  const att = conn.connected;
  if (att === undefined) return;
  const decision = decideDisconnect(packet, att.expiry, d.config.maxSessionExpiry);
  if (decision.kind === "close") return d.close(conn, decision.reason);
  if (decision.expiry !== undefined) {
    att.expiry = decision.expiry;
    d.store.setExpiry(att.clientId, att.expiry);
  }
  // MQTT-3.14.4-3: a normal DISCONNECT discards the will without publishing it.
  if (!decision.keepWill) d.store.clearWill(att.clientId);
  return d.close(conn, decision.reason);
}

/** Input that does not decode: the connection ends with the decoder's reason code. */
export function decodeFailure(d: DispatchDeps, conn: Connection, error: DecodeError): Promise<void> {
  if (conn.att.phase === "awaiting-connect" && error.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
    // MQTT-3.1.2-2: CONNACK 0x01 (3.1.1) and close; a 5.0 client understands 0x84 too.
    d.wire.send(conn, { type: "connack", sessionPresent: false, reasonCode: 0x01 }, 4);
    log("info", "connect_refused", { gateway: d.name(), reason: error.message });
    return d.close(conn, { kind: "connect-refused", why: error.message });
  }
  return d.close(conn, protocolError(error.reasonCode, error.message));
}

/** Never lets a bug in one connection's handling take the object down. */
export function crash(d: DispatchDeps, conn: Connection, err: unknown): Promise<void> {
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return d.close(conn, { kind: "internal-error", detail });
}
