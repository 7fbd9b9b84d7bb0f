/**
 * Counts the SQLite rows an object writes (billed at $1.00 per million), by
 * wrapping its SqlStorage: every statement's rowsWritten is known once exec runs.
 */
export function meteredSql(sql: SqlStorage, onRowsWritten: (rows: number) => void): SqlStorage {
  return new Proxy(sql, {
    get(target, prop) {
      if (prop === "exec") {
        return (query: string, ...bindings: unknown[]) => {
          const cursor = target.exec(query, ...bindings);
          if (cursor.rowsWritten > 0) onRowsWritten(cursor.rowsWritten);
          return cursor;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
