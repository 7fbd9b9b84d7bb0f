/** Packets that tests build often; plain data, usable in Node and inside workerd. */
import type { ConnectPacket, ProtocolVersion } from "../../mqtt/index.ts";

/** CONNECT with clean start and keep-alive 60, unless `extra` says otherwise. */
export function connectPacket(
  clientId: string,
  version: ProtocolVersion,
  extra: Partial<ConnectPacket> = {},
): ConnectPacket {
  const protocolVersion = extra.protocolVersion ?? version;
  return {
    type: "connect",
    protocolVersion,
    protocolName: protocolVersion === 3 ? "MQIsdp" : "MQTT",
    clientId,
    cleanStart: true,
    keepAlive: 60,
    ...extra,
  };
}
