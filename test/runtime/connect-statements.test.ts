/**
 * Inside workerd: the SQL statements a clean connect runs where every reconnect
 * storm pays them, counted (not timed): its Registry reads the client id once
 * (the clean row and whether a Session holds it, in one statement) and writes its
 * row; the gateway reads a new session's outbound rows once (the window it builds
 * tells whether any message is in flight to send again).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { registryName } from "../../broker/routing.ts";
import type { ClaimRequest } from "../../durable-objects/contracts.ts";
import type { Env } from "../../worker/env.ts";
import { TestClient } from "../support/workerd-client.ts";

/** An anonymous clean session's claim on gateway-0. */
const cleanClaim = (clientId: string, connId: string): ClaimRequest => ({
  clientId,
  connId,
  owner: "anonymous",
  gateway: "gateway-0",
  cleanStart: true,
  persistent: false,
  expiry: 0,
});

const bindings = env as unknown as Env;

/** Counts the statements an object runs from now on, by their text. */
async function countStatements(stub: DurableObjectStub): Promise<string[]> {
  const seen: string[] = [];
  await runInDurableObject(stub, (_instance, state) => {
    const sql = state.storage.sql;
    const exec = sql.exec.bind(sql);
    vi.spyOn(sql, "exec").mockImplementation((query: string, ...bindings: unknown[]) => {
      seen.push(query.replace(/\s+/g, " ").trim());
      return exec(query, ...(bindings as SqlStorageValue[]));
    });
  });
  return seen;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("statements of a clean connect", () => {
  it("a registry answers a clean claim with one read and one row written", async () => {
    const id = "stmt-registry";
    const stub = bindings.REGISTRY.get(bindings.REGISTRY.idFromName(registryName(id)));
    // The registry's first claim also notes whether it predates registries (a meta row).
    await stub.claim(cleanClaim(`${id}-first`, "conn-0"));
    const seen = await countStatements(stub);
    expect(await stub.claim(cleanClaim(id, "conn-1"))).toMatchObject({
      granted: true,
      registrar: "registry",
      rowsWritten: 1,
    });
    // Two statements: the clean row and `stored` read at once, then the row written (three before).
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatch(/^SELECT .* FROM \(SELECT 1\) LEFT JOIN clean/);
    expect(seen[1]).toMatch(/^INSERT INTO clean/);
    expect(await stub.close([{ clientId: id, connId: "conn-1" }])).toBe(1);
  });

  it("the gateway reads a new clean session's outbound rows once", async () => {
    const gateway = bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
    // A first client wakes the gateway (its reconcile, its schema) before counting.
    const first = await TestClient.connected("stmt-gateway-first", 4);
    const seen = await countStatements(gateway);
    const c = await TestClient.connected("stmt-gateway", 4);
    const outbound = seen.filter((q) => / FROM outbound /.test(q));
    // The window's read; the in-flight read that followed it found nothing (two before).
    expect(outbound).toHaveLength(1);
    expect(outbound[0]).toMatch(/^SELECT seq, packet_id AS packetId/);
    first.ws.close();
    c.ws.close();
  });
});
