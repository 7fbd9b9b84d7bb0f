/**
 * CONNECT (3.1.1 section 3.1, 5.0 section 3.1), up to knowing who the client is:
 * the client id and will checked (broker/protocol/connect.ts), credentials or an
 * enhanced authentication exchange (4.12), the client id pattern and the will
 * authorized for the principal. The session part follows in connect-session.ts.
 */
import type { AclSource } from "../../broker/acl.ts";
import type { Authenticator, Identity } from "../../broker/auth/authenticator.ts";
import type { AuthMethods, AuthStep } from "../../broker/auth/method.ts";
import type { AuthThrottle } from "../../broker/auth/throttle.ts";
import { clientIdAllowed } from "../../broker/client-ids.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import { log } from "../../broker/log.ts";
import { principalOf } from "../../broker/principal.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import {
  type ConnectRefusal,
  checkConnect,
  fitConnack,
  refusal,
  refusedConnack,
} from "../../broker/protocol/connect.ts";
import { type ConnectPacket, ConnectReturnCode, ReasonCode } from "../../mqtt/index.ts";
import { acceptConnect, type ConnectSessionDeps } from "./connect-session.ts";
import type { Connection } from "./connection.ts";
import type { Wire } from "./wire.ts";

/** What handling CONNECT (and the AUTH exchange inside it) needs of the gateway. */
export interface ConnectDeps extends ConnectSessionDeps {
  config: BrokerConfig;
  authMethods: Pick<AuthMethods, "get">;
  authenticator: Authenticator;
  authThrottle: Pick<AuthThrottle, "allows" | "failed">;
  acl: AclSource;
  wire: Pick<Wire, "send" | "ackProperties">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
  name(): string;
}

/** Ends a connection whose CONNECT is refused: CONNACK with the code (where there is one), then close. */
export function refuseConnect(
  d: ConnectDeps,
  conn: Connection,
  p: ConnectPacket,
  r: ConnectRefusal,
): Promise<void> {
  const reasonString = d.wire.ackProperties(conn, r.why)?.reasonString;
  const connack = refusedConnack(p, r, p.protocolVersion === 5 ? reasonString : undefined);
  const fitted = connack === undefined ? undefined : fitConnack(connack, p);
  if (fitted !== undefined) d.wire.send(conn, fitted);
  log("info", "connect_refused", { gateway: d.name(), clientId: p.clientId, reason: r.why });
  return d.close(conn, { kind: "connect-refused", why: r.why });
}

export async function handleConnect(d: ConnectDeps, conn: Connection, p: ConnectPacket): Promise<void> {
  conn.decoder.version = p.protocolVersion;
  const checked = checkConnect(p, d.config, () => `nimbus-${crypto.randomUUID()}`);
  if (checked.refused) return refuseConnect(d, conn, p, checked);
  const { clientId, assigned } = checked;
  const address = conn.address;
  const methodName = p.properties?.authenticationMethod;
  // Checking credentials costs (PBKDF2, a signature): not for those failing too often.
  if ((methodName !== undefined || p.password !== undefined) && !d.authThrottle.allows(address)) {
    const why = "too many failed authentications lately";
    return refuseConnect(
      d,
      conn,
      p,
      refusal(ReasonCode.ConnectionRateExceeded, ConnectReturnCode.ServerUnavailable, why),
    );
  }
  if (methodName !== undefined) {
    const method = d.authMethods.get(methodName);
    // 5.0 4.12: a method this broker does not offer is refused with 0x8C.
    if (method === undefined) {
      const why = `unknown authentication method "${methodName}"`;
      return refuseConnect(d, conn, p, refusal(ReasonCode.BadAuthenticationMethod, null, why));
    }
    const ctx = { clientId, username: p.username };
    const { step, state } = await method.start(ctx, p.properties?.authenticationData);
    conn.auth = { method, state, ctx, pending: { connect: p, clientId, assigned } };
    return authStep(d, conn, step);
  }
  const result = await d.authenticator.authenticate({
    clientId,
    username: p.username,
    password: p.password,
    upgrade: conn.att.phase === "awaiting-connect" ? conn.att.upgrade : undefined,
  });
  if (!result.ok) {
    d.authThrottle.failed(address, result.cost);
    const bad = result.code === "bad-credentials";
    return refuseConnect(
      d,
      conn,
      p,
      refusal(
        bad ? ReasonCode.BadUserNameOrPassword : ReasonCode.NotAuthorized,
        bad ? ConnectReturnCode.BadUserNameOrPassword : ConnectReturnCode.NotAuthorized,
        result.reason,
      ),
    );
  }
  return authorized(d, conn, p, clientId, assigned, result.identity);
}

/**
 * Acts on a step of enhanced authentication during CONNECT (5.0 4.12.1): AUTH 0x18
 * to continue, CONNACK on success or failure.
 */
export async function authStep(d: ConnectDeps, conn: Connection, step: AuthStep): Promise<void> {
  const auth = conn.auth;
  const pending = auth?.pending;
  if (auth === undefined || pending === undefined) return;
  if (step.kind === "continue") {
    d.wire.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
    return;
  }
  auth.pending = undefined;
  const p = pending.connect;
  if (step.kind === "failure") {
    d.authThrottle.failed(conn.address, "cheap");
    return refuseConnect(d, conn, p, refusal(step.reasonCode, null, step.reason));
  }
  // The method verified a name: a user name may repeat it, never rename it.
  if (p.username !== undefined && p.username !== step.identity) {
    const why = "user name differs from the verified name";
    return refuseConnect(d, conn, p, refusal(ReasonCode.NotAuthorized, null, why));
  }
  const identity: Identity = { username: step.identity, via: "auth-method" };
  return authorized(d, conn, p, pending.clientId, pending.assigned, identity, step.data);
}

/**
 * CONNECT once the principal is known: the client id must be one it may use, and
 * its will a topic it may publish to (both depend on who it is).
 */
async function authorized(
  d: ConnectDeps,
  conn: Connection,
  p: ConnectPacket,
  clientId: string,
  assigned: boolean,
  identity: Identity,
  authenticationData?: Uint8Array,
): Promise<void> {
  // A client id the server assigned is unique and unguessable: no pattern applies.
  if (!assigned && !clientIdAllowed(d.config.clientIdPattern, clientId, identity)) {
    const why = "client id not allowed for this user (CLIENT_ID_PATTERN)";
    return refuseConnect(
      d,
      conn,
      p,
      refusal(ReasonCode.ClientIdentifierNotValid, ConnectReturnCode.IdentifierRejected, why),
    );
  }
  // Wills are checked when they are set, not when they fire.
  if (p.will !== undefined && !(await d.acl.canPublish(principalOf(clientId, identity), p.will.topic))) {
    const why = "will topic not authorized";
    return refuseConnect(d, conn, p, refusal(ReasonCode.NotAuthorized, ConnectReturnCode.NotAuthorized, why));
  }
  conn.identity = identity;
  const refused = await acceptConnect(d, conn, p, { clientId, assigned, identity, authenticationData });
  if (refused !== undefined) return refuseConnect(d, conn, p, refused);
}
