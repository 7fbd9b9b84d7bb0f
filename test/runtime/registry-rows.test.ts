/**
 * Inside workerd: what the registries hold (README, Memory bounds): a row per
 * connected clean session, of about 100 bytes, gone when it ends, and a row per
 * client id with a stored session, gone when the Session forgets it. Claims of one
 * client id run one at a time, so however many connect at once, one row remains.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { registryName } from "../../broker/routing.ts";
import type { Env } from "../../worker/env.ts";
import { connectPacket } from "../support/packets.ts";
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
async function until(ids: string[], done: (rows: Rows) => boolean): Promise<Rows[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const rows = await Promise.all(ids.map(rowsOf));
    if (rows.every(done) || Date.now() > deadline) return rows;
    await new Promise((r) => setTimeout(r, 50));
  }
}

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
    for (const rows of await until(ids, (r) => r.clean.length === 0)) expect(rows.clean).toEqual([]);
  });

  it("a client id with a stored session has a row until its Session forgets it", async () => {
    const id = "reg-stored";
    const c = await TestClient.connected(id, 5, { sessionExpiryInterval: 300 });
    expect(await rowsOf(id)).toEqual({ clean: [], stored: [id] });
    // Ending the session (DISCONNECT with expiry 0) makes its Session forget it.
    c.send({ type: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } }, 5);
    expect((await until([id], (r) => r.stored.length === 0))[0]).toEqual({ clean: [], stored: [] });
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
    expect((await until([id], (r) => r.clean.length === 0))[0]?.clean).toEqual([]);
  });
});
