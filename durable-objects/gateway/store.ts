/**
 * The Gateway's SQLite storage: what must survive hibernation, eviction and a
 * restart of the object (DESIGN.md invariant 4). The sockets themselves and the
 * compact per-connection state live in the WebSocket attachments.
 */

import type { Identity } from "../../broker/auth/authenticator.ts";

import { parse, stringify } from "../../broker/json.ts";

import { MESSAGE_COLUMN_DEFS, MESSAGE_COLUMNS, type Message } from "../../broker/message.ts";

import { type Migration, migrate } from "../../broker/migrations.ts";

import type {
  OutboundMessage,
  OutboundPage,
  OutboundState,
  SubscriptionOptions,
} from "../../broker/session-state.ts";

import type { Will } from "../../mqtt/index.ts";
import type { Registrar } from "../contracts.ts";
import { OUTBOUND_TABLE, type OutboundEntry, OutboundRows } from "./outbound-rows.ts";
import { type HeldBudget, OutboundWindow } from "./outbound-window.ts";

export type { OutboundEntry } from "./outbound-rows.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
  client_id TEXT PRIMARY KEY,
  conn_id TEXT NOT NULL,
  persistent INTEGER NOT NULL,
  expiry INTEGER NOT NULL,
  will TEXT,
  identity TEXT
);
CREATE TABLE IF NOT EXISTS subs (
  client_id TEXT NOT NULL,
  filter TEXT NOT NULL,
  options TEXT NOT NULL,
  PRIMARY KEY (client_id, filter)
);
CREATE TABLE IF NOT EXISTS outbound (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  client_id TEXT NOT NULL,
  packet_id INTEGER,
  state TEXT NOT NULL,
  sub_ids TEXT NOT NULL,
  ${MESSAGE_COLUMN_DEFS},
  UNIQUE (client_id, msg_id)
);
-- A client's messages in order. State and packet id are not indexed: every row
-- written to an index is a row billed, and the in-flight window keeps them in
-- memory (OutboundWindow).
CREATE INDEX IF NOT EXISTS outbound_by_client ON outbound (client_id, seq);
CREATE TABLE IF NOT EXISTS inbound_qos2 (
  client_id TEXT NOT NULL,
  packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)
);
CREATE TABLE IF NOT EXISTS topic_aliases (
  conn_id TEXT NOT NULL,
  alias INTEGER NOT NULL,
  topic TEXT NOT NULL,
  PRIMARY KEY (conn_id, alias)
);
`;
/** The gateway's schema, oldest first (migrations.ts); a released entry never changes. */
export const GATEWAY_MIGRATIONS: readonly Migration[] = [
  { to: 5, about: "baseline: the schema of the first release with migrations", sql: SCHEMA },
  {
    to: 6,
    about: "who holds a connection: its Session, or (clean sessions) the Registry",
    sql: "ALTER TABLE clients ADD COLUMN registrar TEXT NOT NULL DEFAULT 'session'",
  },
  {
    to: 7,
    about:
      "outbound keyed by (client, row) alone, without AUTOINCREMENT, UNIQUE or index (a new row is one row written, not four); row numbers continue from meta",
    sql: `${OUTBOUND_TABLE.replace("CREATE TABLE outbound", "CREATE TABLE outbound_v7")};
      INSERT INTO outbound_v7 (client_id, seq, packet_id, state, sub_ids, ${MESSAGE_COLUMNS})
        SELECT client_id, seq, packet_id, state, sub_ids, ${MESSAGE_COLUMNS} FROM outbound;
      DROP TABLE outbound;
      ALTER TABLE outbound_v7 RENAME TO outbound;
      INSERT OR REPLACE INTO meta (key, value)
        SELECT 'outbound_seq', CAST(COALESCE(MAX(seq), 0) + 1 AS TEXT) FROM outbound;`,
  },
];

export interface ClientRecord {
  clientId: string;
  connId: string;
  persistent: boolean;
  /** Session Expiry Interval in force, seconds. */
  expiry: number;
  will?: Will;
  /** Who the client authenticated as. */
  identity?: Identity;
  /** Who answers for the connection: told when it ends (Registry.close or Session.close). */
  registrar: Registrar;
}

type Row = Record<string, SqlStorageValue>;

export class GatewayStore {
  private readonly sql: SqlStorage;
  /** The outbound table, and the acknowledged rows it keeps for reuse. */
  private readonly outbound: OutboundRows;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    migrate(sql, "Gateway", GATEWAY_MIGRATIONS);
    this.outbound = new OutboundRows(sql);
  }

  getMeta(key: string): string | undefined {
    const rows = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray();
    return rows[0]?.value;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
  }

  putClient(c: ClientRecord): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO clients (client_id, conn_id, persistent, expiry, will, identity, registrar) VALUES (?, ?, ?, ?, ?, ?, ?)",
      c.clientId,
      c.connId,
      c.persistent ? 1 : 0,
      c.expiry,
      c.will === undefined ? null : stringify(c.will),
      c.identity === undefined ? null : JSON.stringify(c.identity),
      c.registrar,
    );
  }

  /** The Session Expiry Interval changed at DISCONNECT (5.0 3.14.2.2.2). */
  setExpiry(clientId: string, expiry: number): void {
    this.sql.exec(
      "UPDATE clients SET expiry = ?, persistent = ? WHERE client_id = ?",
      expiry,
      expiry > 0 ? 1 : 0,
      clientId,
    );
  }

  /** A client's Topic Alias mapping for PUBLISH it sends (5.0 3.3.2.3.4). */
  setTopicAlias(connId: string, alias: number, topic: string): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO topic_aliases (conn_id, alias, topic) VALUES (?, ?, ?)",
      connId,
      alias,
      topic,
    );
  }

  /**
   * The same, as an update of the row when the alias had one: one row written
   * (INSERT OR REPLACE deletes and inserts, which is billed as two).
   */
  saveTopicAlias(connId: string, alias: number, topic: string): void {
    this.sql.exec(
      "INSERT INTO topic_aliases (conn_id, alias, topic) VALUES (?, ?, ?) ON CONFLICT (conn_id, alias) DO UPDATE SET topic = excluded.topic",
      connId,
      alias,
      topic,
    );
  }

  topicAliases(connId: string): Map<number, string> {
    const rows = this.sql
      .exec<{ alias: number; topic: string }>(
        "SELECT alias, topic FROM topic_aliases WHERE conn_id = ?",
        connId,
      )
      .toArray();
    return new Map(rows.map((r) => [r.alias, r.topic]));
  }

  deleteTopicAliases(connId: string): void {
    this.sql.exec("DELETE FROM topic_aliases WHERE conn_id = ?", connId);
  }

  getClient(clientId: string): ClientRecord | undefined {
    const row = this.sql.exec<Row>("SELECT * FROM clients WHERE client_id = ?", clientId).toArray()[0];
    return row === undefined ? undefined : toClient(row);
  }

  allClients(): ClientRecord[] {
    return this.sql.exec<Row>("SELECT * FROM clients").toArray().map(toClient);
  }

  clearWill(clientId: string): void {
    this.sql.exec("UPDATE clients SET will = NULL WHERE client_id = ?", clientId);
  }

  /** Removes everything held for a client. */
  deleteClient(clientId: string): void {
    this.sql.exec("DELETE FROM clients WHERE client_id = ?", clientId);
    this.sql.exec("DELETE FROM subs WHERE client_id = ?", clientId);
    this.outbound.deleteClient(clientId);
    this.sql.exec("DELETE FROM inbound_qos2 WHERE client_id = ?", clientId);
  }

  putSub(clientId: string, filter: string, options: SubscriptionOptions): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO subs (client_id, filter, options) VALUES (?, ?, ?)",
      clientId,
      filter,
      JSON.stringify(options),
    );
  }

  getSub(clientId: string, filter: string): SubscriptionOptions | undefined {
    const row = this.sql
      .exec<{ options: string }>(
        "SELECT options FROM subs WHERE client_id = ? AND filter = ?",
        clientId,
        filter,
      )
      .toArray()[0];
    return row === undefined ? undefined : (JSON.parse(row.options) as SubscriptionOptions);
  }

  /** Whether any client here subscribes to $SYS topics. */
  hasSysSubscription(): boolean {
    return (
      this.sql.exec("SELECT 1 FROM subs WHERE filter = '$SYS' OR filter LIKE '$SYS/%' LIMIT 1").toArray()
        .length > 0
    );
  }

  totalSubscriptions(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM subs").one().n;
  }

  subscriptionCount(clientId: string): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM subs WHERE client_id = ?", clientId).one()
      .n;
  }

  hasSub(clientId: string, filter: string): boolean {
    return this.getSub(clientId, filter) !== undefined;
  }

  deleteSub(clientId: string, filter: string): boolean {
    return (
      this.sql.exec("DELETE FROM subs WHERE client_id = ? AND filter = ?", clientId, filter).rowsWritten > 0
    );
  }

  subsOf(clientId: string): Array<[string, SubscriptionOptions]> {
    return this.sql
      .exec<{ filter: string; options: string }>(
        "SELECT filter, options FROM subs WHERE client_id = ?",
        clientId,
      )
      .toArray()
      .map((r) => [r.filter, JSON.parse(r.options) as SubscriptionOptions]);
  }

  allSubs(): Array<{ clientId: string; filter: string; options: SubscriptionOptions }> {
    return this.sql
      .exec<{ client_id: string; filter: string; options: string }>(
        "SELECT client_id, filter, options FROM subs",
      )
      .toArray()
      .map((r) => ({
        clientId: r.client_id,
        filter: r.filter,
        options: JSON.parse(r.options) as SubscriptionOptions,
      }));
  }

  /**
   * Stores an outbound message (over an acknowledged row if there is one: one row
   * written); its row, or undefined if this client already has that message id.
   */
  addOutbound(clientId: string, entry: OutboundMessage): number | undefined {
    return this.outbound.add(clientId, entry);
  }

  /**
   * The page of a client's outbound messages after row `after`, for a handover
   * (pageOf: read a row at a time, a call's worth at most).
   */
  outboundPage(clientId: string, after: number): OutboundPage {
    return this.outbound.page(clientId, after);
  }

  /** A client's messages in flight (sent or released), read as they are used. */
  inFlightOf(clientId: string): Generator<OutboundEntry> {
    return this.outbound.inFlightOf(clientId);
  }

  /** A client's messages for shared subscriptions (a member leaving passes them on). */
  *sharedOutboundOf(clientId: string): Generator<Message> {
    for (const entry of this.outbound.sharedOf(clientId)) yield entry.message;
  }

  /**
   * Oldest queued (not yet sent) messages of a client, from row `fromSeq` on: at
   * most `limit` of them and `maxBytes` together (one at least).
   */
  queuedOf(clientId: string, fromSeq: number, limit: number, maxBytes: number): OutboundEntry[] {
    return this.outbound.queuedOf(clientId, fromSeq, limit, maxBytes);
  }

  inflightCount(clientId: string): number {
    return this.outbound.inflightCount(clientId);
  }

  /** A client's in-flight window as storage has it. */
  windowOf(clientId: string, budget: HeldBudget): OutboundWindow {
    return new OutboundWindow(this.outbound.windowRows(clientId), budget);
  }

  /** A queued message goes in flight with `packetId`. */
  markSent(clientId: string, entry: OutboundEntry, packetId: number): void {
    this.outbound.markSent(clientId, entry, packetId);
  }

  markOutbound(seq: number, state: OutboundState, packetId: number | null): void {
    this.outbound.mark(seq, state, packetId);
  }

  /**
   * A message in flight is done with (acknowledged, or it could not be sent): its
   * row is kept for the next message to overwrite (outbound-rows.ts).
   */
  deleteOutbound(seq: number): void {
    this.outbound.retire(seq);
  }

  /** A queued message that will not be sent (it expired, or is too large): its row goes. */
  deleteQueued(clientId: string, entry: OutboundEntry): void {
    this.outbound.delete(clientId, entry);
  }

  /** Records a QoS 2 packet id from the client; false if it was already recorded. */
  addInboundQos2(clientId: string, packetId: number): boolean {
    return (
      this.sql.exec(
        "INSERT OR IGNORE INTO inbound_qos2 (client_id, packet_id) VALUES (?, ?)",
        clientId,
        packetId,
      ).rowsWritten > 0
    );
  }

  hasInboundQos2(clientId: string, packetId: number): boolean {
    return (
      this.sql
        .exec("SELECT 1 FROM inbound_qos2 WHERE client_id = ? AND packet_id = ?", clientId, packetId)
        .toArray().length > 0
    );
  }

  inboundQos2Count(clientId: string): number {
    return this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM inbound_qos2 WHERE client_id = ?", clientId)
      .one().n;
  }

  deleteInboundQos2(clientId: string, packetId: number): boolean {
    return (
      this.sql.exec("DELETE FROM inbound_qos2 WHERE client_id = ? AND packet_id = ?", clientId, packetId)
        .rowsWritten > 0
    );
  }

  inboundQos2Of(clientId: string): number[] {
    return this.sql
      .exec<{ packet_id: number }>("SELECT packet_id FROM inbound_qos2 WHERE client_id = ?", clientId)
      .toArray()
      .map((r) => r.packet_id);
  }
}

function toClient(row: Row): ClientRecord {
  const c: ClientRecord = {
    clientId: row.client_id as string,
    connId: row.conn_id as string,
    persistent: row.persistent === 1,
    expiry: row.expiry as number,
    registrar: row.registrar === "registry" ? "registry" : "session",
  };
  if (row.will !== null && row.will !== undefined) c.will = parse<Will>(row.will as string);
  if (row.identity !== null && row.identity !== undefined)
    c.identity = JSON.parse(row.identity as string) as Identity;
  return c;
}
