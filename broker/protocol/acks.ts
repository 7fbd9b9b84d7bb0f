/**
 * What an acknowledgement from a client does to the message it answers (the QoS
 * 1 and 2 flows of 4.3, packets 3.4 to 3.7): retire it, release it (QoS 2), or
 * end the connection for answering in the wrong flow. No I/O.
 */
import { ReasonCode } from "../../mqtt/index.ts";
import type { CloseReason } from "./close.ts";

/** What the gateway has in flight under the acknowledged packet id, if anything. */
export interface InFlightFacts {
  qos: 1 | 2;
  state: "sent" | "released";
}

export type AckDecision =
  /** The message is done: out of the window (and storage). */
  | { kind: "retire" }
  /** QoS 2 received (PUBREC): from now on only PUBREL goes out for it, with this reason code. */
  | { kind: "release"; record: boolean }
  /** PUBREC for nothing in flight: PUBREL all the same, 5.0 with 0x92 (4.3.3). */
  | { kind: "release-unknown"; reasonCode: number | undefined }
  /** Nothing to do: a late answer to a message sent again after a reconnect. */
  | { kind: "ignore" }
  | { kind: "close"; reason: CloseReason };

export function decideAck(
  type: "puback" | "pubrec" | "pubcomp",
  packetId: number,
  reasonCode: number | undefined,
  entry: InFlightFacts | undefined,
  version: number,
): AckDecision {
  // 4.3: an acknowledgement that belongs to the other QoS flow of a packet id in
  // flight (PUBACK for QoS 2, PUBREC or PUBCOMP for QoS 1, PUBCOMP before PUBREL)
  // is a Protocol Error. One for no packet id in flight is ignored.
  const wrongFlow =
    entry !== undefined &&
    (type === "puback"
      ? entry.qos !== 1
      : entry.qos !== 2 || (type === "pubcomp" && entry.state !== "released"));
  if (entry !== undefined && wrongFlow) {
    const why = `${type.toUpperCase()} for packet id ${packetId}, a QoS ${entry.qos} message ${entry.state === "released" ? "released" : "in flight"} (4.3)`;
    return { kind: "close", reason: { kind: "protocol-error", reasonCode: ReasonCode.ProtocolError, why } };
  }
  if (type === "pubrec") {
    // 5.0 4.3.3: a PUBREC with a failure code ends the flow: no PUBREL follows.
    if ((reasonCode ?? 0) >= 0x80) return entry === undefined ? { kind: "ignore" } : { kind: "retire" };
    if (entry === undefined)
      return {
        kind: "release-unknown",
        reasonCode: version === 5 ? ReasonCode.PacketIdentifierNotFound : undefined,
      };
    return { kind: "release", record: entry.state === "sent" };
  }
  return entry === undefined ? { kind: "ignore" } : { kind: "retire" };
}
