/**
 * PUBLISH from a client (3.1.1 section 3.3, 5.0 section 3.3), carried out: the
 * decision is broker/protocol/publish.ts's. The message goes to the shard of its
 * topic through the gateway's inbound path (inbound.ts), which shapes each
 * connection to its rate; the acknowledgement (PUBACK for QoS 1, PUBREC for QoS
 * 2) is sent once the shard has handed it to every destination that stores it
 * durably. The connection is not held up meanwhile: packets keep flowing.
 */
import type { AclSource, Principal } from "../../broker/acl.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import type { Counters } from "../../broker/counters.ts";
import { log } from "../../broker/log.ts";
import { type Message, newMessageId } from "../../broker/message.ts";
import type { CloseReason } from "../../broker/protocol/close.ts";
import { decidePublish, decideSettled, decideWindow, resolveAlias } from "../../broker/protocol/publish.ts";
import type { GatewayCounter } from "../../broker/stats.ts";
import { type PublishPacket, ReasonCode } from "../../mqtt/index.ts";
import type { Connected, Connection } from "./connection.ts";
import type { Inbound, Routed } from "./inbound.ts";
import type { GatewayStore } from "./store.ts";
import type { AliasBudget } from "./topic-aliases.ts";
import type { Wire } from "./wire.ts";

/** What handling a PUBLISH needs of the gateway. */
export interface PublishDeps {
  config: BrokerConfig;
  counters: Pick<Counters<GatewayCounter>, "add">;
  store: Pick<
    GatewayStore,
    "topicAliases" | "saveTopicAlias" | "hasInboundQos2" | "inboundQos2Count" | "addInboundQos2"
  >;
  acl: AclSource;
  principal(conn: Connection): Principal;
  inbound: Pick<Inbound, "admitQos0" | "route" | "enqueue">;
  /** The clients' topic aliases of all connections (topic-aliases.ts). */
  clientAliases: Pick<AliasBudget<Connection>, "largestPast">;
  wire: Pick<Wire, "send" | "ackProperties">;
  close(conn: Connection, reason: CloseReason): Promise<void>;
  name(): string;
}

const protocolError = (reasonCode: number, why: string): CloseReason => ({
  kind: "protocol-error",
  reasonCode,
  why,
});

export async function handlePublish(d: PublishDeps, conn: Connection, p: PublishPacket): Promise<void> {
  const att = conn.connected;
  if (att === undefined) return;
  d.counters.add("messages_in");
  d.counters.add("bytes_in", p.payload.length + p.topic.length);
  // Aliases are set in the order packets arrive, by a publish that is then dropped too.
  const stored = () => d.store.topicAliases(att.connId);
  const resolved = resolveAlias(
    p,
    conn.version,
    (a) => conn.inboundAliases.get(a, stored),
    d.config.topicAliasMaximum,
  );
  if (resolved.kind === "close") return d.close(conn, resolved.reason);
  const topic = resolved.topic;
  if (resolved.set !== undefined) {
    conn.inboundAliases.set(resolved.set.alias, resolved.set.topic, stored);
    if (endsPastAliasBound(d, conn)) return;
    conn.unsavedAliases ??= new Set();
    conn.unsavedAliases.add(resolved.set.alias);
  }
  // QoS 0 over the connection's rate, or while the way to the shards is full, is
  // dropped and counted here, before it costs more than its decoding (a row
  // written included: its alias waits in memory for an admitted one).
  if (p.qos === 0 && !d.inbound.admitQos0(conn)) return saveAliasesLater(d, conn, att.connId);
  saveAliases(d, conn, att.connId);
  if (p.qos !== 0) {
    const state = conn.inbound;
    const pending = p.qos === 2 && state.qos2.has(p.packetId);
    state.awaitingRelease ??= d.store.inboundQos2Count(att.clientId);
    const window = decideWindow(
      {
        qos: p.qos,
        pending,
        awaitingRelease: p.qos === 2 && !pending && d.store.hasInboundQos2(att.clientId, p.packetId),
        unacknowledged: state.unacknowledged + state.awaitingRelease,
      },
      d.config.receiveMaximum,
    );
    if (window.kind === "close") return d.close(conn, window.reason);
    if (window.kind === "ignore") return;
    if (window.kind === "pubrec-again") {
      d.wire.send(conn, { type: "pubrec", packetId: p.packetId });
      return;
    }
  }
  const allowed = await d.acl.canPublish(d.principal(conn), topic);
  const now = Date.now();
  const decision = decidePublish(
    {
      packet: p,
      topic,
      version: conn.version,
      allowed,
      clientId: att.clientId,
      id: newMessageId(d.name()),
      now,
    },
    d.config,
  );
  switch (decision.kind) {
    case "close":
      return d.close(conn, decision.reason);
    case "drop":
      logOnce(d, conn, "publish_denied", { topic });
      return;
    case "refuse":
      logOnce(d, conn, "publish_refused", { reason: decision.why });
      if (p.qos === 0) return;
      d.wire.send(conn, {
        type: decision.ack,
        packetId: p.packetId,
        reasonCode: decision.reasonCode,
        properties: d.wire.ackProperties(conn, decision.why),
      });
      return;
    case "acknowledge-dropped":
      logOnce(d, conn, "publish_denied", { topic });
      if (p.qos === 1) d.wire.send(conn, { type: "puback", packetId: p.packetId });
      if (p.qos === 2) {
        awaitRelease(d, conn, att.clientId, p.packetId);
        d.wire.send(conn, { type: "pubrec", packetId: p.packetId });
      }
      return;
    case "route":
      return route(d, conn, att, p, decision.message);
  }
}

/**
 * Past the gateway's bound on the clients' topic aliases, the connection holding
 * the most ends (0x97 Quota exceeded), down to within it; true when that was
 * `conn` itself. Its aliases leave the count at once, before its close has run.
 */
function endsPastAliasBound(d: PublishDeps, conn: Connection): boolean {
  for (let largest = d.clientAliases.largestPast(); largest !== undefined; ) {
    largest.inboundAliases.release();
    void d.close(largest, {
      kind: "protocol-error",
      reasonCode: ReasonCode.QuotaExceeded,
      why: "held the most topic aliases when the gateway's bound was reached",
    });
    if (largest === conn) return true;
    largest = d.clientAliases.largestPast();
  }
  return false;
}

/**
 * How long an alias set by a dropped publish may wait in memory for an admitted
 * one before it is written all the same (ms). The pending timer keeps the object
 * from hibernating meanwhile, and hibernation is all the map must survive.
 */
export const ALIAS_SAVE_MS = 1000;

/** Writes the aliases set in memory since the last write (once per admitted publish at most). */
function saveAliases(d: PublishDeps, conn: Connection, connId: string): void {
  clearTimeout(conn.aliasTimer);
  conn.aliasTimer = undefined;
  const unsaved = conn.unsavedAliases;
  if (unsaved === undefined || unsaved.size === 0 || conn.finished) return;
  for (const alias of unsaved) {
    const topic = conn.inboundAliases.peek(alias);
    if (topic !== undefined) d.store.saveTopicAlias(connId, alias, topic);
  }
  unsaved.clear();
}

/** Aliases a dropped publish set: written by a timer, unless an admitted publish writes them first. */
function saveAliasesLater(d: PublishDeps, conn: Connection, connId: string): void {
  if (conn.unsavedAliases === undefined || conn.unsavedAliases.size === 0 || conn.aliasTimer !== undefined)
    return;
  conn.aliasTimer = setTimeout(() => saveAliases(d, conn, connId), ALIAS_SAVE_MS);
}

/** Events a client can repeat with every message are logged once per connection (Connection.firstTime). */
function logOnce(d: PublishDeps, conn: Connection, event: string, fields: Record<string, unknown>): void {
  if (conn.firstTime(event))
    log("info", event, { gateway: d.name(), clientId: conn.connected?.clientId, ...fields });
}

/**
 * Hands an accepted PUBLISH to the inbound path: QoS 0 straight on (it was
 * admitted above), QoS 1/2 in the connection's turn, acknowledged once the shard
 * has it (4.3).
 */
function route(
  d: PublishDeps,
  conn: Connection,
  att: Connected,
  p: PublishPacket,
  message: Message,
): Promise<void> | undefined {
  if (p.qos === 0) {
    d.inbound.route(message).then(
      (code) => settle(d, conn, "puback", 0, code),
      (err) => log("warn", "publish_failed", { clientId: att.clientId, error: String(err) }),
    );
    return;
  }
  const state = conn.inbound;
  const packetId = p.packetId;
  let refusal: ReturnType<typeof d.inbound.enqueue>;
  if (p.qos === 1) {
    state.qos1++;
    refusal = d.inbound.enqueue(conn, message, (routed) => {
      state.qos1--;
      const code = settledCode(d, conn, routed);
      if (code !== null) settle(d, conn, "puback", packetId, code);
    });
  } else {
    state.qos2.add(packetId);
    refusal = d.inbound.enqueue(conn, message, (routed) => {
      state.qos2.delete(packetId);
      const code = settledCode(d, conn, routed);
      if (code !== null) settle(d, conn, "pubrec", packetId, code);
    });
  }
  if (refusal !== undefined) return d.close(conn, protocolError(refusal.reasonCode, refusal.why));
  return;
}

/** A QoS 2 packet id is stored until its PUBREL (4.3.3), and counted. */
function awaitRelease(d: PublishDeps, conn: Connection, clientId: string, packetId: number): void {
  if (d.store.addInboundQos2(clientId, packetId) && conn.inbound.awaitingRelease !== undefined)
    conn.inbound.awaitingRelease++;
}

/**
 * The shard's reason code for a routed QoS 1/2 message; null when there is no one
 * to answer (the connection ended meanwhile) or the call failed (it ends now).
 */
function settledCode(d: PublishDeps, conn: Connection, routed: Routed): number | undefined | null {
  if (conn.finished) return null;
  if (routed.ok) return routed.code;
  void d.close(conn, protocolError(ReasonCode.UnspecifiedError, `publish failed: ${String(routed.error)}`));
  return null;
}

/**
 * Carries out what answers a message its shard has (decideSettled): the
 * acknowledgement, a QoS 2 id stored until PUBREL first, or the 3.1.1 close.
 * QoS 0 (`packetId` 0) has no acknowledgement to send.
 */
function settle(
  d: PublishDeps,
  conn: Connection,
  ack: "puback" | "pubrec",
  packetId: number,
  code: number | undefined,
): void {
  const decision = decideSettled(ack, code, conn.version);
  if (decision.kind === "close") {
    void d.close(conn, decision.reason);
    return;
  }
  if (packetId === 0) return;
  const clientId = conn.connected?.clientId;
  const accepted = decision.reasonCode === undefined || decision.reasonCode < 0x80;
  if (ack === "pubrec" && accepted && clientId !== undefined) awaitRelease(d, conn, clientId, packetId);
  const { reasonCode, why } = decision;
  if (reasonCode === undefined) d.wire.send(conn, { type: ack, packetId });
  else if (why === undefined) d.wire.send(conn, { type: ack, packetId, reasonCode });
  else d.wire.send(conn, { type: ack, packetId, reasonCode, properties: d.wire.ackProperties(conn, why) });
}
