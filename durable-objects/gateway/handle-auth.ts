/**
 * AUTH from a client (5.0 section 3.15 and 4.12): the next step of the exchange
 * started by CONNECT, or a re-authentication (0x19) of a connected client with the
 * same method.
 */
import { log } from "../../broker/log.ts";
import { type AuthPacket, ReasonCode } from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import type { Connection } from "./connection.ts";
import { authStep } from "./handle-connect.ts";

export async function handleAuth(gw: Gateway, conn: Connection, p: AuthPacket): Promise<void> {
  const auth = conn.auth;
  // MQTT-4.12.0-7 / 4.12.0-6: AUTH only within an exchange begun with a method, and
  // always naming that same method.
  if (auth === undefined)
    return gw.fail(conn, ReasonCode.ProtocolError, "AUTH without an authentication method (4.12)");
  if (p.properties?.authenticationMethod !== auth.method.name) {
    return gw.fail(
      conn,
      ReasonCode.ProtocolError,
      "AUTH names another authentication method (MQTT-4.12.0-5)",
    );
  }
  const data = p.properties?.authenticationData;
  if (auth.pending !== undefined) {
    if (p.reasonCode !== ReasonCode.ContinueAuthentication) {
      return gw.fail(conn, ReasonCode.ProtocolError, "AUTH during CONNECT must continue (0x18)");
    }
    const { step, state } = await auth.method.continue(auth.ctx, auth.state, data);
    auth.state = state;
    return authStep(gw, conn, step);
  }
  // Re-authentication of a connected client (4.12.1).
  const { step, state } =
    p.reasonCode === ReasonCode.ReAuthenticate
      ? await auth.method.start(auth.ctx, data)
      : await auth.method.continue(auth.ctx, auth.state, data);
  auth.state = state;
  if (step.kind === "continue") {
    gw.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
  } else if (step.kind === "success") {
    log("info", "reauthenticated", { gateway: gw.name, clientId: auth.ctx.clientId });
    gw.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.Success,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
  } else {
    // MQTT-4.12.1-2: a failed re-authentication ends the connection.
    return gw.fail(conn, step.reasonCode, `re-authentication failed: ${step.reason}`);
  }
}
