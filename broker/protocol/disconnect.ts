/**
 * What a DISCONNECT from a client does (3.14): the session's expiry it may set,
 * whether its will stays (discarded only for 0x00, MQTT-3.14.4-3 and MQTT-3.1.2-8), how the connection
 * ends. No I/O.
 */
import { type DisconnectPacket, ReasonCode } from "../../mqtt/index.ts";
import type { CloseReason } from "./close.ts";

export type DisconnectDecision =
  | { kind: "close"; reason: CloseReason }
  | {
      kind: "end";
      /** The Session Expiry Interval from now on, when the packet set one. */
      expiry: number | undefined;
      /**
       * Whether the will is still published: a 0x00 (Normal disconnection, and every 3.1.1
       * DISCONNECT) discards it; any other code leaves it, 0x04 Disconnect with Will Message
       * and the error codes alike (MQTT-3.1.2-8 names only 0x00). Mosquitto discards it for
       * every code but 0x04; the statement leaves no choice there.
       */
      keepWill: boolean;
      reason: CloseReason;
    };

export function decideDisconnect(
  p: DisconnectPacket,
  currentExpiry: number,
  maxSessionExpiry: number,
): DisconnectDecision {
  const reasonCode = p.reasonCode ?? ReasonCode.Success;
  const asked = p.properties?.sessionExpiryInterval;
  // 3.14.2.2.2: a session that was to end with the connection cannot be extended.
  if (asked !== undefined && currentExpiry === 0 && asked > 0) {
    const why = "Session Expiry Interval set at DISCONNECT after 0 at CONNECT (3.14.2.2.2)";
    return { kind: "close", reason: { kind: "protocol-error", reasonCode: ReasonCode.ProtocolError, why } };
  }
  return {
    kind: "end",
    expiry: asked === undefined ? undefined : Math.min(asked, maxSessionExpiry),
    keepWill: reasonCode !== ReasonCode.Success,
    reason: { kind: "client-disconnect", reasonCode },
  };
}
