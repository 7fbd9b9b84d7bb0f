/**
 * The gateway's outbound table: its clients' QoS 1/2 messages, queued or in
 * flight, one row each, keyed by (client, row number) and nothing else. What it
 * costs is what shaped it: every row and every index entry an INSERT writes is a
 * row billed, and so is every row deleted.
 *
 * - No secondary index, no AUTOINCREMENT: a new row is one row written. Row
 *   numbers come from memory, increasing for the whole gateway, with a block of
 *   them reserved in `meta` at a time (one row written per SEQ_BLOCK messages),
 *   so they keep increasing across restarts.
 * - An acknowledged row is not deleted: it is *retired*, kept in memory as free,
 *   and the next message stored here (for any client) overwrites it with one
 *   UPDATE, the row number moving on with it. A subscriber that is online and
 *   acknowledging therefore costs one row written per message and nothing per
 *   PUBACK. Retired rows that no message took within RETIRED_ROWS_KEPT_MS are
 *   deleted (a row each); the timer that does it keeps the object awake meanwhile,
 *   so it does not hibernate with storage saying that acknowledged messages are
 *   still in flight.
 * - Until then the row still reads as in flight in storage; every read here leaves
 *   the retired rows out. If the whole runtime dies first, they are in flight
 *   again when it comes back: QoS 1 messages are sent again with DUP set, which is
 *   allowed (MQTT-4.3.2-4 lets the receiver get them again), a PUBREL is answered
 *   with PUBCOMP; nothing acknowledged to a publisher is lost (DESIGN.md, invariant 1).
 */
import { takeWithin } from "../../broker/batcher.ts";
import {
  MESSAGE_BATCH,
  MESSAGE_COLUMN_DEFS,
  MESSAGE_COLUMNS,
  type MessageRow,
  messageBytes,
  messageToRow,
  messageValues,
  rowToMessage,
} from "../../broker/message.ts";
import {
  type OutboundMessage,
  type OutboundPage,
  type OutboundState,
  pageOf,
} from "../../broker/session-state.ts";
import type { OutboundRow } from "./outbound-window.ts";

/** How long an acknowledged row waits for a message to reuse it before it is deleted (ms). */
export const RETIRED_ROWS_KEPT_MS = 1_000;
/** Row numbers reserved at once in `meta`. */
const SEQ_BLOCK = 2 ** 16;
const SEQ_KEY = "outbound_seq";
/** Bound parameters per statement stay under SQLite's 100 here. */
const PARAMS = 90;

/** The outbound table as schema 7 has it (the migration in store.ts creates it). */
export const OUTBOUND_TABLE = `CREATE TABLE outbound (
  client_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  packet_id INTEGER,
  state TEXT NOT NULL,
  sub_ids TEXT NOT NULL,
  ${MESSAGE_COLUMN_DEFS},
  PRIMARY KEY (client_id, seq)
) WITHOUT ROWID`;

export interface OutboundEntry extends OutboundMessage {
  seq: number;
}

/** A row of the outbound table: a stored message and where it stands. */
type StoredOutbound = MessageRow & {
  seq: number;
  client_id: string;
  packet_id: number | null;
  state: string;
  sub_ids: string;
};

/** A row in flight: whose it is, and its message. */
interface Owner {
  clientId: string;
  msgId: string;
}

interface Retired {
  clientId: string;
  seq: number;
  at: number;
}

export class OutboundRows {
  private readonly sql: SqlStorage;
  /** The next row number, and the first one not reserved in `meta` yet (0: nothing read yet). */
  private nextSeq = 0;
  private reservedTo = 0;
  /** Rows in flight, by number: whose they are (an acknowledgement names only the row). */
  private readonly owners = new Map<number, Owner>();
  /** The same rows by client. */
  private readonly owned = new Map<string, Set<number>>();
  /** Acknowledged rows kept for reuse, the latest last (the oldest go unused and are deleted). */
  private retired: Retired[] = [];
  /** The same rows by number, for the reads that must leave them out. */
  private readonly retiredSeqs = new Set<number>();
  /**
   * Per client, the message ids of its stored rows (retired ones left out), read
   * the first time the client is written to: a copy of a message that reaches the
   * gateway twice (a reconnect here finds the rows of the connection before) is
   * dropped without reading the client's rows again for each message.
   */
  private readonly ids = new Map<string, Set<string>>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(sql: SqlStorage) {
    this.sql = sql;
  }

  /**
   * Stores a message of a client: over a retired row if there is one (one row
   * written either way). Its row number, or undefined if the client already has
   * this message (a copy that reaches the gateway twice during a handover).
   */
  add(clientId: string, entry: OutboundMessage): number | undefined {
    const ids = this.idsOf(clientId);
    if (ids.has(entry.message.id)) return undefined;
    const seq = this.allocate();
    const values = [
      clientId,
      seq,
      entry.packetId,
      entry.state,
      entry.subscriptionIds.join(","),
      ...messageValues(messageToRow(entry.message)),
    ];
    const free = this.retired.pop();
    if (free === undefined) {
      this.sql.exec(
        `INSERT INTO outbound (client_id, seq, packet_id, state, sub_ids, ${MESSAGE_COLUMNS})
         VALUES (${values.map(() => "?").join(", ")})`,
        ...values,
      );
    } else {
      this.retiredSeqs.delete(free.seq);
      const columns = ["client_id", "seq", "packet_id", "state", "sub_ids", ...MESSAGE_COLUMNS.split(", ")];
      this.sql.exec(
        `UPDATE outbound SET ${columns.map((c) => `${c} = ?`).join(", ")} WHERE client_id = ? AND seq = ?`,
        ...values,
        free.clientId,
        free.seq,
      );
    }
    ids.add(entry.message.id);
    if (entry.state !== "queued") this.own(seq, { clientId, msgId: entry.message.id });
    return seq;
  }

  private idsOf(clientId: string): Set<string> {
    let ids = this.ids.get(clientId);
    if (ids === undefined) {
      ids = new Set();
      const rows = this.sql.exec<{ seq: number; msg_id: string }>(
        "SELECT seq, msg_id FROM outbound WHERE client_id = ?",
        clientId,
      );
      for (const r of rows) if (!this.retiredSeqs.has(r.seq)) ids.add(r.msg_id);
      this.ids.set(clientId, ids);
    }
    return ids;
  }

  /** A queued row goes in flight with `packetId`. */
  markSent(clientId: string, entry: OutboundEntry, packetId: number): void {
    this.sql.exec(
      "UPDATE outbound SET state = 'sent', packet_id = ? WHERE client_id = ? AND seq = ?",
      packetId,
      clientId,
      entry.seq,
    );
    this.own(entry.seq, { clientId, msgId: entry.message.id });
  }

  /** A row in flight changes state (QoS 2: PUBREC received, PUBREL sent). */
  mark(seq: number, state: OutboundState, packetId: number | null): void {
    const clientId = this.owners.get(seq)?.clientId;
    if (clientId === undefined) {
      // Every row in flight was written or read here first; a scan finds any other.
      this.sql.exec("UPDATE outbound SET state = ?, packet_id = ? WHERE seq = ?", state, packetId, seq);
      return;
    }
    this.sql.exec(
      "UPDATE outbound SET state = ?, packet_id = ? WHERE client_id = ? AND seq = ?",
      state,
      packetId,
      clientId,
      seq,
    );
  }

  /**
   * A row in flight is done with (acknowledged, or its message could not be
   * sent): retired, for a later message to overwrite. Any other row is deleted.
   */
  retire(seq: number, now = Date.now()): void {
    const owner = this.owners.get(seq);
    if (owner === undefined) {
      this.sql.exec("DELETE FROM outbound WHERE seq = ?", seq);
      return;
    }
    this.disown(seq);
    this.ids.get(owner.clientId)?.delete(owner.msgId);
    this.retired.push({ clientId: owner.clientId, seq, at: now });
    this.retiredSeqs.add(seq);
    this.pruneLater();
  }

  /** A client's queued row is deleted (its message expired, or could not be sent). */
  delete(clientId: string, entry: OutboundEntry): void {
    this.disown(entry.seq);
    this.ids.get(clientId)?.delete(entry.message.id);
    this.sql.exec("DELETE FROM outbound WHERE client_id = ? AND seq = ?", clientId, entry.seq);
  }

  /** Every row of a client is deleted, the retired ones too. */
  deleteClient(clientId: string): void {
    this.sql.exec("DELETE FROM outbound WHERE client_id = ?", clientId);
    for (const seq of this.owned.get(clientId) ?? []) this.owners.delete(seq);
    this.owned.delete(clientId);
    this.ids.delete(clientId);
    this.forgetRetired((r) => r.clientId === clientId);
  }

  /** The page of a client's messages after row `after`, for a handover (pageOf). */
  page(clientId: string, after: number): OutboundPage {
    // The page is read with LIMIT: the client's retired rows go first, so none is in the way.
    this.deleteRetired(this.retired.filter((r) => r.clientId === clientId));
    const rows = this.sql.exec<StoredOutbound>(
      "SELECT * FROM outbound WHERE client_id = ? AND seq > ? ORDER BY seq LIMIT ?",
      clientId,
      after,
      MESSAGE_BATCH.maxItems + 1,
    );
    return pageOf(rows, after, (row) => {
      const { seq, ...entry } = toOutbound(row);
      return { seq, entry };
    });
  }

  /** A client's messages in flight (sent or released), in order, read as they are used. */
  *inFlightOf(clientId: string): Generator<OutboundEntry> {
    const rows = this.sql.exec<StoredOutbound>(
      "SELECT * FROM outbound WHERE client_id = ? AND state != 'queued' ORDER BY seq",
      clientId,
    );
    for (const row of rows) if (!this.retiredSeqs.has(row.seq)) yield toOutbound(row);
  }

  /** A client's messages for shared subscriptions. */
  *sharedOf(clientId: string): Generator<OutboundEntry> {
    const rows = this.sql.exec<StoredOutbound>(
      "SELECT * FROM outbound WHERE client_id = ? AND target IS NOT NULL ORDER BY seq",
      clientId,
    );
    for (const row of rows) if (!this.retiredSeqs.has(row.seq)) yield toOutbound(row);
  }

  /**
   * Oldest queued messages of a client, from row `fromSeq` on: at most `limit`
   * and `maxBytes` together (one at least). Retired rows are never queued ones.
   */
  queuedOf(clientId: string, fromSeq: number, limit: number, maxBytes: number): OutboundEntry[] {
    const rows = this.sql.exec<StoredOutbound>(
      "SELECT * FROM outbound WHERE client_id = ? AND seq >= ? AND state = 'queued' ORDER BY seq LIMIT ?",
      clientId,
      fromSeq,
      limit,
    );
    function* entries() {
      for (const row of rows) yield toOutbound(row);
    }
    return takeWithin(entries(), (e) => messageBytes(e.message), limit, maxBytes).taken;
  }

  inflightCount(clientId: string): number {
    let n = 0;
    const rows = this.sql.exec<{ seq: number }>(
      "SELECT seq FROM outbound WHERE client_id = ? AND state != 'queued'",
      clientId,
    );
    for (const r of rows) if (!this.retiredSeqs.has(r.seq)) n++;
    return n;
  }

  /** What a client's in-flight window is built from; its rows in flight are known here from now on. */
  windowRows(clientId: string): OutboundRow[] {
    const rows = this.sql
      .exec<OutboundRow & { msgId: string } & Record<string, SqlStorageValue>>(
        "SELECT seq, packet_id AS packetId, state, qos, msg_id AS msgId FROM outbound WHERE client_id = ?",
        clientId,
      )
      .toArray()
      .filter((r) => !this.retiredSeqs.has(r.seq));
    for (const r of rows)
      if (r.state !== "queued" && r.packetId !== null) this.own(r.seq, { clientId, msgId: r.msgId });
    return rows;
  }

  private own(seq: number, owner: Owner): void {
    this.owners.set(seq, owner);
    let seqs = this.owned.get(owner.clientId);
    if (seqs === undefined) {
      seqs = new Set();
      this.owned.set(owner.clientId, seqs);
    }
    seqs.add(seq);
  }

  private disown(seq: number): void {
    const owner = this.owners.get(seq);
    if (owner === undefined) return;
    this.owners.delete(seq);
    const seqs = this.owned.get(owner.clientId);
    seqs?.delete(seq);
    if (seqs?.size === 0) this.owned.delete(owner.clientId);
  }

  /** The next row number: from the block reserved in `meta`, a new block when it runs out. */
  private allocate(): number {
    if (this.nextSeq >= this.reservedTo) {
      if (this.nextSeq === 0) {
        const stored = this.sql
          .exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", SEQ_KEY)
          .toArray()[0];
        this.nextSeq = stored === undefined ? 1 : Number(stored.value);
      }
      this.reservedTo = this.nextSeq + SEQ_BLOCK;
      this.sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        SEQ_KEY,
        String(this.reservedTo),
      );
    }
    return this.nextSeq++;
  }

  /** Deletes the retired rows nothing reused for RETIRED_ROWS_KEPT_MS; again later while some remain. */
  private pruneLater(delay = RETIRED_ROWS_KEPT_MS): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      // Reuse takes the latest: the oldest are those no message needed.
      const due = this.retired.filter((r) => r.at + RETIRED_ROWS_KEPT_MS <= now);
      this.deleteRetired(due);
      const oldest = this.retired[0];
      if (oldest !== undefined) this.pruneLater(Math.max(1, oldest.at + RETIRED_ROWS_KEPT_MS - now));
    }, delay);
  }

  private deleteRetired(rows: Retired[]): void {
    if (rows.length === 0) return;
    const byClient = new Map<string, number[]>();
    for (const r of rows) byClient.set(r.clientId, [...(byClient.get(r.clientId) ?? []), r.seq]);
    for (const [clientId, seqs] of byClient) {
      for (let i = 0; i < seqs.length; i += PARAMS) {
        const part = seqs.slice(i, i + PARAMS);
        this.sql.exec(
          `DELETE FROM outbound WHERE client_id = ? AND seq IN (${part.map(() => "?").join(", ")})`,
          clientId,
          ...part,
        );
      }
    }
    const gone = new Set(rows);
    this.forgetRetired((r) => gone.has(r));
  }

  private forgetRetired(drop: (r: Retired) => boolean): void {
    const kept: Retired[] = [];
    for (const r of this.retired) {
      if (drop(r)) this.retiredSeqs.delete(r.seq);
      else kept.push(r);
    }
    this.retired = kept;
  }
}

function toOutbound(row: StoredOutbound): OutboundEntry {
  return {
    seq: row.seq,
    packetId: row.packet_id ?? null,
    state: row.state as OutboundState,
    subscriptionIds: row.sub_ids === "" ? [] : row.sub_ids.split(",").map(Number),
    message: rowToMessage(row),
  };
}
