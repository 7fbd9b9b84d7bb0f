/**
 * Migrations inside workerd, on a real object's SQLite storage (DESIGN.md
 * invariant 8): storage moves forward keeping every row, and storage the code
 * cannot read is refused, never dropped.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type Migration, migrate, SchemaError } from "../../broker/migrations.ts";
import { GATEWAY_MIGRATIONS } from "../../durable-objects/gateway/store.ts";
import { SESSION_MIGRATIONS } from "../../durable-objects/session.ts";
import { SHARD_MIGRATIONS } from "../../durable-objects/topic-shard.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;

/** Runs `fn` on the SQLite storage of a Session object of its own (its constructor touches none). */
function withStorage<T>(name: string, fn: (sql: SqlStorage) => T): Promise<T> {
  const stub = bindings.SESSION.get(bindings.SESSION.idFromName(`migrations-${name}`));
  return runInDurableObject(stub, (_instance, state) => fn(state.storage.sql));
}

const baseline: Migration = {
  to: 3,
  about: "baseline",
  sql: "CREATE TABLE queue (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL)",
};
const release4: Migration = {
  to: 4,
  about: "a column with a default",
  sql: "ALTER TABLE queue ADD COLUMN qos INTEGER NOT NULL DEFAULT 1",
};
const release5: Migration = {
  to: 5,
  about: "a table filled from another",
  sql: "CREATE TABLE topics (topic TEXT PRIMARY KEY); INSERT INTO topics SELECT DISTINCT topic FROM queue",
};

const version = (sql: SqlStorage) =>
  sql.exec<{ version: number }>("SELECT version FROM schema_version").one().version;

describe("migrate", () => {
  it("brings storage written by an earlier release forward, every row kept", async () => {
    await withStorage("forward", (sql) => {
      expect(migrate(sql, "test", [baseline])).toBe(3);
      sql.exec("INSERT INTO queue (seq, topic) VALUES (1, 'a/b'), (2, 'a/c'), (3, 'a/b')");
      expect(migrate(sql, "test", [baseline, release4, release5])).toBe(5);
      expect(version(sql)).toBe(5);
      expect(sql.exec("SELECT seq, topic, qos FROM queue ORDER BY seq").toArray()).toEqual([
        { seq: 1, topic: "a/b", qos: 1 },
        { seq: 2, topic: "a/c", qos: 1 },
        { seq: 3, topic: "a/b", qos: 1 },
      ]);
      expect(sql.exec("SELECT topic FROM topics ORDER BY topic").toArray()).toEqual([
        { topic: "a/b" },
        { topic: "a/c" },
      ]);
      // At the latest version it runs nothing: the rows stay as they are.
      expect(migrate(sql, "test", [baseline, release4, release5])).toBe(5);
      expect(sql.exec("SELECT COUNT(*) AS n FROM topics").one().n).toBe(2);
    });
  });

  it("creates fresh storage by running every migration from the baseline", async () => {
    await withStorage("fresh", (sql) => {
      expect(migrate(sql, "test", [baseline, release4])).toBe(4);
      sql.exec("INSERT INTO queue (seq, topic) VALUES (1, 't')");
      expect(sql.exec("SELECT qos FROM queue").one().qos).toBe(1);
    });
  });

  it("refuses storage newer than the code (an older version deployed again) and leaves it untouched", async () => {
    await withStorage("newer", (sql) => {
      migrate(sql, "test", [baseline, release4, release5]);
      sql.exec("INSERT INTO queue (seq, topic) VALUES (1, 'kept')");
      expect(() => migrate(sql, "test", [baseline, release4])).toThrow(SchemaError);
      expect(() => migrate(sql, "test", [baseline, release4])).toThrow(/schema 5, newer than this code's 4/);
      expect(version(sql)).toBe(5);
      expect(sql.exec("SELECT topic FROM queue").one().topic).toBe("kept");
    });
  });

  it("refuses storage from before the baseline rather than dropping it", async () => {
    await withStorage("older", (sql) => {
      sql.exec("CREATE TABLE schema_version (version INTEGER NOT NULL)");
      sql.exec("INSERT INTO schema_version (version) VALUES (2)");
      sql.exec("CREATE TABLE queue (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL)");
      sql.exec("INSERT INTO queue (seq, topic) VALUES (1, 'old')");
      expect(() => migrate(sql, "test", [baseline])).toThrow(/before migrations began at 3/);
      expect(sql.exec("SELECT topic FROM queue").one().topic).toBe("old");
    });
  });

  it("refuses a list whose versions skip or repeat", async () => {
    await withStorage("list", (sql) => {
      expect(() => migrate(sql, "test", [baseline, release5])).toThrow(/versions go up by one/);
      expect(() => migrate(sql, "test", [])).toThrow(SchemaError);
    });
  });

  it("the objects' own lists are well formed and create their tables on empty storage", async () => {
    for (const [name, list] of [
      ["gateway", GATEWAY_MIGRATIONS],
      ["session", SESSION_MIGRATIONS],
      ["shard", SHARD_MIGRATIONS],
    ] as const) {
      await withStorage(`own-${name}`, (sql) => {
        expect(migrate(sql, name, list)).toBe((list.at(-1) as Migration).to);
        const tables = sql
          .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
          .toArray()
          .map((t) => t.name);
        expect(tables.length).toBeGreaterThan(2);
      });
    }
  });
});
