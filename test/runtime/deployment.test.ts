/**
 * Shard 0's record of the registries' deployment (topic-shard/deployment.ts):
 * written once, the first time shard 0 runs this code; storage from an earlier
 * release means sessions may predate the registries, new storage that none do.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  DEPLOYMENT_SCHEMA,
  deploymentOrigin,
  recordDeployment,
} from "../../durable-objects/topic-shard/deployment.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;

function withStorage<T>(name: string, fn: (sql: SqlStorage) => T): Promise<T> {
  const stub = bindings.SESSION.get(bindings.SESSION.idFromName(`deployment-${name}`));
  return runInDurableObject(stub, (_instance, state) => fn(state.storage.sql));
}

describe("the registries' deployment, as shard 0 records it", () => {
  it("new storage: nothing predates the registries", async () => {
    await withStorage("new", (sql) => {
      sql.exec(DEPLOYMENT_SCHEMA);
      recordDeployment(sql, undefined, 1_000);
      expect(deploymentOrigin(sql)).toEqual({ predatesRegistries: false, since: 1_000 });
    });
  });

  it("storage of an earlier release: sessions may predate them, from the first start of this code on; later starts change nothing", async () => {
    await withStorage("older", (sql) => {
      sql.exec(DEPLOYMENT_SCHEMA);
      recordDeployment(sql, 3, 5_000);
      recordDeployment(sql, 6, 9_000);
      expect(deploymentOrigin(sql)).toEqual({ predatesRegistries: true, since: 5_000 });
    });
  });

  it("shard 0 of this runtime answers origin() from the record, not from the layout history", async () => {
    const { shardStub } = await import("../../durable-objects/stubs.ts");
    const origin = await shardStub(bindings, 0).origin();
    expect(origin.predatesRegistries).toBe(false);
    expect(origin.since).toBeLessThanOrEqual(Date.now());
  });
});
