/**
 * Session: one per client id. The single place that decides who owns a session
 * (takeover of an older connection, MQTT-3.1.4-2), and the holder of a
 * persistent session while its client is offline: subscriptions, unacknowledged
 * and queued messages, inbound QoS 2 ids, and the expiry alarm.
 *
 * The class answers calls one at a time and wires its collaborators (in
 * `session/`): what it stores and what that costs (storage.ts), who owns the
 * session (ownership.ts), how it moves to and from gateways (handover.ts), the
 * stored state and queue (stored-state.ts, queue.ts), messages arriving for the
 * client (inbox.ts), and the will and expiry alarm (alarms.ts).
 */
import { DurableObject } from "cloudflare:workers";

import { type BrokerConfig, readConfig } from "../broker/config.ts";
import { log, setLogLevel } from "../broker/log.ts";
import { MESSAGE_COLUMN_DEFS, type Message } from "../broker/message.ts";
import type { Migration } from "../broker/migrations.ts";
import { Mutex } from "../broker/mutex.ts";
import { sessionDestination, shardOf } from "../broker/routing.ts";
import type { OutboundPage, QueuedMessage, SessionState } from "../broker/session-state.ts";
import type { Will } from "../mqtt/index.ts";
import type { Env } from "../worker/env.ts";
import type {
  ClaimRequest,
  ClaimResult,
  GatewayRpc,
  Reply,
  SessionInfo,
  SessionRpc,
  ShardRpc,
} from "./contracts.ts";
import { registerAtShards, unregisterAtShards } from "./registration.ts";
import { SessionAlarms } from "./session/alarms.ts";
import { SessionHandover } from "./session/handover.ts";
import { Inbox } from "./session/inbox.ts";
import type { SessionRecord } from "./session/ownership.ts";
import { SessionQueue } from "./session/queue.ts";
import { SessionStorage } from "./session/storage.ts";
import { StoredState } from "./session/stored-state.ts";
import { gatewayStub, registryStub, shardStub } from "./stubs.ts";

// The session's record lives in the object's key-value storage; these tables hold
// a persistent session's data and are created when first needed (storage.ts).
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

export class Session extends DurableObject<Env> implements SessionRpc {
  private readonly config: BrokerConfig;
  private readonly lock = new Mutex();
  private readonly storage: SessionStorage;
  private readonly queue: SessionQueue;
  private readonly state: StoredState;
  private readonly inbox: Inbox;
  private readonly alarms: SessionAlarms;
  private readonly handover: SessionHandover;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
    const storage = new SessionStorage(ctx.storage, SESSION_MIGRATIONS);
    this.storage = storage;
    const sql = () => storage.sql;
    this.queue = new SessionQueue({ sql, max: this.config.maxQueuedMessages });
    this.state = new StoredState({ sql, queue: this.queue });
    const readRecord = () => storage.readRecord();
    const writeRecord = (record: SessionRecord) => storage.writeRecord(record);
    this.inbox = new Inbox({
      readRecord,
      subscriptions: () => this.state.subscriptions(),
      keep: (entries) => this.queue.keep(entries),
      deliverTo: (record, entries) =>
        this.gateway(record.ownerGateway).deliverTo(record.clientId, record.ownerConn, entries),
      maxQueued: this.config.maxQueuedMessages,
    });
    this.alarms = new SessionAlarms({
      writeRecord,
      setAlarm: (at) => storage.setAlarm(at),
      publish: (message) => this.shard(shardOf(message.topic, this.config.layout)).publish([message]),
    });
    const shard = (index: number) => this.shard(index);
    this.handover = new SessionHandover({
      readRecord,
      writeRecord,
      deleteAlarm: () => storage.deleteAlarm(),
      deleteAll: (rows) => storage.deleteAll(rows),
      state: this.state,
      queue: this.queue,
      parked: (record, expiry, will, now) => this.alarms.parked(record, expiry, will, now),
      gateway: (name) => this.gateway(name),
      register: async (clientId, filters) => {
        await registerAtShards(shard, this.config, sessionDestination(clientId), clientId, filters);
      },
      unregister: (clientId, filters) =>
        unregisterAtShards(shard, this.config, sessionDestination(clientId), clientId, filters),
      forgotten: (clientId) => registryStub(env, clientId).forgotten(clientId),
    });
  }

  /** Runs one call under the lock; its answer carries what the object did meanwhile. */
  private serve<T>(work: () => T | Promise<T>): Promise<Reply<T>> {
    return this.lock.run(async () => {
      const result = await work();
      return { result, usage: this.storage.takeUsage() };
    });
  }

  // ---- RPC from Gateways (handover.ts, inbox.ts) ----------------------------

  /** A new connection for this client id: take over, keep or discard the session. */
  claim(req: ClaimRequest): Promise<Reply<ClaimResult>> {
    return this.serve(() => this.handover.claim(req));
  }

  /** The page of the queue after `after`, for the client's gateway, which has stored everything up to it. */
  queuedPage(connId: string, after: number): Promise<Reply<OutboundPage>> {
    return this.serve(() => this.handover.queuedPage(connId, after));
  }

  /** The new gateway has registered the client's filters: this Session stops being a destination. */
  switched(connId: string, after: number): Promise<Reply<OutboundPage>> {
    return this.serve(() => this.handover.switched(connId, after));
  }

  /** The client of a persistent session went offline: its state is kept here until the session expires. */
  park(
    gateway: string,
    connId: string,
    state: SessionState,
    expiry: number,
    will?: Will,
  ): Promise<Reply<void>> {
    return this.serve(() => this.handover.park(gateway, connId, state, expiry, will));
  }

  /** A clean session ended: nothing is kept. */
  close(connId: string): Promise<Reply<void>> {
    return this.serve(() => this.handover.close(connId));
  }

  /** Disconnects the client (0x98 Administrative action) and deletes its session. */
  drop(): Promise<Reply<boolean>> {
    return this.serve(() => this.handover.drop());
  }

  /** Messages for the client from a shard or from a gateway it just left. */
  enqueue(messages: Message[]): Promise<Reply<void>> {
    return this.serve(() => this.inbox.enqueue(messages));
  }

  /** Messages for the client that its gateway matched already. */
  append(entries: QueuedMessage[], heldBy?: string): Promise<Reply<void>> {
    return this.serve(() => this.inbox.append(entries, heldBy));
  }

  /** What the HTTP API shows of this client: online where, subscriptions, queued messages. */
  info(): Promise<Reply<SessionInfo | null>> {
    return this.serve(async () => {
      const record = this.storage.readRecord();
      if (record === undefined) return null;
      const info: SessionInfo = {
        clientId: record.clientId,
        owner: record.owner ?? null,
        online: record.online,
        gateway: record.online ? record.ownerGateway : null,
        persistent: record.persistent,
        subscriptions: this.state.filters(),
        queued: this.queue.length(),
        expiresAt: record.online ? null : record.expiresAt,
      };
      if (record.online) {
        const live = await this.gateway(record.ownerGateway).clientInfo(record.clientId);
        if (live !== null) {
          info.subscriptions = live.subscriptions;
          info.queued = live.inflight;
        }
      }
      return info;
    });
  }

  /** A delayed will falls due, or the session expires (alarms.ts). */
  override async alarm(): Promise<void> {
    await this.lock.run(async () => {
      this.storage.alarmRan();
      const record = this.storage.readRecord();
      if (record === undefined || record.online) return;
      if (!(await this.alarms.rang(record, Date.now()))) return;
      log("info", "session_expired", { clientId: record.clientId });
      await this.handover.end(record);
    });
  }

  private shard(index: number): ShardRpc {
    return shardStub(this.env, index);
  }

  private gateway(name: string): GatewayRpc {
    return gatewayStub(this.env, name);
  }
}
