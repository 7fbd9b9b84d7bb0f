/**
 * Numbered, forward-only migrations of an object's SQLite storage (DESIGN.md
 * invariant 8): a deploy that changes a schema carries the statements that bring
 * stored data to it, and storage written by any earlier release opens with its
 * sessions, queues, retained messages and subscriptions intact. Dropping data is
 * never how a version change is handled.
 *
 * Each object lists its migrations, oldest first. The first is the baseline: the
 * schema as the first release with migrations wrote it, run on empty storage.
 * Later ones change it (ALTER TABLE, a new table, moving rows) and never change
 * once released. They run in the constructor, in one synchronous block, which
 * Durable Objects commit as one implicit transaction: storage is at the old
 * version or at the new one, never between.
 */

export interface Migration {
  /** The schema version this brings storage to: the baseline's, then one more each. */
  to: number;
  /** What it changes and why, for whoever reads the list. */
  about: string;
  /** Statements run in order (several may be separated by semicolons). */
  sql: string;
}

/** Storage the code cannot open without losing or misreading data: the object refuses to run. */
export class SchemaError extends Error {
  override name = "SchemaError";
}

/**
 * Brings `sql` to the last version of `migrations` and returns it. Storage at that
 * version costs two small reads (objects wake often). Throws SchemaError for
 * storage newer than the code (an older version was deployed again: migrations
 * only go forward) or older than the baseline (written before migrations existed).
 */
export function migrate(sql: SqlStorage, object: string, migrations: readonly Migration[]): number {
  checkList(object, migrations);
  const latest = (migrations.at(-1) as Migration).to;
  const baseline = (migrations[0] as Migration).to;
  const stored = storedSchemaVersion(sql);
  if (stored === latest) return latest;
  if (stored !== undefined && stored > latest) {
    throw new SchemaError(
      `${object} storage is at schema ${stored}, newer than this code's ${latest}: deploy the newer code again (migrations only go forward)`,
    );
  }
  if (stored !== undefined && stored < baseline) {
    throw new SchemaError(
      `${object} storage is at schema ${stored}, written before migrations began at ${baseline} (only development builds wrote it: delete that storage, locally .wrangler/state)`,
    );
  }
  for (const m of migrations) if (stored === undefined || m.to > stored) sql.exec(m.sql);
  sql.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  sql.exec("DELETE FROM schema_version");
  sql.exec("INSERT INTO schema_version (version) VALUES (?)", latest);
  return latest;
}

/** The schema version storage is at before `migrate` runs; undefined for new storage. */
export function storedSchemaVersion(sql: SqlStorage): number | undefined {
  const table = sql
    .exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    .toArray();
  if (table.length === 0) return undefined;
  return sql.exec<{ version: number }>("SELECT version FROM schema_version").toArray()[0]?.version;
}

/** A list whose versions skip or repeat is a bug in the code, caught on first use. */
function checkList(object: string, migrations: readonly Migration[]): void {
  if (migrations.length === 0) throw new SchemaError(`${object} has no migrations`);
  migrations.forEach((m, i) => {
    const before = migrations[i - 1];
    if (before !== undefined && m.to !== before.to + 1) {
      throw new SchemaError(`${object} migration to ${m.to} follows ${before.to}: versions go up by one`);
    }
  });
}
