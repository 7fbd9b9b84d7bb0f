/**
 * Schema set-up for an object's SQLite storage. Each object states its schema and
 * a version; storage written by another version of the schema is dropped and
 * created anew. Nimbus has no deployed data to carry over yet: when it does, this
 * is where migrations go.
 */
export function applySchema(sql: SqlStorage, version: number, tables: string[], schema: string): void {
  sql.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  const row = sql.exec<{ version: number }>("SELECT version FROM schema_version").toArray()[0];
  // A version's schema never changes, so storage at this version has it already:
  // objects wake up often, and each statement run here is time before the first event.
  if (row?.version === version) return;
  for (const t of tables) sql.exec(`DROP TABLE IF EXISTS ${t}`);
  sql.exec(schema);
  sql.exec("DELETE FROM schema_version");
  sql.exec("INSERT INTO schema_version (version) VALUES (?)", version);
}
