import type { Origin } from "../contracts.ts";
/**
 * Shard 0's record of the deployment's beginning, for the registries (DESIGN.md,
 * "Sessions stored by an earlier release"). A registry cannot list the Session
 * objects that exist; what it needs to know is whether sessions may have been
 * stored by a release before registries, and since when registries decide: such
 * sessions live at most MAX_SESSION_EXPIRY after that. Shard 0 (every layout has
 * one) writes this record the first time it runs code that keeps it:
 *
 * - `since`: then (when this code, and with it the registries, first ran here);
 * - `older`: whether its storage was there before (an earlier release's), which
 *   a new deployment's is not.
 *
 * It is the registries' own deployment, not the layout history's start (which
 * began with re-sharding, a release before registries, and says nothing of
 * when registries came).
 */

export const DEPLOYMENT_SCHEMA = `
CREATE TABLE IF NOT EXISTS deployment (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  since INTEGER NOT NULL,
  older_storage INTEGER NOT NULL
);
`;

/** Shard 0, at start: writes the record once; `before` is the schema its storage had (undefined: new). */
export function recordDeployment(sql: SqlStorage, before: number | undefined, now = Date.now()): void {
  sql.exec(
    "INSERT OR IGNORE INTO deployment (id, since, older_storage) VALUES (0, ?, ?)",
    now,
    before === undefined ? 0 : 1,
  );
}

export function deploymentOrigin(sql: SqlStorage): Origin {
  const row = sql
    .exec<{ since: number; older_storage: number }>("SELECT since, older_storage FROM deployment")
    .toArray()[0];
  if (row === undefined) throw new Error("no deployment record: only shard 0 knows the origin");
  return { predatesRegistries: row.older_storage === 1, since: row.since };
}
