/**
 * What a Session keeps, and what keeping it costs: its record in key-value
 * storage, the tables of a persistent session, its alarm, and the rows written
 * and alarms run since the object last answered (SessionUsage: every answer
 * carries them, for the caller to count). The tables are created the first time
 * they are needed, so that a clean session (most connections) costs no schema
 * statements at all.
 */
import { parse, stringify } from "../../broker/json.ts";

import { meteredSql } from "../../broker/metered-sql.ts";

import { type Migration, migrate } from "../../broker/migrations.ts";
import type { SessionUsage } from "../contracts.ts";
import type { SessionRecord } from "./ownership.ts";

/** The key of the session's record in key-value storage. */
const RECORD_KEY = "session";

export class SessionStorage {
  private readonly storage: DurableObjectStorage;
  private readonly migrations: readonly Migration[];
  /** The object's SQLite, with rows written counted. */
  private readonly metered: SqlStorage;
  private schemaReady = false;
  /** What this object did that is billed, since its last answer. */
  private usage: SessionUsage = { rowsWritten: 0, alarms: 0 };

  constructor(storage: DurableObjectStorage, migrations: readonly Migration[]) {
    this.storage = storage;
    this.migrations = migrations;
    this.metered = meteredSql(storage.sql, (n) => {
      this.usage.rowsWritten += n;
    });
  }

  /** The session's tables, created the first time they are needed. */
  get sql(): SqlStorage {
    if (!this.schemaReady) {
      migrate(this.metered, "Session", this.migrations);
      this.schemaReady = true;
    }
    return this.metered;
  }

  readRecord(): SessionRecord | undefined {
    const value = this.storage.kv.get<string>(RECORD_KEY);
    return value === undefined ? undefined : parse<SessionRecord>(value);
  }

  writeRecord(record: SessionRecord): void {
    this.storage.kv.put(RECORD_KEY, stringify(record));
    this.usage.rowsWritten++;
  }

  /** Sets the storage alarm: billed as a row written, so reported as one. */
  async setAlarm(at: number): Promise<void> {
    this.usage.rowsWritten++;
    await this.storage.setAlarm(at);
  }

  deleteAlarm(): Promise<void> {
    return this.storage.deleteAlarm();
  }

  alarmRan(): void {
    this.usage.alarms++;
  }

  /**
   * Deletes everything this object stores. deleteAll reports no rows: the
   * caller says how many its tables hold, and the record is one more.
   */
  async deleteAll(tableRows: number): Promise<void> {
    this.usage.rowsWritten += tableRows + 1;
    await this.storage.deleteAll();
    this.schemaReady = false;
  }

  /** What was billed since the last answer; counting starts again. */
  takeUsage(): SessionUsage {
    const usage = this.usage;
    this.usage = { rowsWritten: 0, alarms: 0 };
    return usage;
  }
}
