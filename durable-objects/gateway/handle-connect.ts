/**
 * CONNECT (3.1.1 section 3.1, 5.0 section 3.1): checks the client id, will and
 * keep-alive, claims the session from its Session object (which takes over any
 * older connection with the same client id), restores it here and answers CONNACK.
 */
import type { Acl, Principal } from "../../broker/acl.ts";
import { type Identity, ownerOf } from "../../broker/auth/authenticator.ts";
import type { AuthStep } from "../../broker/auth/method.ts";
import { clientIdAllowed, clientIdShapeProblem } from "../../broker/client-ids.ts";
import { log } from "../../broker/log.ts";
import { assertPageWithinCall, type OutboundMessage } from "../../broker/session-state.ts";
import { publishTopicProblem } from "../../broker/topic-limits.ts";
import {
  type ConnackPacket,
  type ConnectPacket,
  ConnectReturnCode,
  encode,
  isWellFormedUtf8,
  ReasonCode,
} from "../../mqtt/index.ts";
import type { Gateway } from "../gateway.ts";
import { matchingFilter } from "../registration.ts";
import type { Connected, Connection } from "./connection.ts";

/** Ends a connection whose CONNECT is refused: CONNACK with the code, then close. */
export async function refuseConnect(
  gw: Gateway,
  conn: Connection,
  p: ConnectPacket,
  code5: number,
  code311: number | null,
  why: string,
): Promise<void> {
  const v5 = p.protocolVersion === 5;
  if (v5 || code311 !== null) {
    const properties = v5 ? gw.ackProperties(conn, why) : undefined;
    const connack: ConnackPacket = {
      type: "connack",
      sessionPresent: false,
      reasonCode: v5 ? code5 : (code311 as number),
    };
    if (properties !== undefined) connack.properties = properties;
    const fitted = fitConnack(connack, p);
    if (fitted !== undefined) gw.send(conn, fitted);
  }
  log("info", "connect_refused", { gateway: gw.name, clientId: p.clientId, reason: why });
  gw.closeSocket(conn, 1000, why.slice(0, 100));
  await gw.end(conn, "normal", why);
}

export async function handleConnect(gw: Gateway, conn: Connection, p: ConnectPacket): Promise<void> {
  const v5 = p.protocolVersion === 5;
  conn.decoder.version = p.protocolVersion;
  const refuse = (code5: number, code311: number | null, why: string) =>
    refuseConnect(gw, conn, p, code5, code311, why);

  let clientId = p.clientId;
  let assigned = false;
  if (clientId === "") {
    // MQTT-3.1.3-8: an empty client id with Clean Session 0 is refused with 0x02;
    // 3.1 (level 3) requires 1 to 23 characters.
    if (!v5 && (!p.cleanStart || p.protocolVersion === 3)) {
      return refuse(
        ReasonCode.ClientIdentifierNotValid,
        ConnectReturnCode.IdentifierRejected,
        "empty client id (MQTT-3.1.3-8)",
      );
    }
    // MQTT-3.1.3-6 / 5.0 MQTT-3.1.3-6: the server assigns a unique client id.
    clientId = `nimbus-${crypto.randomUUID()}`;
    assigned = true;
  }
  // MQTT-3.1.3-5 lets a server refuse client ids it does not accept: too long for
  // the attachment, or with control characters. Checked before anything is claimed.
  const shape = clientIdShapeProblem(clientId, gw.config.maxClientId);
  if (shape !== null)
    return refuse(ReasonCode.ClientIdentifierNotValid, ConnectReturnCode.IdentifierRejected, shape.reason);
  if (p.will !== undefined) {
    const problem = publishTopicProblem(gw.config, p.will.topic);
    if (problem !== null) return refuse(ReasonCode.TopicNameInvalid, null, `will topic: ${problem}`);
    // 5.0 3.1.3.2.3: a will declared as UTF-8 must be UTF-8.
    if (p.will.properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(p.will.payload)) {
      return refuse(ReasonCode.PayloadFormatInvalid, null, "will payload is not UTF-8");
    }
  }
  const address = conn.address;
  const methodName = p.properties?.authenticationMethod;
  if (methodName !== undefined || p.password !== undefined) {
    // Checking credentials costs (PBKDF2, a signature): not for those failing too often.
    if (!gw.authThrottle.allows(address)) {
      return refuse(
        ReasonCode.ConnectionRateExceeded,
        ConnectReturnCode.ServerUnavailable,
        "too many failed authentications lately",
      );
    }
  }
  if (methodName !== undefined) {
    const method = gw.authMethods.get(methodName);
    // 5.0 4.12: a method this broker does not offer is refused with 0x8C.
    if (method === undefined) {
      return refuse(
        ReasonCode.BadAuthenticationMethod,
        null,
        `unknown authentication method "${methodName}"`,
      );
    }
    const ctx = { clientId, username: p.username };
    const { step, state } = await method.start(ctx, p.properties?.authenticationData);
    conn.auth = { method, state, ctx, pending: { connect: p, clientId, assigned } };
    return authStep(gw, conn, step);
  }
  const result = await gw.authenticator.authenticate({
    clientId,
    username: p.username,
    password: p.password,
  });
  if (!result.ok) {
    gw.authThrottle.failed(address, result.cost);
    const bad = result.code === "bad-credentials";
    return refuse(
      bad ? ReasonCode.BadUserNameOrPassword : ReasonCode.NotAuthorized,
      bad ? ConnectReturnCode.BadUserNameOrPassword : ConnectReturnCode.NotAuthorized,
      result.reason,
    );
  }
  return authorized(gw, conn, p, clientId, assigned, result.identity);
}

/**
 * Acts on a step of enhanced authentication during CONNECT (5.0 4.12.1): AUTH 0x18
 * to continue, CONNACK on success or failure.
 */
export async function authStep(gw: Gateway, conn: Connection, step: AuthStep): Promise<void> {
  const auth = conn.auth;
  const pending = auth?.pending;
  if (auth === undefined || pending === undefined) return;
  if (step.kind === "continue") {
    gw.send(conn, {
      type: "auth",
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: auth.method.name, authenticationData: step.data },
    });
    return;
  }
  auth.pending = undefined;
  const p = pending.connect;
  if (step.kind === "failure") {
    gw.authThrottle.failed(conn.address, "cheap");
    return refuseConnect(gw, conn, p, step.reasonCode, null, step.reason);
  }
  // The method verified a name: a user name may repeat it, never rename it.
  if (p.username !== undefined && p.username !== step.identity) {
    return refuseConnect(
      gw,
      conn,
      p,
      ReasonCode.NotAuthorized,
      null,
      "user name differs from the verified name",
    );
  }
  const identity: Identity = { username: step.identity, via: "auth-method" };
  return authorized(gw, conn, p, pending.clientId, pending.assigned, identity, step.data);
}

/**
 * CONNECT once the principal is known: the client id must be one it may use, and
 * its will a topic it may publish to (both depend on who it is).
 */
function authorized(
  gw: Gateway,
  conn: Connection,
  p: ConnectPacket,
  clientId: string,
  assigned: boolean,
  identity: Identity,
  authenticationData?: Uint8Array,
): Promise<void> {
  // A client id the server assigned is unique and unguessable: no pattern applies.
  if (!assigned && !clientIdAllowed(gw.config.clientIdPattern, clientId, identity)) {
    return refuseConnect(
      gw,
      conn,
      p,
      ReasonCode.ClientIdentifierNotValid,
      ConnectReturnCode.IdentifierRejected,
      "client id not allowed for this user (CLIENT_ID_PATTERN)",
    );
  }
  const principal = principalOf(clientId, identity);
  // Wills are checked when they are set, not when they fire.
  if (p.will !== undefined && !gw.acl.canPublish(principal, p.will.topic)) {
    return refuseConnect(
      gw,
      conn,
      p,
      ReasonCode.NotAuthorized,
      ConnectReturnCode.NotAuthorized,
      "will topic not authorized",
    );
  }
  conn.identity = identity;
  return acceptConnect(gw, conn, p, clientId, assigned, authenticationData);
}

/** The session part of CONNECT, once the client is who it says it is. */
async function acceptConnect(
  gw: Gateway,
  conn: Connection,
  p: ConnectPacket,
  clientId: string,
  assigned: boolean,
  authenticationData?: Uint8Array,
): Promise<void> {
  const v5 = p.protocolVersion === 5;

  // Session lifetime: 3.1.1 Clean Session 0 keeps the session for a configured
  // time; 5.0 asks with Session Expiry Interval (3.1.2.11.2), capped by config.
  const expiry = v5
    ? Math.min(p.properties?.sessionExpiryInterval ?? 0, gw.config.maxSessionExpiry)
    : p.cleanStart
      ? 0
      : gw.config.sessionExpiryDefault;
  const persistent = v5 ? expiry > 0 : !p.cleanStart;
  const keepAlive = v5 && p.keepAlive > gw.config.maxKeepAlive ? gw.config.maxKeepAlive : p.keepAlive;

  const identity = conn.identity as Identity;
  const connId = crypto.randomUUID();
  const request = {
    clientId,
    owner: ownerOf(identity),
    gateway: gw.name,
    connId,
    cleanStart: p.cleanStart,
    persistent,
    expiry,
  };
  const claim = await gw.claim(request);
  if (!claim.granted) {
    return refuseConnect(
      gw,
      conn,
      p,
      ReasonCode.NotAuthorized,
      ConnectReturnCode.NotAuthorized,
      "client id in use by another user",
    );
  }
  // The ACL may have changed since the session was stored: what it no longer
  // allows this principal is not restored.
  const principal = principalOf(clientId, identity);
  const state = claim.state;
  const allowed = permitted(gw.acl, principal);

  gw.store.putClient({
    clientId,
    connId,
    persistent,
    expiry,
    will: p.will,
    identity,
    registrar: claim.registrar,
  });
  for (const { filter, options } of state.subscriptions) {
    if (allowed.subscription(filter)) gw.addSubscription(clientId, filter, options);
  }
  for (const id of state.inboundQos2) gw.store.addInboundQos2(clientId, id);
  // The session's messages in flight (which come first in its queue: a message
  // is sent only once every older one was) are stored here before CONNACK, so
  // that they go again with their packet ids (MQTT-4.4.0-1) and no new message
  // takes one of those ids. The rest of the queue follows after CONNACK.
  const store = (entries: OutboundMessage[]) => {
    for (const entry of entries) if (allowed.message(entry)) gw.store.addOutbound(clientId, entry);
  };
  let page = assertPageWithinCall(state.outbound);
  store(page.entries);
  while (page.more && page.entries.at(-1)?.state !== "queued") {
    const after = page.through;
    page = assertPageWithinCall(await gw.session(clientId, (s) => s.queuedPage(connId, after)));
    store(page.entries);
  }
  const stored = page.through;

  const now = Date.now();
  const att: Connected = {
    phase: "connected",
    openedAt: conn.att.openedAt,
    clientId,
    connId,
    version: p.protocolVersion,
    keepAlive,
    persistent,
    expiry,
    lastSeen: now,
  };
  const props = p.properties;
  if (props?.receiveMaximum !== undefined) att.receiveMaximum = props.receiveMaximum;
  if (props?.maximumPacketSize !== undefined) att.maximumPacketSize = props.maximumPacketSize;
  // Aliases towards the client: as many as it allows, but no more than
  // TOPIC_ALIAS_MAXIMUM, since each keeps a topic in memory for the connection.
  const aliasesOut = Math.min(props?.topicAliasMaximum ?? 0, gw.config.topicAliasMaximum);
  if (aliasesOut > 0) att.topicAliasMaximum = aliasesOut;
  if (props?.requestProblemInformation === 0) att.noProblemInfo = true;
  if (conn.auth !== undefined) {
    // From now on the method re-authenticates with the verified name.
    conn.auth.ctx = { clientId, username: identity.username as string };
    att.auth = { method: conn.auth.method.name, state: conn.auth.state };
  }
  conn.att = att;
  conn.save();
  if (conn.finished) {
    // The socket closed while the session was being claimed.
    await gw.handover.handOff(clientId, connId, "abnormal");
    return;
  }
  const previous = gw.clients.get(clientId);
  if (previous !== undefined && previous !== conn) previous.detach();
  gw.clients.set(clientId, conn);

  // Registered at the shards before CONNACK: nothing published after it is missed.
  await gw.registerFilters(
    clientId,
    gw.store.subsOf(clientId).map(([f]) => f),
  );

  const connack: ConnackPacket = { type: "connack", sessionPresent: claim.sessionPresent, reasonCode: 0 };
  if (v5) {
    connack.properties = {
      maximumPacketSize: gw.config.maxPacketSize,
      topicAliasMaximum: gw.config.topicAliasMaximum,
      retainAvailable: 1,
      wildcardSubscriptionAvailable: 1,
      subscriptionIdentifiersAvailable: 1,
      sharedSubscriptionAvailable: 1,
    };
    // Absent means 65,535 (3.2.2.3.3).
    if (gw.config.receiveMaximum < 65535) connack.properties.receiveMaximum = gw.config.receiveMaximum;
    if (assigned) connack.properties.assignedClientIdentifier = clientId;
    if (conn.auth !== undefined) {
      // 3.2.2.3.17: CONNACK names the method the exchange used.
      connack.properties.authenticationMethod = conn.auth.method.name;
      if (authenticationData !== undefined) connack.properties.authenticationData = authenticationData;
    }
    if (keepAlive !== p.keepAlive) connack.properties.serverKeepAlive = keepAlive;
    if (expiry !== (p.properties?.sessionExpiryInterval ?? 0)) {
      connack.properties.sessionExpiryInterval = expiry;
    }
    // 5.0 3.1.2.11.7: on request, a topic prefix for this client's responses.
    if (props?.requestResponseInformation === 1)
      connack.properties.responseInformation = `response/${clientId}/`;
  }
  const fitted = fitConnack(connack, p);
  if (fitted === undefined) {
    // MQTT-3.1.2-24: not even the smallest CONNACK fits what the client accepts.
    log("info", "connect_refused", {
      gateway: gw.name,
      clientId,
      reason: "CONNACK exceeds the client's Maximum Packet Size",
    });
    gw.closeSocket(conn, 1000, "CONNACK too large for the client");
    return gw.end(conn, "normal", "CONNACK too large for the client");
  }
  gw.send(conn, fitted);
  conn.ready = true;
  log("info", "connect", {
    gateway: gw.name,
    clientId,
    version: p.protocolVersion,
    persistent,
    sessionPresent: claim.sessionPresent,
  });

  gw.outbound.resend(conn, clientId);
  if (claim.switchNeeded || page.entries.length > 0) {
    // Not awaited: the client's acknowledgements are handled meanwhile.
    void takeQueue(gw, conn, stored, allowed.message);
  }
  gw.outbound.pump(conn);
  if (keepAlive > 0) await gw.scheduleCheck(now + keepAlive * 1500);
}

/**
 * Takes the rest of a session's queue from its Session, a page at a time while
 * the client is connected, after the pages stored before CONNACK (up to
 * `stored`): asking for a page tells the Session it may delete the one before.
 * Meanwhile new QoS 1/2 messages for the client go to the Session too
 * (Connection.backlog), so they arrive after the queue. If the connection ends
 * first, what was not taken yet stays with the Session.
 */
async function takeQueue(
  gw: Gateway,
  conn: Connection,
  stored: number,
  allowed: (entry: OutboundMessage) => boolean,
): Promise<void> {
  const att = conn.connected as Connected;
  const { clientId, connId } = att;
  conn.backlog = att.persistent;
  try {
    // The Session stops being a destination, and the gateway the client came from forgets it.
    let page = await gw.session(clientId, (s) => s.switched(connId, stored));
    while (!conn.finished) {
      assertPageWithinCall(page);
      gw.outbound.deliverQueued(conn, page.entries.filter(allowed));
      if (page.entries.length === 0 && !page.more) break;
      const after = page.through;
      page = await gw.session(clientId, (s) => s.queuedPage(connId, after));
    }
  } catch (err) {
    log("error", "queue_transfer_failed", { gateway: gw.name, clientId, error: String(err) });
    await gw.fail(conn, ReasonCode.UnspecifiedError, "session queue could not be loaded");
  } finally {
    conn.backlog = false;
    gw.outbound.pump(conn);
  }
}

/** The principal ACL checks are made for. */
export function principalOf(clientId: string, identity: Identity): Principal {
  const p: Principal = { clientId };
  if (identity.username !== undefined) p.username = identity.username;
  if (identity.rules !== undefined) p.rules = identity.rules;
  return p;
}

/**
 * What of a restored session the ACL allows now: subscriptions it still grants,
 * and messages on topics it still lets the principal read (a PUBREL, which
 * carries no message to read, is kept to finish its flow).
 */
function permitted(acl: Acl, principal: Principal) {
  return {
    // A shared subscription is authorized by the filter inside it, as at SUBSCRIBE.
    subscription: (filter: string) => acl.canSubscribe(principal, matchingFilter(filter)),
    message: (o: OutboundMessage) => o.state === "released" || acl.canSubscribe(principal, o.message.topic),
  };
}

/**
 * Properties a CONNACK may go without and still mean the same, in the order they
 * are left out when it exceeds the client's Maximum Packet Size: diagnostics
 * first (MQTT-3.2.2-19, -20), then what the client assumes when absent (these
 * "available" flags default to 1), then what it may simply not learn (no Response
 * Information, no aliases towards us). What the client must know to stay within
 * our limits (Maximum Packet Size, Receive Maximum, Server Keep Alive, Session
 * Expiry, the assigned client id, the authentication method) is never left out.
 */
const SHEDDABLE: Array<keyof NonNullable<ConnackPacket["properties"]>> = [
  "reasonString",
  "userProperties",
  "retainAvailable",
  "wildcardSubscriptionAvailable",
  "subscriptionIdentifiersAvailable",
  "sharedSubscriptionAvailable",
  "responseInformation",
  "topicAliasMaximum",
];

/**
 * The CONNACK within the client's Maximum Packet Size (MQTT-3.1.2-24), with what
 * may be left out left out as needed; undefined when even that does not fit.
 */
function fitConnack(connack: ConnackPacket, p: ConnectPacket): ConnackPacket | undefined {
  const max = p.protocolVersion === 5 ? p.properties?.maximumPacketSize : undefined;
  if (max === undefined) return connack;
  const properties = { ...connack.properties };
  const trial: ConnackPacket = { ...connack, properties };
  for (const name of [undefined, ...SHEDDABLE]) {
    if (name !== undefined) delete properties[name];
    if (encode(trial, 5).length <= max) return trial;
  }
  return undefined;
}
