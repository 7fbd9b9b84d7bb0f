/**
 * Inside workerd: what the registries hold (docs/limits.md, Memory bounds): a row per
 * connected clean session, of about 100 bytes, gone when it ends, and a row per
 * client id with a stored session, gone when the Session forgets it. Claims of one
 * client id run one at a time, so however many connect at once, one row remains.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { migrate } from "../../broker/migrations.ts";
import { registryName } from "../../broker/routing.ts";
import { REGISTRY_MIGRATIONS } from "../../durable-objects/registry.ts";
import type { Env } from "../../worker/env.ts";
import { connectPacket } from "../support/packets.ts";
import { until } from "../support/until.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;

interface Rows {
  clean: Array<{ client_id: string; bytes: number }>;
  stored: string[];
}

/** The rows the registry of `clientId` holds for it. */
function rowsOf(clientId: string): Promise<Rows> {
  const stub = bindings.REGISTRY.get(bindings.REGISTRY.idFromName(registryName(clientId)));
  return runInDurableObject(stub, (_instance, state) => ({
    clean: state.storage.sql
      .exec<{ client_id: string; bytes: number }>(
        `SELECT client_id, LENGTH(client_id) + LENGTH(owner) + LENGTH(gateway) + LENGTH(conn_id) AS bytes
         FROM clean WHERE client_id = ?`,
        clientId,
      )
      .toArray(),
    stored: state.storage.sql
      .exec<{ client_id: string }>("SELECT client_id FROM stored WHERE client_id = ?", clientId)
      .toArray()
      .map((r) => r.client_id),
  }));
}

/** Waits until `done` holds of the rows of every id in `ids`. */
const rowsUntil = (ids: string[], done: (rows: Rows) => boolean): Promise<Rows[]> =>
  until(
    () => Promise.all(ids.map(rowsOf)),
    (rows) => rows.every(done),
    5_000,
  );

describe("registry rows", () => {
  it("a connected clean session has one row of about 100 bytes (its client id aside), gone when it ends", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `reg-clean-${i}`);
    const clients = await Promise.all(ids.map((id) => TestClient.connected(id, 4)));
    for (const rows of await Promise.all(ids.map(rowsOf))) {
      expect(rows.stored).toEqual([]);
      expect(rows.clean).toHaveLength(1);
      const [row] = rows.clean;
      expect((row?.bytes ?? 0) - (row?.client_id.length ?? 0)).toBeLessThanOrEqual(100);
    }
    for (const c of clients) c.ws.close();
    for (const rows of await rowsUntil(ids, (r) => r.clean.length === 0)) expect(rows.clean).toEqual([]);
  });

  it("a client id with a stored session has a row until its Session forgets it", async () => {
    const id = "reg-stored";
    const c = await TestClient.connected(id, 5, { sessionExpiryInterval: 300 });
    expect(await rowsOf(id)).toEqual({ clean: [], stored: [id] });
    // Ending the session (DISCONNECT with expiry 0) makes its Session forget it.
    c.send({ type: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } }, 5);
    expect((await rowsUntil([id], (r) => r.stored.length === 0))[0]).toEqual({ clean: [], stored: [] });
  });

  it("claims of one client id run one at a time: of ten at once, nine are taken over and one row remains", async () => {
    const id = "reg-race";
    const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.open(4)));
    let closed = 0;
    for (const c of clients) c.ws.addEventListener("close", () => closed++);
    const connacks = clients.map(async (c) => {
      c.send(connectPacket(id, 4), 4);
      return c.next("connack");
    });
    // Each is granted in turn, and ended by the next (MQTT-3.1.4-2).
    expect((await Promise.all(connacks)).map((p) => p.reasonCode ?? 0)).toEqual(Array(10).fill(0));
    const deadline = Date.now() + 5_000;
    while (closed < 9 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(9);
    expect((await rowsOf(id)).clean).toHaveLength(1);
    for (const c of clients) c.ws.close();
    expect((await rowsUntil([id], (r) => r.clean.length === 0))[0]?.clean).toEqual([]);
  });

  it("a clean connect writes one row at its registry and its end one more (tables WITHOUT ROWID: no index row beside)", async () => {
    const id = "reg-one-row";
    const stub = bindings.REGISTRY.get(bindings.REGISTRY.idFromName(registryName(id)));
    const request = {
      clientId: id,
      owner: "anonymous",
      gateway: "gateway-0",
      connId: "conn-1",
      cleanStart: true,
      persistent: false,
      expiry: 0,
    };
    // The registry's first claim also notes whether it predates registries (a meta row).
    await stub.claim(request);
    await stub.close([{ clientId: id, connId: "conn-1" }]);
    const claim = await stub.claim({ ...request, connId: "conn-2" });
    expect(claim).toMatchObject({ granted: true, registrar: "registry", rowsWritten: 1 });
    expect(await stub.close([{ clientId: id, connId: "conn-2" }])).toBe(1);
    expect(await rowsOf(id)).toEqual({ clean: [], stored: [] });
  });

  it("storage of an earlier release keeps its rows when its tables become WITHOUT ROWID (migration 3)", async () => {
    // A storage of its own (the StatsHub stores nothing): brought to version 2, as released.
    const stub = bindings.STATS.get(bindings.STATS.idFromName("registry-migration-3"));
    const after = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      migrate(sql, "Registry", REGISTRY_MIGRATIONS.slice(0, 2));
      sql.exec("INSERT INTO clean (client_id, owner, gateway, conn_id) VALUES ('old', 'user:a', 'g', 'c')");
      sql.exec(
        "INSERT INTO clean (client_id, owner, gateway, conn_id, namespaced) VALUES ('new', 'u', 'g', 'd', 1)",
      );
      sql.exec("INSERT INTO stored (client_id) VALUES ('kept')");
      migrate(sql, "Registry", REGISTRY_MIGRATIONS);
      return {
        clean: sql
          .exec("SELECT client_id, owner, gateway, conn_id, namespaced FROM clean ORDER BY client_id")
          .toArray(),
        stored: sql.exec("SELECT client_id FROM stored").toArray(),
        withoutRowid: sql
          .exec<{ sql: string }>(
            "SELECT sql FROM sqlite_master WHERE name IN ('clean', 'stored') ORDER BY name",
          )
          .toArray()
          .map((r) => r.sql.includes("WITHOUT ROWID")),
      };
    });
    expect(after).toEqual({
      clean: [
        { client_id: "new", owner: "u", gateway: "g", conn_id: "d", namespaced: 1 },
        { client_id: "old", owner: "user:a", gateway: "g", conn_id: "c", namespaced: 0 },
      ],
      stored: [{ client_id: "kept" }],
      withoutRowid: [true, true],
    });
  });
});
