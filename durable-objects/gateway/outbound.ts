/**
 * Outbound delivery: everything between a message arriving at the gateway and
 * its PUBLISH leaving on a client's socket. Which of this gateway's clients a
 * message goes to and with what grant (grant.ts), the in-flight window of each
 * connection (Receive Maximum, MQTT-3.3.4-7), the memory budget for clean
 * sessions' held messages and their spill to storage, topic aliases towards the
 * client, and the pump that refills a window from the stored queue.
 */
import type { BrokerConfig } from "../../broker/config.ts";
import type { Counters } from "../../broker/counters.ts";
import { addMatch, type Grant } from "../../broker/grant.ts";
import { log } from "../../broker/log.ts";
import { isExpired, type Message, packetProperties } from "../../broker/message.ts";
import { TokenBucket } from "../../broker/rate-limit.ts";
import type { OutboundMessage, QueuedMessage, SubscriptionOptions } from "../../broker/session-state.ts";
import type { GatewayCounter } from "../../broker/stats.ts";
import { encode, type PublishPacket, type SubscriptionIndex } from "../../mqtt/index.ts";
import type { Connected, Connection } from "./connection.ts";
import type { FrameGatherer } from "./frames.ts";
import { HeldBudget, type OutboundWindow } from "./outbound-window.ts";
import type { GatewayStore, OutboundEntry } from "./store.ts";

/**
 * How long a client with messages held in memory may acknowledge nothing before
 * they are written to storage (ms). Long enough that a healthy client's acks keep
 * coming, short enough that the timer holds the object awake only briefly.
 */
export const SPILL_AFTER_MS = 2_000;
/** Memory for clean sessions' held messages, per gateway (docs/limits.md). */
export const HELD_BUDGET_BYTES = 16 * 2 ** 20;
/** At most this many free places in the in-flight window before a backlog refills it. */
const REFILL_STEP = 16;
/** Stored queued messages read at once for a client with a backlog: this many, */
const READ_AHEAD = 64;
/** and no more bytes than this (at least one message). */
export const READ_AHEAD_BYTES = 2 ** 20;

/** What outbound delivery works with; owned by the Gateway, shared with its handlers. */
export interface OutboundDeps {
  store: GatewayStore;
  /** filter → clientId → options, for this gateway's clients. */
  index: SubscriptionIndex<SubscriptionOptions>;
  /** Live connections by client id. */
  clients: ReadonlyMap<string, Connection>;
  config: BrokerConfig;
  counters: Counters<GatewayCounter>;
  frames: FrameGatherer;
  /** The gateway's name, for logs. */
  name: () => string;
}

export class Outbound {
  /** Memory the held messages of all connections here may take together. */
  readonly heldBudget = new HeldBudget(HELD_BUDGET_BYTES);
  /** Set while clean sessions have messages held in memory only. */
  private spillTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly deps: OutboundDeps;

  constructor(deps: OutboundDeps) {
    this.deps = deps;
  }

  /**
   * Delivers a shard's messages to the clients of this gateway they match, each
   * once, in one frame per client. Returns, per client id, the QoS 1/2 messages
   * of persistent sessions whose client is not connected here any more, or whose
   * queue is still coming from the Session (Connection.backlog): their Session
   * keeps them.
   */
  fanOut(messages: Message[], now = Date.now()): Map<string, QueuedMessage[]> {
    const forward = new Map<string, QueuedMessage[]>();
    const { clients, store } = this.deps;
    this.gathered(() => {
      for (const message of messages) {
        if (isExpired(message, now)) continue;
        const matches = message.target === undefined ? this.matchClients(message) : this.matchTarget(message);
        for (const [clientId, grant] of matches) {
          const conn = clients.get(clientId);
          const live = conn !== undefined && !conn.finished;
          if (live && !(conn.backlog && grant.qos > 0)) {
            this.deliver(conn, message, grant.qos, grant.subscriptionIds, grant.retainAsPublished);
          } else if (grant.qos > 0 && (live || store.getClient(clientId)?.persistent)) {
            // Live here means its queue is still coming (only a persistent session's does):
            // no need to ask storage whether it is persistent, for every message.
            const list = forward.get(clientId) ?? [];
            list.push({
              message: { ...message, qos: grant.qos, retain: grant.retainAsPublished && message.retain },
              subscriptionIds: grant.subscriptionIds,
            });
            forward.set(clientId, list);
          }
        }
      }
    });
    return forward;
  }

  /** Messages a Session kept for the client, each with the grant it was queued under. */
  deliverQueued(conn: Connection, entries: QueuedMessage[]): void {
    this.gathered(() => {
      for (const { message, subscriptionIds } of entries)
        this.deliver(conn, message, message.qos, subscriptionIds, true);
    });
  }

  /**
   * Sends a message to a connected client: QoS 0 straight away, QoS 1/2 stored
   * first and sent within the in-flight window. `retain` is kept only when
   * `keepRetain` (a retained message for a new subscription, or 5.0 Retain As
   * Published); live forwarding clears it (MQTT-3.3.1-9).
   */
  deliver(
    conn: Connection,
    m: Message,
    qos: 0 | 1 | 2,
    subscriptionIds: number[],
    keepRetain: boolean,
  ): void {
    const att = conn.connected;
    if (att === undefined) return;
    const message: Message = { ...m, qos, retain: keepRetain && m.retain };
    const { store, config, counters } = this.deps;
    if (qos === 0) {
      if (!conn.ready) return;
      // workerd tells nothing of a socket's unsent bytes (no bufferedAmount), so a
      // client that stops reading cannot be seen: QoS 0 towards one client is
      // bounded in bytes a second instead, and dropped and counted past it, as
      // Mosquitto drops QoS 0 for a client whose queue is full.
      conn.qos0Budget ??= new TokenBucket(config.outboundQos0Rate, 4 * config.outboundQos0Rate);
      if (!conn.qos0Budget.spend(m.payload.byteLength + m.topic.length)) {
        counters.add("dropped_qos0");
        return;
      }
      this.sendPublish(conn, this.publishPacket(message, subscriptionIds, 0));
      return;
    }
    const window = this.windowOf(conn, att.clientId);
    const packetId = window.idle && this.roomIn(conn, att) > 0 ? window.freePacketId() : undefined;
    const entry: OutboundMessage = { message, subscriptionIds, state: "queued", packetId: null };
    if (packetId !== undefined) {
      this.sendNew(conn, att, window, entry, packetId);
      return;
    }
    // A client that acknowledges nothing must not grow the gateway's memory or
    // storage without end: past MAX_QUEUED_MESSAGES waiting for room in its
    // window, new ones are dropped and counted, as a Session does for an offline client.
    if (window.queued + window.waitingCount >= config.maxQueuedMessages) {
      counters.add("dropped_queue_full");
      if (conn.firstTime("queue_full"))
        log("warn", "queue_full", { gateway: this.deps.name(), clientId: att.clientId });
      return;
    }
    if (!att.persistent && window.wait(entry, Date.now())) {
      this.spillLater();
    } else {
      // Held ones go first, so that the stored queue keeps the order.
      window.spillWaiting((e) => store.addOutbound(att.clientId, e));
      // A copy that arrives twice during a handover is dropped (addOutbound).
      if (store.addOutbound(att.clientId, entry) === undefined) return;
      window.queued++;
    }
    this.pump(conn);
  }

  /**
   * Sends a message that was not in flight yet, with `packetId`: a clean
   * session's held in memory (see OutboundWindow), a persistent session's stored
   * as sent first (one row written, over an acknowledged one where there is one:
   * outbound-rows.ts; no queued row updated later).
   */
  private sendNew(
    conn: Connection,
    att: Connected,
    window: OutboundWindow,
    entry: OutboundMessage,
    packetId: number,
  ): void {
    const { message, subscriptionIds } = entry;
    const packet = this.publishPacket(message, subscriptionIds, packetId);
    if (!att.persistent && window.hold(packetId, entry, Date.now())) {
      this.spillLater();
      if (!this.sendPublish(conn, packet)) window.remove(packetId);
      return;
    }
    const { store } = this.deps;
    const seq = store.addOutbound(att.clientId, { ...entry, state: "sent", packetId });
    if (seq === undefined) return;
    window.add(packetId, { seq, qos: message.qos as 1 | 2, state: "sent" });
    if (!this.sendPublish(conn, packet)) {
      window.remove(packetId);
      store.deleteOutbound(seq);
    }
  }

  /**
   * MQTT-4.4.0-1: on a resumed session, unacknowledged PUBLISH packets are sent
   * again with their original packet ids and DUP set, and PUBREL packets again.
   * Read a row at a time: in flight may be Receive Maximum messages of the
   * largest size, more than the gateway may hold at once.
   */
  resend(conn: Connection, clientId: string): void {
    const { store } = this.deps;
    conn.window = store.windowOf(clientId, this.heldBudget);
    // The window read from the rows knows whether any are in flight: a session with
    // none (every clean one) reads its rows once, not twice.
    if (conn.window.inflight.size === 0) return;
    this.gathered(() => {
      for (const entry of store.inFlightOf(clientId)) {
        if (entry.packetId === null) continue;
        if (entry.state === "sent") {
          this.sendPublish(
            conn,
            this.publishPacket(entry.message, entry.subscriptionIds, entry.packetId, true),
          );
        } else if (entry.state === "released") {
          this.deps.frames.send(conn.ws, encode({ type: "pubrel", packetId: entry.packetId }, conn.version));
        }
      }
    });
  }

  /**
   * Writes the held messages of clean sessions whose client has acknowledged
   * nothing for SPILL_AFTER_MS, so that the object may hibernate without losing
   * them; the timer keeps it awake meanwhile (no hibernation with a timer set).
   */
  private spillLater(delay = SPILL_AFTER_MS): void {
    if (this.spillTimer !== undefined) return;
    this.spillTimer = setTimeout(() => {
      this.spillTimer = undefined;
      const now = Date.now();
      let next = Number.POSITIVE_INFINITY;
      for (const conn of this.deps.clients.values()) {
        const clientId = conn.connected?.clientId;
        const window = conn.window;
        if (window === null || window.held === 0 || clientId === undefined) continue;
        const due = window.activeAt + SPILL_AFTER_MS;
        if (due <= now) window.spill((entry) => this.deps.store.addOutbound(clientId, entry));
        else next = Math.min(next, due);
      }
      if (next !== Number.POSITIVE_INFINITY) this.spillLater(Math.max(1, next - now));
    }, delay);
  }

  /** A connection's in-flight window, loaded from storage the first time. */
  windowOf(conn: Connection, clientId: string): OutboundWindow {
    conn.window ??= this.deps.store.windowOf(clientId, this.heldBudget);
    return conn.window;
  }

  /** MQTT-3.3.4-7: never more unacknowledged QoS 1/2 than the client's Receive Maximum. */
  private roomIn(conn: Connection, att: Connected): number {
    if (!conn.ready) return 0;
    return this.windowSize(att) - (conn.window?.inflight.size ?? 0);
  }

  private windowSize(att: Connected): number {
    return Math.min(this.deps.config.maxInflight, att.receiveMaximum ?? 65535);
  }

  /** Sends queued QoS 1/2 messages while the in-flight window has room. */
  pump(conn: Connection): void {
    const att = conn.connected;
    if (att === undefined) return;
    const window = this.windowOf(conn, att.clientId);
    let room = this.roomIn(conn, att);
    if (room <= 0 || window.idle) return;
    // A backlog refills the window a step at a time rather than one message per
    // acknowledgement: the messages of a step share one frame, one send.
    const step = Math.min(REFILL_STEP, Math.ceil(this.windowSize(att) / 4));
    if (window.inflight.size > 0 && room < step) return;
    const { store, counters } = this.deps;
    const now = Date.now();
    this.gathered(() => {
      while (room > 0 && window.queued > 0) {
        if (window.readAhead.length === 0) {
          window.readAhead = store.queuedOf(
            att.clientId,
            window.queuedFrom,
            Math.max(room, READ_AHEAD),
            READ_AHEAD_BYTES,
          );
          const last = window.readAhead.at(-1);
          if (last === undefined) {
            log("warn", "queue_miscounted", {
              gateway: this.deps.name(),
              clientId: att.clientId,
              queued: window.queued,
            });
            window.queued = 0;
            break;
          }
          window.queuedFrom = last.seq + 1;
        }
        const entry = window.readAhead.shift() as OutboundEntry;
        window.queued--;
        if (isExpired(entry.message, now)) {
          store.deleteQueued(att.clientId, entry);
          counters.add("expired");
          continue;
        }
        // Room in the window means fewer than 65,535 in flight: an id is free.
        const packetId = window.freePacketId() as number;
        room--;
        if (this.sendPublish(conn, this.publishPacket(entry.message, entry.subscriptionIds, packetId))) {
          store.markSent(att.clientId, entry, packetId);
          window.add(packetId, { seq: entry.seq, qos: entry.message.qos as 1 | 2, state: "sent" });
        } else {
          store.deleteQueued(att.clientId, entry);
        }
      }
      // A clean session's held messages come after every stored one.
      while (room > 0 && window.queued === 0) {
        const entry = window.nextWaiting();
        if (entry === undefined) break;
        if (isExpired(entry.message, now)) {
          counters.add("expired");
          continue;
        }
        // Room in the window means fewer than 65,535 in flight: an id is free.
        const packetId = window.freePacketId() as number;
        room--;
        this.sendNew(conn, att, window, entry, packetId);
      }
    });
  }

  /**
   * Sends a PUBLISH, with a topic alias where the client allows them. Returns false
   * if it exceeds the client's Maximum Packet Size: such a packet is discarded
   * as if it had been delivered (MQTT-3.1.2-25).
   */
  sendPublish(conn: Connection, packet: PublishPacket): boolean {
    const att = conn.connected;
    const { counters, frames } = this.deps;
    const max = att?.topicAliasMaximum ?? 0;
    const aliased =
      max > 0 && !packet.dup ? withOutboundAlias(conn, max, packet) : { packet, assigned: false };
    const bytes = encode(aliased.packet, conn.version);
    if (att?.maximumPacketSize !== undefined && bytes.length > att.maximumPacketSize) {
      if (aliased.assigned) conn.outboundAliases.forget(packet.topic);
      counters.add("dropped");
      if (conn.firstTime("discarded_too_large"))
        log("info", "discarded_too_large", {
          gateway: this.deps.name(),
          clientId: att.clientId,
          bytes: bytes.length,
        });
      return false;
    }
    frames.send(conn.ws, bytes);
    counters.add("messages_out");
    counters.add("bytes_out", bytes.length);
    return true;
  }

  /** The PUBLISH for a message, with the remaining expiry interval (5.0 3.3.2.3.3). */
  publishPacket(m: Message, subscriptionIds: number[], packetId: number, dup = false): PublishPacket {
    const props: NonNullable<PublishPacket["properties"]> = packetProperties(m.properties);
    if (m.expiresAt !== undefined)
      props.messageExpiryInterval = Math.max(0, Math.ceil((m.expiresAt - Date.now()) / 1000));
    if (subscriptionIds.length > 0) props.subscriptionIdentifiers = subscriptionIds;
    const properties = Object.keys(props).length > 0 ? props : undefined;
    const base = { type: "publish" as const, topic: m.topic, payload: m.payload, retain: m.retain };
    const packet: PublishPacket =
      m.qos === 0 ? { ...base, qos: 0, dup: false } : { ...base, qos: m.qos, dup, packetId };
    if (properties !== undefined) packet.properties = properties;
    return packet;
  }

  /** Runs `fn`, sending what it sends to each client as one WebSocket frame (frames.ts). */
  gathered<T>(fn: () => T): T {
    return this.deps.frames.gather(fn);
  }

  /** The clients of this gateway a message goes to, each once, with what each gets (grant.ts). */
  private matchClients(message: Message): Map<string, Grant> {
    const out = new Map<string, Grant>();
    this.deps.index.forEachMatch(message.topic, (opts, clientId) => {
      const grant = addMatch(out.get(clientId), opts, message, clientId);
      if (grant !== undefined) out.set(clientId, grant);
    });
    return out;
  }

  /** The one member a shard chose for a message of a shared subscription. */
  private matchTarget(message: Message): Map<string, Grant> {
    const out = new Map<string, Grant>();
    const target = message.target as NonNullable<Message["target"]>;
    const opts = this.deps.store.getSub(target.clientId, target.filter);
    const grant = opts === undefined ? undefined : addMatch(undefined, opts, message, target.clientId);
    if (grant !== undefined) out.set(target.clientId, grant);
    return out;
  }
}

/** A PUBLISH with our topic alias for its topic where one can be had (topic-aliases.ts). */
function withOutboundAlias(
  conn: Connection,
  max: number,
  p: PublishPacket,
): { packet: PublishPacket; assigned: boolean } {
  // A topic of two bytes or fewer is no longer than the alias that would replace it.
  if (p.topic.length <= 2) return { packet: p, assigned: false };
  const alias = conn.outboundAliases.assign(p.topic, max);
  if (alias === undefined) return { packet: p, assigned: false };
  const properties = { ...p.properties, topicAlias: alias.alias };
  // 3.3.2.3.4: a known alias goes with an empty topic; a new one with the topic it maps.
  const topic = alias.assigned ? p.topic : "";
  return { packet: { ...p, topic, properties }, assigned: alias.assigned };
}
