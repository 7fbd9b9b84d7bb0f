/**
 * AUTH from a client (5.0 section 3.15 and 4.12): the next step of the exchange
 * started by CONNECT, or a re-authentication (0x19) of a connected client with the
 * same method.
 */
import { type AuthContext, MAX_AUTH_STATE } from "../../broker/auth/method.ts";
import { log } from "../../broker/log.ts";
import { type AuthPacket, ReasonCode } from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import type { AuthExchange, Connection } from "./connection.ts";
import { authStep } from "./handle-connect.ts";

export async function handleAuth(gw: Gateway, conn: Connection, p: AuthPacket): Promise<void> {
  const auth = exchangeOf(gw, conn);
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
  if (state.length > MAX_AUTH_STATE) {
    return gw.fail(conn, ReasonCode.UnspecifiedError, `${auth.method.name} keeps more state than allowed`);
  }
  auth.state = state;
  const att = conn.connected;
  if (att !== undefined) {
    // Written to the attachment, so the next step finds it after a hibernation.
    att.auth = { method: auth.method.name, state };
    conn.save();
  }
  if (step.kind === "continue") {
    gw.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
  } else if (step.kind === "success") {
    // Re-authentication renews who the client is; it cannot make it someone else.
    if (step.identity !== gw.identity(conn).username) {
      return gw.fail(conn, ReasonCode.NotAuthorized, "re-authentication as another principal");
    }
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

/**
 * The exchange of this connection: in memory, or, for a connected client whose
 * gateway hibernated since, rebuilt from its attachment and stored identity.
 */
function exchangeOf(gw: Gateway, conn: Connection): AuthExchange | undefined {
  if (conn.auth !== undefined) return conn.auth;
  const att = conn.connected;
  const method = att?.auth === undefined ? undefined : gw.authMethods.get(att.auth.method);
  if (att?.auth === undefined || method === undefined) return undefined;
  const ctx: AuthContext = { clientId: att.clientId };
  const name = gw.identity(conn).username;
  if (name !== undefined) ctx.username = name;
  conn.auth = { method, state: att.auth.state, ctx };
  return conn.auth;
}
