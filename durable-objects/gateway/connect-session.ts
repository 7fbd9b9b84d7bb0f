/**
 * The session part of CONNECT, once the client is who it says it is: the client
 * id claimed at its Registry (which goes on to its Session and takes over any
 * older connection, MQTT-3.1.4-2), the session restored here as far as the ACL
 * still allows, its filters registered at the shards, CONNACK, then the rest of
 * its queue taken from its Session while the client is served.
 */
import type { AclSource, Principal } from "../../broker/acl.ts";
import { type Identity, ownerOf } from "../../broker/auth/authenticator.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import { log } from "../../broker/log.ts";
import type { Message } from "../../broker/message.ts";
import { presenceMessage } from "../../broker/presence.ts";
import { principalOf } from "../../broker/principal.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import {
  acceptedConnack,
  type ConnectRefusal,
  fitConnack,
  refusal,
  sessionTerms,
} from "../../broker/protocol/connect.ts";
import { assertPageWithinCall, type OutboundMessage, type OutboundPage } from "../../broker/session-state.ts";
import { type ConnectPacket, ConnectReturnCode, ReasonCode } from "../../mqtt/index.ts";
import { matchingFilter } from "../registration.ts";
import type { Connected, Connection } from "./connection.ts";
import type { Handover } from "./handover.ts";
import type { Links } from "./links.ts";
import type { Outbound } from "./outbound.ts";
import type { Sockets } from "./sockets.ts";
import type { GatewayStore } from "./store.ts";
import type { LocalSubscriptions } from "./subscriptions.ts";
import type { Wire } from "./wire.ts";

/** What the session part of CONNECT needs of the gateway. */
export interface ConnectSessionDeps {
  config: BrokerConfig;
  acl: AclSource;
  links: Pick<Links, "claim" | "session" | "registerFilters">;
  store: Pick<GatewayStore, "putClient" | "addInboundQos2" | "addOutbound">;
  subscriptions: Pick<LocalSubscriptions, "add">;
  sockets: Pick<Sockets, "clients">;
  handover: Pick<Handover, "handOff" | "resuming" | "resumed">;
  outbound: Pick<Outbound, "resend" | "pump" | "deliverQueued">;
  wire: Pick<Wire, "send">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
  scheduleCheck(at: number): Promise<void>;
  name(): string;
  /** Hands a message to the shard of its topic (presence events). */
  publish(m: Message): Promise<unknown>;
}

/** Who is connecting, once authenticated. */
export interface Admitted {
  clientId: string;
  assigned: boolean;
  identity: Identity;
  authenticationData?: Uint8Array | undefined;
}

/** Carries the CONNECT through to CONNACK; a refusal if the client id is another principal's. */
export async function acceptConnect(
  d: ConnectSessionDeps,
  conn: Connection,
  p: ConnectPacket,
  a: Admitted,
): Promise<ConnectRefusal | undefined> {
  // A session this gateway holds since its restart: the Session may leave it here.
  const resume = d.handover.resuming(a.clientId);
  try {
    return await claimAndAccept(d, conn, p, a, resume);
  } finally {
    // Not resumed here (taken over, refused, failed): held on, or handed off if its grace is over.
    if (resume !== undefined) await d.handover.resumed(a.clientId, resume, { resumed: false });
  }
}

async function claimAndAccept(
  d: ConnectSessionDeps,
  conn: Connection,
  p: ConnectPacket,
  a: Admitted,
  resume: string | undefined,
): Promise<ConnectRefusal | undefined> {
  const { clientId, identity } = a;
  const terms = sessionTerms(p, d.config);
  const connId = crypto.randomUUID();
  const claim = await d.links.claim({
    clientId,
    owner: ownerOf(identity),
    gateway: d.name(),
    connId,
    cleanStart: p.cleanStart,
    persistent: terms.persistent,
    expiry: terms.expiry,
    ...(resume === undefined ? {} : { resume }),
  });
  if (!claim.granted)
    return refusal(
      ReasonCode.NotAuthorized,
      ConnectReturnCode.NotAuthorized,
      "client id in use by another user",
    );
  // The ACL may have changed since the session was stored: what it no longer
  // allows this principal is not restored.
  const allowed = permitted(d.acl, principalOf(clientId, identity));
  const state = claim.state;
  d.store.putClient({
    clientId,
    connId,
    persistent: terms.persistent,
    expiry: terms.expiry,
    will: p.will,
    identity,
    registrar: claim.registrar,
  });
  const restored: string[] = [];
  for (const { filter, options } of state.subscriptions) {
    if (!(await allowed.subscription(filter))) continue;
    d.subscriptions.add(clientId, filter, options);
    restored.push(filter);
  }
  for (const id of state.inboundQos2) d.store.addInboundQos2(clientId, id);
  // The session's messages in flight (which come first in its queue: a message
  // is sent only once every older one was) are stored here before CONNACK, so
  // that they go again with their packet ids (MQTT-4.4.0-1) and no new message
  // takes one of those ids. The rest of the queue follows after CONNACK.
  const keep = async (entries: OutboundMessage[]) => {
    for (const entry of entries) if (await allowed.message(entry)) d.store.addOutbound(clientId, entry);
  };
  let page = assertPageWithinCall(state.outbound);
  await keep(page.entries);
  while (page.more && page.entries.at(-1)?.state !== "queued") {
    const after = page.through;
    page = assertPageWithinCall(await d.links.session(clientId, (s) => s.queuedPage(connId, after)));
    await keep(page.entries);
  }
  const stored = page.through;

  const now = Date.now();
  const address = conn.address;
  conn.att = connectedAttachment(conn, p, clientId, connId, terms, now, d.config);
  if (d.config.presence.address && address !== undefined) conn.att.address = address;
  if (identity.expiresAt !== undefined) conn.att.loginExpires = identity.expiresAt;
  if (conn.auth !== undefined) {
    // From now on the method re-authenticates with the verified name.
    conn.auth.ctx = { clientId, username: identity.username as string };
    conn.att.auth = { method: conn.auth.method.name, state: conn.auth.state };
  }
  conn.save();
  if (conn.finished) {
    // The socket closed while the session was being claimed.
    await d.handover.handOff(clientId, connId, "abnormal");
    return undefined;
  }
  const previous = d.sockets.clients.get(clientId);
  if (previous !== undefined && previous !== conn) previous.detach();
  d.sockets.clients.set(clientId, conn);
  if (claim.resumed === true && resume !== undefined) {
    // Its subscriptions are here and registered, its messages in its rows (sent below).
    await d.handover.resumed(clientId, resume, { resumed: true, allowed: allowed.subscription });
  }

  // Registered at the shards before CONNACK: nothing published after it is missed.
  // (A clean session restores nothing: no call.)
  if (restored.length > 0) await d.links.registerFilters(clientId, restored);
  if (conn.finished) {
    // Kicked, taken over or gone while its filters were registered: the Closer has
    // ended it and handed its session off; no CONNACK, no "connected", no queue taken.
    return undefined;
  }

  const connack = acceptedConnack(
    p,
    {
      sessionPresent: claim.sessionPresent,
      terms,
      clientId,
      assigned: a.assigned,
      authMethod: conn.auth?.method.name,
      authenticationData: a.authenticationData,
    },
    d.config,
  );
  const fitted = fitConnack(connack, p);
  if (fitted === undefined) {
    // MQTT-3.1.2-24: not even the smallest CONNACK fits what the client accepts.
    const why = "CONNACK exceeds the client's Maximum Packet Size";
    log("info", "connect_refused", { gateway: d.name(), clientId, reason: why });
    await d.close(conn, { kind: "connect-refused", why });
    return undefined;
  }
  d.wire.send(conn, fitted);
  conn.ready = true;
  const presence = presenceMessage(
    d.config.presence,
    {
      event: "connected",
      clientId,
      connectionId: connId,
      identity,
      protocolLevel: p.protocolVersion,
      address,
      time: now,
    },
    d.name(),
  );
  if (presence !== undefined) void d.publish(presence).catch(() => {});
  log("info", "connect", {
    gateway: d.name(),
    clientId,
    version: p.protocolVersion,
    persistent: terms.persistent,
    sessionPresent: claim.sessionPresent,
  });
  // Messages in flight go again with their packet ids (MQTT-4.4.0-1).
  d.outbound.resend(conn, clientId);
  if (claim.switchNeeded || page.entries.length > 0) {
    // Not awaited: the client's acknowledgements are handled meanwhile.
    void takeQueue(d, conn, stored, allowed.message);
  }
  d.outbound.pump(conn);
  if (terms.keepAlive > 0) await d.scheduleCheck(now + terms.keepAlive * 1500);
  if (identity.expiresAt !== undefined) await d.scheduleCheck(identity.expiresAt);
  return undefined;
}

/** The attachment of a connection whose CONNECT is accepted (kept across hibernation). */
function connectedAttachment(
  conn: Connection,
  p: ConnectPacket,
  clientId: string,
  connId: string,
  terms: ReturnType<typeof sessionTerms>,
  now: number,
  config: Pick<BrokerConfig, "topicAliasMaximum">,
): Connected {
  const att: Connected = {
    phase: "connected",
    openedAt: conn.att.openedAt,
    clientId,
    connId,
    version: p.protocolVersion,
    keepAlive: terms.keepAlive,
    persistent: terms.persistent,
    expiry: terms.expiry,
    lastSeen: now,
  };
  const props = p.properties;
  if (props?.receiveMaximum !== undefined) att.receiveMaximum = props.receiveMaximum;
  if (props?.maximumPacketSize !== undefined) att.maximumPacketSize = props.maximumPacketSize;
  // Aliases towards the client: as many as it allows, but no more than
  // TOPIC_ALIAS_MAXIMUM, since each keeps a topic in memory for the connection.
  const aliasesOut = Math.min(props?.topicAliasMaximum ?? 0, config.topicAliasMaximum);
  if (aliasesOut > 0) att.topicAliasMaximum = aliasesOut;
  if (props?.requestProblemInformation === 0) att.noProblemInfo = true;
  return att;
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
  d: ConnectSessionDeps,
  conn: Connection,
  stored: number,
  allowed: (entry: OutboundMessage) => Promise<boolean>,
): Promise<void> {
  const att = conn.connected as Connected;
  const { clientId, connId } = att;
  conn.backlog = att.persistent;
  try {
    // The Session stops being a destination, and the gateway the client came from forgets it.
    let page: OutboundPage = await d.links.session(clientId, (s) => s.switched(connId, stored));
    while (!conn.finished) {
      assertPageWithinCall(page);
      const entries: OutboundMessage[] = [];
      for (const e of page.entries) if (await allowed(e)) entries.push(e);
      d.outbound.deliverQueued(conn, entries);
      if (page.entries.length === 0 && !page.more) {
        // The last page. Messages this gateway sent the Session behind the queue may
        // have reached it after that page was computed, and sit in its queue: once no
        // more go that way and those calls have landed, the queue is taken again.
        if (conn.backlog) {
          conn.backlog = false;
          while (conn.backlogAppends.size > 0) await Promise.allSettled([...conn.backlogAppends]);
          const after = page.through;
          page = await d.links.session(clientId, (s) => s.queuedPage(connId, after));
          continue;
        }
        break;
      }
      const after = page.through;
      page = await d.links.session(clientId, (s) => s.queuedPage(connId, after));
    }
  } catch (err) {
    log("error", "queue_transfer_failed", { gateway: d.name(), clientId, error: String(err) });
    await d.close(conn, {
      kind: "protocol-error",
      reasonCode: ReasonCode.UnspecifiedError,
      why: "session queue could not be loaded",
    });
  } finally {
    conn.backlog = false;
    d.outbound.pump(conn);
  }
}

/**
 * What of a restored session the ACL allows now: subscriptions it still grants,
 * and messages on topics it still lets the principal read (a PUBREL, which
 * carries no message to read, is kept to finish its flow). Each topic is asked
 * once.
 */
function permitted(acl: AclSource, principal: Principal) {
  const topics = new Map<string, boolean | Promise<boolean>>();
  return {
    // A shared subscription is authorized by the filter inside it, as at SUBSCRIBE.
    subscription: async (filter: string) => acl.canSubscribe(principal, matchingFilter(filter)),
    message: async (o: OutboundMessage) => {
      if (o.state === "released") return true;
      let answer = topics.get(o.message.topic);
      if (answer === undefined) {
        answer = acl.canSubscribe(principal, o.message.topic);
        topics.set(o.message.topic, answer);
      }
      return answer;
    },
  };
}
