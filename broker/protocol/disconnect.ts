/**
 * What a DISCONNECT from a client does (3.14): the session's expiry it may set,
 * whether its will stays (only with 0x04, MQTT-3.14.4-3), how the connection
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
      /** 0x04 Disconnect with Will Message: the will is published; otherwise it is discarded. */
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
    keepWill: reasonCode === ReasonCode.DisconnectWithWillMessage,
    reason: { kind: "client-disconnect", reasonCode },
  };
}
