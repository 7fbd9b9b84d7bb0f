/**
 * Session: one per client id. The single place that decides who owns a session
 * (takeover of an older connection, MQTT-3.1.4-2), and the holder of a
 * persistent session while its client is offline: subscriptions, unacknowledged
 * and queued messages, inbound QoS 2 ids, and the expiry alarm.
 */
import { DurableObject } from "cloudflare:workers";

import { legacyOwnerOf } from "../broker/auth/authenticator.ts";

import { type BrokerConfig, readConfig } from "../broker/config.ts";

import { grantOf } from "../broker/grant.ts";

import { parse, stringify } from "../broker/json.ts";

import { log, setLogLevel } from "../broker/log.ts";

import {
  assertWithinCall,
  isExpired,
  MESSAGE_BATCH,
  MESSAGE_COLUMN_DEFS,
  MESSAGE_COLUMNS,
  MESSAGE_PLACEHOLDERS,
  type Message,
  type MessageRow,
  messageToRow,
  messageValues,
  rowToMessage,
  willMessage,
} from "../broker/message.ts";

import { meteredSql } from "../broker/metered-sql.ts";

import { type Migration, migrate } from "../broker/migrations.ts";

import { Mutex } from "../broker/mutex.ts";

import { sessionDestination, shardOf } from "../broker/routing.ts";

import {
  assertPageWithinCall,
  emptyPage,
  emptySessionState,
  type OutboundMessage,
  type OutboundPage,
  type OutboundState,
  pageOf,
  QUEUE_START,
  type QueuedMessage,
  type SessionState,
  type SubscriptionOptions,
} from "../broker/session-state.ts";

import { ReasonCode, topicMatches, type Will } from "../mqtt/index.ts";

import type { Env } from "../worker/env.ts";
import type {
  ClaimRequest,
  ClaimResult,
  GatewayRpc,
  Reply,
  SessionInfo,
  SessionRpc,
  SessionUsage,
  ShardRpc,
} from "./contracts.ts";
import { isShared, matchingFilter, registerAtShards, unregisterAtShards } from "./registration.ts";
import { gatewayStub, registryStub, shardStub } from "./stubs.ts";

// The session's record lives in the object's key-value storage; these tables hold
// a persistent session's data and are created when first needed, so that a clean
// session (most connections) costs no schema statements at all.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS subs (filter TEXT PRIMARY KEY, options TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  packet_id INTEGER,
  state TEXT NOT NULL,
  sub_ids TEXT NOT NULL,
  ${MESSAGE_COLUMN_DEFS},
  UNIQUE (msg_id)
);
CREATE TABLE IF NOT EXISTS inbound_qos2 (packet_id INTEGER PRIMARY KEY);
`;
/** The session's schema, oldest first (migrations.ts); a released entry never changes. */
export const SESSION_MIGRATIONS: readonly Migration[] = [
  { to: 3, about: "baseline: the schema of the first release with migrations", sql: SCHEMA },
];
/** Rows between a gateway's messages put back before a queue and the queue's oldest: more than any queue holds. */
const QUEUE_GAP = 2 ** 32;
/** The key of the session's record (Meta) in key-value storage. */
const META_KEY = "session";

/** The session's record, kept in the meta table. */
interface Meta {
  clientId: string;
  /**
   * The principal that created the session (ownerOf). Absent only in records
   * written before sessions had owners: the next claim records its principal.
   */
  owner?: string;
  /**
   * Set on records written since owners are namespaced per way in (ownerOf).
   * Absent: `owner` is an earlier release's `user:<name>`, which the same login
   * may still claim (legacyOwnerOf); the claim records the namespaced owner.
   */
  namespaced?: true;
  ownerGateway: string;
  ownerConn: string;
  online: boolean;
  persistent: boolean;
  expiry: number;
  /** Epoch ms the offline session expires; 0 while online. */
  expiresAt: number;
  /** Whether this Session is registered at the shards as the destination. */
  registered: boolean;
  /** A gateway that still has the client's filters registered, to release on switch. */
  releaseGateway?: string;
  releaseConn?: string;

  /** A will waiting for its Will Delay Interval (5.0 3.1.3.2.2), and when it is due. */
  will?: Will;
  willAt?: number;
}

export class Session extends DurableObject<Env> implements SessionRpc {
  private readonly config: BrokerConfig;
  private readonly lock = new Mutex();
  private schemaReady = false;
  /** What this object did that is billed, since its last answer (see SessionUsage). */
  private usage: SessionUsage = { rowsWritten: 0, alarms: 0 };
  private readonly metered: SqlStorage;
  /**
   * The last row of the queue handed to the client's gateway (queuePage). Those
   * rows stay here until it asks for the next page, in case the answer is lost,
   * but they wait here no more: MAX_QUEUED_MESSAGES counts only the rows after
   * this. In memory: an object that starts again counts every row, as before.
   */
  private handedThrough = QUEUE_START;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
    this.metered = meteredSql(ctx.storage.sql, (n) => {
      this.usage.rowsWritten += n;
    });
  }

  /** Runs one call under the lock; its answer carries what the object did meanwhile. */
  private serve<T>(work: () => Promise<T>): Promise<Reply<T>> {
    return this.lock.run(async () => {
      const result = await work();
      const usage = this.usage;
      this.usage = { rowsWritten: 0, alarms: 0 };
      return { result, usage };
    });
  }

  /** The session's tables, created the first time they are needed. */
  private get sql(): SqlStorage {
    if (!this.schemaReady) {
      migrate(this.metered, "Session", SESSION_MIGRATIONS);
      this.schemaReady = true;
    }
    return this.metered;
  }

  // ---- RPC from Gateways ---------------------------------------------------

  /** A new connection for this client id: take over, keep or discard the session. */
  claim(req: ClaimRequest): Promise<Reply<ClaimResult>> {
    return this.serve(async () => {
      let meta = this.readMeta();
      const fresh = meta === undefined;
      const ended = meta !== undefined && !meta.online && meta.expiresAt > 0 && meta.expiresAt <= Date.now();
      // Invariant 7: a client id's session, online or offline, is its owner's alone.
      // Another principal is refused before anything is touched: the session, its
      // queue, its will and the connection that has it now stay as they are.
      const owned =
        meta?.owner === undefined ||
        meta.owner === req.owner ||
        (meta.namespaced !== true && meta.owner === legacyOwnerOf(req.owner));
      if (!owned && !ended) {
        log("warn", "claim_refused", {
          clientId: req.clientId,
          reason: "client id owned by another principal",
        });
        return { granted: false };
      }
      // MQTT-3.1.2-4 (3.1.1) / MQTT-3.1.2-4 (5.0 Clean Start): discard any old session.
      const keep = meta?.persistent === true && !req.cleanStart && !ended;
      if (meta?.online && meta.ownerConn !== req.connId) {
        // MQTT-3.1.4-2: the existing connection is closed; its state comes here
        // when it is kept, a page at a time.
        const old = meta.ownerGateway;
        const conn = meta.ownerConn;
        const state = await this.gateway(old).takeover(meta.clientId, conn);
        if (state !== null && keep) {
          await this.absorb(state, (after) => this.gateway(old).outboundPage(req.clientId, conn, after));
        }
        meta.releaseGateway = meta.ownerGateway;
        meta.releaseConn = meta.ownerConn;
        meta.online = false;
      }
      if (meta !== undefined && !keep) {
        if (meta.registered) await this.unregister(meta);
        meta.registered = false;
        this.clearSessionData();
      }
      const state = keep ? this.takeState() : emptySessionState();
      if (meta?.will !== undefined) {
        // MQTT-3.1.3-9 (5.0): a new connection before the Will Delay has passed cancels the will.
        log("info", "will_cancelled", { clientId: req.clientId });
      }
      const switchNeeded = (meta?.registered ?? false) || meta?.releaseGateway !== undefined;
      meta = {
        clientId: req.clientId,
        owner: req.owner,
        namespaced: true,
        will: undefined,
        willAt: undefined,
        ownerGateway: req.gateway,
        ownerConn: req.connId,
        online: true,
        persistent: req.persistent,
        expiry: req.expiry,
        expiresAt: 0,
        registered: meta?.registered ?? false,
        releaseGateway: meta?.releaseGateway,
        releaseConn: meta?.releaseConn,
      };
      this.writeMeta(meta);
      // Only a stored session can have an alarm (parked, or a will waiting).
      if (!fresh) await this.ctx.storage.deleteAlarm();
      // MQTT-3.2.2-2/-3: session present only when a stored session was resumed.
      return { granted: true, sessionPresent: keep, state, switchNeeded };
    });
  }

  /**
   * The page of the queue after `after`, for the client's gateway, which has
   * stored everything up to `after`: that part is deleted here now. A queue of any
   * length thus moves a call's worth at a time, and nothing is deleted before
   * the gateway has it.
   */
  queuedPage(connId: string, after: number): Promise<Reply<OutboundPage>> {
    return this.serve(async () => {
      const meta = this.readMeta();
      if (meta === undefined || meta.ownerConn !== connId || !meta.online) return emptyPage(after);
      return this.handOut(after);
    });
  }

  /**
   * Deletes the queue up to `after` (the gateway has stored it) and returns the
   * page that follows. A page handed out stays here until the gateway asks for
   * the next one: if the client leaves first, its rows are still here.
   */
  private handOut(after: number): OutboundPage {
    this.sql.exec("DELETE FROM queue WHERE seq <= ?", after);
    return this.queuePage(after);
  }

  /**
   * The new gateway has registered the client's filters at the shards: this
   * Session, and the gateway the client came from, stop being destinations.
   * Returns the first page of what was queued here in between (queuedPage for
   * the rest).
   */
  switched(connId: string, after: number): Promise<Reply<OutboundPage>> {
    return this.serve(async () => {
      const meta = this.readMeta();
      if (meta === undefined || meta.ownerConn !== connId) return emptyPage(after);
      if (meta.registered) {
        await this.unregister(meta);
        meta.registered = false;
      }
      if (meta.releaseGateway !== undefined && meta.releaseConn !== undefined) {
        await this.gateway(meta.releaseGateway).forget(meta.clientId, meta.releaseConn);
      }
      meta.releaseGateway = undefined;
      meta.releaseConn = undefined;
      this.writeMeta(meta);
      return this.handOut(after);
    });
  }

  /**
   * The client of a persistent session went offline: keep its state and queue for
   * it until the session expires; publish a delayed will when it is due. `state`
   * has the first page of the client's messages; the rest is asked of the
   * gateway a page at a time.
   */
  park(
    gateway: string,
    connId: string,
    state: SessionState,
    expiry: number,
    will?: Will,
  ): Promise<Reply<void>> {
    return this.serve(async () => {
      const meta = this.readMeta();
      if (meta === undefined || meta.ownerConn !== connId || meta.ownerGateway !== gateway) return;
      await this.absorb(state, (after) => this.gateway(gateway).outboundPage(meta.clientId, connId, after));
      meta.online = false;
      // Registered before the gateway unregisters: no message falls between.
      if (!meta.registered) await this.register(meta);
      meta.registered = true;
      const now = Date.now();
      meta.expiry = expiry;
      meta.expiresAt = now + expiry * 1000;
      if (will !== undefined) {
        // Published after the delay, or when the session ends, whichever is first.
        meta.will = will;
        meta.willAt = now + Math.min(will.properties?.willDelayInterval ?? 0, expiry) * 1000;
      }
      this.writeMeta(meta);
      await this.setAlarm(Math.min(meta.expiresAt, meta.willAt ?? meta.expiresAt));
      log("info", "session_parked", { clientId: meta.clientId, queued: this.queueLength() });
    });
  }

  /** A clean session ended: nothing is kept. */
  close(connId: string): Promise<Reply<void>> {
    return this.serve(async () => {
      const meta = this.readMeta();
      if (meta === undefined || meta.ownerConn !== connId) return;
      if (meta.registered) await this.unregister(meta);
      await this.forget(meta);
    });
  }

  /** What the HTTP API shows of this client: online where, subscriptions, queued messages. */
  info(): Promise<Reply<SessionInfo | null>> {
    return this.serve(async () => {
      const meta = this.readMeta();
      if (meta === undefined) return null;
      const info: SessionInfo = {
        clientId: meta.clientId,
        owner: meta.owner ?? null,
        online: meta.online,
        gateway: meta.online ? meta.ownerGateway : null,
        persistent: meta.persistent,
        subscriptions: this.subscriptions().map(([f]) => f),
        queued: this.queueLength(),
        expiresAt: meta.online ? null : meta.expiresAt,
      };
      if (meta.online) {
        const live = await this.gateway(meta.ownerGateway).clientInfo(meta.clientId);
        if (live !== null) {
          info.subscriptions = live.subscriptions;
          info.queued = live.inflight;
        }
      }
      return info;
    });
  }

  /** Disconnects the client (0x98 Administrative action) and deletes its session. */
  drop(): Promise<Reply<boolean>> {
    return this.serve(async () => {
      const meta = this.readMeta();
      if (meta === undefined) return false;
      if (meta.online)
        await this.gateway(meta.ownerGateway).disconnect(meta.clientId, ReasonCode.AdministrativeAction);
      if (meta.registered) await this.unregister(meta);
      await this.forget(meta);
      log("info", "session_dropped", { clientId: meta.clientId });
      return true;
    });
  }

  /** Messages for the client from a shard or from a gateway it just left. */
  enqueue(messages: Message[]): Promise<Reply<void>> {
    return this.serve(async () => {
      assertWithinCall(messages);
      const meta = this.readMeta();
      if (meta === undefined) return;
      const subs = this.subscriptions();
      const now = Date.now();
      const accepted: QueuedMessage[] = [];
      for (const m of messages) {
        if (isExpired(m, now)) continue;
        const grant = grantOf(m, matching(m, subs), meta.clientId);
        // Only QoS 1/2 messages are kept for an offline session (as Mosquitto does).
        if (grant === undefined || grant.qos === 0) continue;
        const message = { ...m, qos: grant.qos, retain: grant.retainAsPublished && m.retain };
        accepted.push({ message, subscriptionIds: grant.subscriptionIds });
      }
      await this.keep(meta, accepted);
    });
  }

  /**
   * Messages for the client that its gateway matched already (the client has
   * just moved, or its queue is still on its way to the gateway): queued as
   * granted there, since subscriptions made meanwhile are known only there.
   */
  append(entries: QueuedMessage[]): Promise<Reply<void>> {
    return this.serve(async () => {
      assertWithinCall(entries.map((e) => e.message));
      const meta = this.readMeta();
      if (meta === undefined) return;
      const now = Date.now();
      await this.keep(
        meta,
        entries.filter((e) => e.message.qos > 0 && !isExpired(e.message, now)),
      );
    });
  }

  /** Passes accepted messages to the client's gateway while it is online, else queues them. */
  private async keep(meta: Meta, accepted: QueuedMessage[]): Promise<void> {
    if (accepted.length === 0) return;
    if (meta.online) {
      const taken = await this.gateway(meta.ownerGateway).deliverTo(meta.clientId, meta.ownerConn, accepted);
      if (taken) return;
    }
    let dropped = 0;
    // Counted once per batch, not per message: a long queue must not make each
    // arrival scan it.
    let length = this.waitingLength();
    for (const entry of accepted) {
      if (length >= this.config.maxQueuedMessages) {
        dropped++;
        continue;
      }
      this.insertQueued({ packetId: null, state: "queued", ...entry });
      length++;
    }
    if (dropped > 0)
      log("warn", "queue_full", { clientId: meta.clientId, dropped, max: this.config.maxQueuedMessages });
  }

  /** A delayed will falls due, or the session expires (3.1.1: configured; 5.0: Session Expiry Interval). */
  override async alarm(): Promise<void> {
    await this.lock.run(async () => {
      this.usage.alarms++;
      const meta = this.readMeta();
      if (meta === undefined || meta.online) return;
      const now = Date.now();
      if (meta.will !== undefined && (meta.willAt ?? 0) <= now) {
        const message = willMessage(meta.clientId, meta.will, now);
        await this.shard(shardOf(message.topic, this.config.layout)).publish([message]);
        log("info", "will_published", { clientId: meta.clientId, topic: message.topic, delayed: true });
        meta.will = undefined;
        meta.willAt = undefined;
        this.writeMeta(meta);
      }
      if (meta.expiresAt > now) {
        await this.setAlarm(meta.expiresAt);
        return;
      }
      if (meta.registered) await this.unregister(meta);
      log("info", "session_expired", { clientId: meta.clientId });
      await this.forget(meta);
    });
  }

  // ---- storage -------------------------------------------------------------

  /** Sets the storage alarm: billed as a row written, so reported as one. */
  private async setAlarm(at: number): Promise<void> {
    this.usage.rowsWritten++;
    await this.ctx.storage.setAlarm(at);
  }

  private readMeta(): Meta | undefined {
    const value = this.ctx.storage.kv.get<string>(META_KEY);
    return value === undefined ? undefined : parse<Meta>(value);
  }

  private writeMeta(meta: Meta): void {
    this.ctx.storage.kv.put(META_KEY, stringify(meta));
    this.usage.rowsWritten++;
  }

  /** Deletes everything this object stores (the session ended or expired). */
  private async forget(meta: Meta): Promise<void> {
    // deleteAll reports no rows: a stored session's are counted here, and the
    // record is one more.
    if (meta.persistent) this.usage.rowsWritten += this.storedRows();
    this.usage.rowsWritten++;
    await this.ctx.storage.deleteAll();
    this.schemaReady = false;
    this.handedThrough = QUEUE_START;
    // Its registry sends the client id's clean connects past this object again.
    try {
      await registryStub(this.env, meta.clientId).forgotten(meta.clientId);
    } catch (err) {
      // Only slower: a registry that still thinks so asks this (empty) Session first.
      log("warn", "registry_not_told", { clientId: meta.clientId, error: String(err) });
    }
  }

  private storedRows(): number {
    return this.sql
      .exec<{ n: number }>(
        "SELECT (SELECT COUNT(*) FROM subs) + (SELECT COUNT(*) FROM queue) + (SELECT COUNT(*) FROM inbound_qos2) AS n",
      )
      .one().n;
  }

  private clearSessionData(): void {
    this.sql.exec("DELETE FROM subs");
    this.sql.exec("DELETE FROM queue");
    this.sql.exec("DELETE FROM inbound_qos2");
    this.handedThrough = QUEUE_START;
  }

  private subscriptions(): Array<[string, SubscriptionOptions]> {
    return this.sql
      .exec<{ filter: string; options: string }>("SELECT filter, options FROM subs")
      .toArray()
      .map((r) => [r.filter, JSON.parse(r.options) as SubscriptionOptions]);
  }

  private queueLength(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM queue").one().n;
  }

  /** The rows of the queue not handed to the client's gateway yet. */
  private waitingLength(): number {
    return this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM queue WHERE seq > ?", this.handedThrough)
      .one().n;
  }

  /**
   * Queues a message, at row `seq` if given (else after every other); one the
   * queue has already (by message id) is kept (IGNORE) or replaced (REPLACE).
   */
  private insertQueued(
    entry: OutboundMessage,
    seq: number | null = null,
    conflict: "IGNORE" | "REPLACE" = "IGNORE",
  ): void {
    const row = messageToRow(entry.message);
    this.sql.exec(
      `INSERT OR ${conflict} INTO queue (seq, packet_id, state, sub_ids, ${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ${MESSAGE_PLACEHOLDERS})`,
      seq,
      entry.packetId,
      entry.state,
      entry.subscriptionIds.join(","),
      ...messageValues(row),
    );
  }

  /**
   * Stores state handed over by a gateway: subscriptions, inbound QoS 2 ids and
   * the first page of messages, then each further page as `next` gives it. The
   * gateway's subscriptions and QoS 2 ids replace those stored here: the client
   * may have unsubscribed while it was there.
   *
   * The queue may still hold rows the gateway had not taken when the client left
   * (it takes a long queue a page at a time while the client is connected). The
   * gateway's messages are older than those: they go in before them, numbered
   * from QUEUE_GAP below the oldest; and where the gateway has a message this
   * queue has too (a page it was handed last), the gateway's row, which knows
   * whether it was sent and with which packet id, replaces this one.
   */
  private async absorb(
    state: SessionState,
    next: (after: number) => Promise<OutboundPage | null>,
  ): Promise<void> {
    const oldest = this.sql.exec<{ seq: number | null }>("SELECT MIN(seq) AS seq FROM queue").one().seq;
    let slot = oldest === null ? null : oldest - QUEUE_GAP;
    // What the gateway had, and what was handed to it, waits here again.
    this.handedThrough = QUEUE_START;
    this.sql.exec("DELETE FROM subs");
    this.sql.exec("DELETE FROM inbound_qos2");
    for (const { filter, options } of state.subscriptions) {
      this.sql.exec(
        "INSERT OR REPLACE INTO subs (filter, options) VALUES (?, ?)",
        filter,
        JSON.stringify(options),
      );
    }
    for (const id of state.inboundQos2)
      this.sql.exec("INSERT OR IGNORE INTO inbound_qos2 (packet_id) VALUES (?)", id);
    let page: OutboundPage | null = state.outbound;
    while (page !== null) {
      assertPageWithinCall(page);
      for (const entry of page.entries) {
        this.insertQueued(entry, slot, "REPLACE");
        if (slot !== null) slot++;
      }
      if (!page.more) break;
      page = await next(page.through);
    }
  }

  /**
   * The stored state for a resuming client: everything but its messages' later
   * pages. Messages that expired while it was away are dropped first, once: a
   * scan of the queue reads past every payload, too dear for every page.
   */
  private takeState(): SessionState {
    this.sql.exec(
      "DELETE FROM queue WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= ?",
      Date.now(),
    );
    const inboundQos2 = this.sql
      .exec<{ packet_id: number }>("SELECT packet_id FROM inbound_qos2")
      .toArray()
      .map((r) => r.packet_id);
    const subscriptions = this.subscriptions().map(([filter, options]) => ({ filter, options }));
    return { subscriptions, outbound: this.queuePage(QUEUE_START), inboundQos2 };
  }

  /**
   * The queue after row `after`, a call's worth, handed to the client's gateway
   * (the gateway drops what expires meanwhile).
   */
  private queuePage(after: number): OutboundPage {
    const rows = this.sql.exec<
      MessageRow & { seq: number; packet_id: number | null; state: string; sub_ids: string }
    >("SELECT * FROM queue WHERE seq > ? ORDER BY seq LIMIT ?", after, MESSAGE_BATCH.maxItems + 1);
    const page = pageOf(rows, after, (r) => ({
      seq: r.seq,
      entry: {
        packetId: r.packet_id,
        state: r.state as OutboundState,
        subscriptionIds: r.sub_ids === "" ? [] : r.sub_ids.split(",").map(Number),
        message: rowToMessage(r),
      },
    }));
    this.handedThrough = page.through;
    return page;
  }

  // ---- shards --------------------------------------------------------------

  private async register(meta: Meta): Promise<void> {
    const filters = this.subscriptions().map(([f]) => f);
    await registerAtShards(
      (i) => this.shard(i),
      this.config,
      sessionDestination(meta.clientId),
      meta.clientId,
      filters,
    );
  }

  private async unregister(meta: Meta): Promise<void> {
    const filters = this.subscriptions().map(([f]) => f);
    await unregisterAtShards(
      (i) => this.shard(i),
      this.config,
      sessionDestination(meta.clientId),
      meta.clientId,
      filters,
    );
  }

  private shard(index: number): ShardRpc {
    return shardStub(this.env, index);
  }

  private gateway(name: string): GatewayRpc {
    return gatewayStub(this.env, name);
  }
}

/** The options of this session's subscriptions that match a message. */
function* matching(m: Message, subs: Array<[string, SubscriptionOptions]>): Iterable<SubscriptionOptions> {
  for (const [filter, options] of subs) {
    // A shared subscription counts only for the message its group chose this client for.
    if (isShared(filter) ? m.target?.filter !== filter : m.target !== undefined) continue;
    if (topicMatches(matchingFilter(filter), m.topic)) yield options;
  }
}
