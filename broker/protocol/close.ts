/**
 * How a connection ends: one reason from a closed list (as Mosquitto's
 * do_disconnect and EMQX's stepdown reasons are), and one table of what each
 * means. For every reason: the DISCONNECT a 5.0 client is sent first (never
 * before CONNACK: MQTT-3.14.0-1), the WebSocket close code, and how the session
 * leaves the connection: "normal" without its will, "abnormal" with it
 * (MQTT-3.1.2-8), "moved" when a newer connection has it now (takeover).
 */
import { ReasonCode, reasonName } from "../../mqtt/index.ts";

export type CloseReason =
  /** The client sent DISCONNECT with this code: 0x04 keeps its will, others had it cleared. */
  | { kind: "client-disconnect"; reasonCode: number }
  /** The socket closed or failed under us. */
  | { kind: "socket-closed"; detail: string }
  /** A protocol violation or a bound passed: the code says which (0x81 … 0x9F), and the close code (closeCodeOf). */
  | { kind: "protocol-error"; reasonCode: number; why: string }
  /** No packet within 1.5 × the keep-alive (3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22). */
  | { kind: "keep-alive" }
  /** No CONNECT within CONNECT_TIMEOUT. */
  | { kind: "connect-timeout" }
  /** The login's credential (a token's exp, a cookie's, a certificate's notAfter) expired while connected. */
  | { kind: "login-expired" }
  /** CONNECT refused: the CONNACK that says why was sent already. */
  | { kind: "connect-refused"; why: string }
  /** An operator ended it (HTTP API): 0x98 Administrative action. */
  | { kind: "administrator"; reasonCode: number }
  /** The gateway is being retired: 0x8B Server shutting down. */
  | { kind: "shutdown"; reasonCode: number }
  /** A newer connection with the same client id has the session now (MQTT-3.1.4-2). */
  | { kind: "taken-over" }
  /** A fault of ours while handling the connection's packets. */
  | { kind: "internal-error"; detail: string };

export type SessionEnding = "normal" | "abnormal" | "moved";

/** What a reason means for the client and its session. */
export interface Goodbye {
  /** The reason code of the DISCONNECT a 5.0 client gets (after CONNACK only); none for a client that said goodbye itself. */
  disconnect: number | undefined;
  /**
   * RFC 6455 7.4.1: 1000 normal, 1001 going away, 1002 protocol error, 1008 policy
   * violation, 1011 internal error; 1013 try again later (IANA registry).
   */
  closeCode: 1000 | 1001 | 1002 | 1008 | 1011 | 1013;
  ending: SessionEnding;
  /** Why, for the log line and the close frame. */
  why: string;
}

export function goodbye(reason: CloseReason): Goodbye {
  switch (reason.kind) {
    case "client-disconnect":
      return {
        disconnect: undefined,
        closeCode: 1000,
        ending: reason.reasonCode === ReasonCode.Success ? "normal" : "abnormal",
        why: "DISCONNECT",
      };
    case "socket-closed":
      return { disconnect: undefined, closeCode: 1000, ending: "abnormal", why: reason.detail };
    case "protocol-error":
      return {
        disconnect: reason.reasonCode,
        closeCode: closeCodeOf(reason.reasonCode),
        ending: "abnormal",
        why: reason.why,
      };
    case "keep-alive":
      return {
        disconnect: ReasonCode.KeepAliveTimeout,
        closeCode: 1000,
        ending: "abnormal",
        why: "keep-alive expired (3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22)",
      };
    case "connect-timeout":
      return { disconnect: undefined, closeCode: 1000, ending: "abnormal", why: "no CONNECT in time" };
    case "login-expired":
      // 0xA0 Maximum connect time: "the maximum connection time authorized for this
      // connection has been exceeded" (MQTT 5.0, 3.14.2.1), which is what a credential's
      // expiry is. The session is kept and the will goes out, as for any other end
      // the client did not ask for (MQTT-3.1.2-8): the client reconnects with a new token.
      return {
        disconnect: ReasonCode.MaximumConnectTime,
        closeCode: 1000,
        ending: "abnormal",
        why: "login expired",
      };
    case "connect-refused":
      return { disconnect: undefined, closeCode: 1000, ending: "normal", why: reason.why };
    case "administrator":
      return {
        disconnect: reason.reasonCode,
        closeCode: 1000,
        ending: "abnormal",
        why: `administrator: ${reasonName(reason.reasonCode)}`,
      };
    case "shutdown":
      return {
        disconnect: reason.reasonCode,
        closeCode: 1001,
        ending: "abnormal",
        why: `server: ${reasonName(reason.reasonCode)}`,
      };
    case "taken-over":
      return {
        disconnect: ReasonCode.SessionTakenOver,
        closeCode: 1000,
        ending: "moved",
        why: "session taken over",
      };
    case "internal-error":
      // The detail is logged; the client learns only that it was ours (1011: "a
      // condition that prevented it from fulfilling the request", RFC 6455 7.4.1).
      return {
        disconnect: ReasonCode.UnspecifiedError,
        closeCode: 1011,
        ending: "abnormal",
        why: "internal error",
      };
  }
}

/**
 * The WebSocket close code of a connection ended for `reasonCode` (what a 3.1.1
 * client, which gets no DISCONNECT, learns of why). A bound of the gateway's
 * reached, not the client's doing (0x89 Server busy): 1013 Try Again Later. A
 * client past its own bounds (0x96 Message rate too high: its bytes held, or the
 * most publishes waiting; 0x97 Quota exceeded: retained messages, topic aliases):
 * 1008 Policy Violation. Anything else is a protocol violation by the client
 * (0x93 Receive Maximum exceeded among them): 1002.
 */
export function closeCodeOf(reasonCode: number): Goodbye["closeCode"] {
  if (reasonCode === ReasonCode.ServerBusy) return 1013;
  if (reasonCode === ReasonCode.MessageRateTooHigh || reasonCode === ReasonCode.QuotaExceeded) return 1008;
  return 1002;
}
