/**
 * Operational counters of one object (messages and bytes in and out, drops …).
 * Kept in memory and written to SQLite at most every FLUSH_MS while the object is
 * busy (checked every CLOCK_EVERY adds, and at the objects' alarms), so counting costs no row write per message; an eviction after a quiet
 * spell loses nothing, a crash loses at most the last few seconds of counts.
 */
export const COUNTERS_SCHEMA =
  "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)";
const FLUSH_MS = 5_000;
/**
 * The clock is read once in this many adds: reading it is a call into the runtime
 * (about a microsecond in workerd, a third of what counting cost in a flood's profile),
 * and several counters move for every message.
 */
const CLOCK_EVERY = 64;

export class Counters<N extends string> {
  private readonly values = new Map<N, number>();
  private readonly dirty = new Set<N>();
  private lastFlush = Date.now();
  private addsSinceClock = 0;
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    sql.exec(COUNTERS_SCHEMA);
    for (const row of sql.exec<{ name: string; value: number }>("SELECT name, value FROM counters")) {
      this.values.set(row.name as N, row.value);
    }
  }

  add(name: N, n = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + n);
    this.dirty.add(name);
    if (++this.addsSinceClock < CLOCK_EVERY) return;
    this.addsSinceClock = 0;
    const now = Date.now();
    if (now - this.lastFlush >= FLUSH_MS) this.flush(now);
  }

  get(name: N): number {
    return this.values.get(name) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.values);
  }

  flush(now = Date.now()): void {
    for (const name of this.dirty) {
      this.sql.exec(
        "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
        name,
        this.values.get(name) ?? 0,
      );
    }
    this.dirty.clear();
    this.lastFlush = now;
  }
}
