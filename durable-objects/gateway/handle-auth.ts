/**
 * AUTH from a client (5.0 section 3.15 and 4.12): the next step of the exchange
 * started by CONNECT, or a re-authentication (0x19) of a connected client with the
 * same method.
 */
import type { Identity } from "../../broker/auth/authenticator.ts";
import { type AuthContext, MAX_AUTH_STATE } from "../../broker/auth/method.ts";
import { log } from "../../broker/log.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { type AuthPacket, ReasonCode } from "../../mqtt/index.ts";
import type { AuthExchange, Connection } from "./connection.ts";
import { authStep, type ConnectDeps } from "./handle-connect.ts";

/** What handling AUTH needs of the gateway: what CONNECT needs (an exchange may end in one), and who a client is. */
export interface AuthDeps extends ConnectDeps {
  identity(conn: Connection): Identity;
}

const protocolError = (reasonCode: number, why: string): CloseReason => ({
  kind: "protocol-error",
  reasonCode,
  why,
});

export async function handleAuth(d: AuthDeps, conn: Connection, p: AuthPacket): Promise<void> {
  const auth = exchangeOf(d, conn);
  // MQTT-4.12.0-7 / 4.12.0-6: AUTH only within an exchange begun with a method, and
  // always naming that same method.
  if (auth === undefined)
    return d.close(
      conn,
      protocolError(ReasonCode.ProtocolError, "AUTH without an authentication method (4.12)"),
    );
  if (p.properties?.authenticationMethod !== auth.method.name) {
    return d.close(
      conn,
      protocolError(ReasonCode.ProtocolError, "AUTH names another authentication method (MQTT-4.12.0-5)"),
    );
  }
  const data = p.properties?.authenticationData;
  if (auth.pending !== undefined) {
    if (p.reasonCode !== ReasonCode.ContinueAuthentication) {
      return d.close(
        conn,
        protocolError(ReasonCode.ProtocolError, "AUTH during CONNECT must continue (0x18)"),
      );
    }
    const { step, state } = await auth.method.continue(auth.ctx, auth.state, data);
    auth.state = state;
    return authStep(d, conn, step);
  }
  // Re-authentication of a connected client (4.12.1).
  const { step, state } =
    p.reasonCode === ReasonCode.ReAuthenticate
      ? await auth.method.start(auth.ctx, data)
      : await auth.method.continue(auth.ctx, auth.state, data);
  if (state.length > MAX_AUTH_STATE) {
    return d.close(
      conn,
      protocolError(ReasonCode.UnspecifiedError, `${auth.method.name} keeps more state than allowed`),
    );
  }
  auth.state = state;
  const att = conn.connected;
  if (att !== undefined) {
    // Written to the attachment, so the next step finds it after a hibernation.
    att.auth = { method: auth.method.name, state };
    conn.save();
  }
  if (step.kind === "continue") {
    d.wire.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
  } else if (step.kind === "success") {
    // Re-authentication renews who the client is; it cannot make it someone else.
    if (step.identity !== d.identity(conn).username) {
      return d.close(conn, protocolError(ReasonCode.NotAuthorized, "re-authentication as another principal"));
    }
    log("info", "reauthenticated", { gateway: d.name(), clientId: auth.ctx.clientId });
    d.wire.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.Success,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
  } else {
    // MQTT-4.12.1-2: a failed re-authentication ends the connection.
    return d.close(conn, protocolError(step.reasonCode, `re-authentication failed: ${step.reason}`));
  }
}

/**
 * The exchange of this connection: in memory, or, for a connected client whose
 * gateway hibernated since, rebuilt from its attachment and stored identity.
 */
function exchangeOf(d: AuthDeps, conn: Connection): AuthExchange | undefined {
  if (conn.auth !== undefined) return conn.auth;
  const att = conn.connected;
  const method = att?.auth === undefined ? undefined : d.authMethods.get(att.auth.method);
  if (att?.auth === undefined || method === undefined) return undefined;
  const ctx: AuthContext = { clientId: att.clientId };
  const name = d.identity(conn).username;
  if (name !== undefined) ctx.username = name;
  conn.auth = { method, state: att.auth.state, ctx };
  return conn.auth;
}
