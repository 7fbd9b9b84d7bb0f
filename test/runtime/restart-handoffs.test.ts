/**
 * Inside workerd: a gateway that restarts (its sockets gone, its storage still
 * listing their clients) hands their sessions off without starting a chain of
 * calls per client at once: persistent sessions are parked at their Sessions at
 * most ORPHAN_HANDOFFS at a time, and the filters of every orphan leave the
 * shards in a few batched calls, not one a client (issue 25: reconnect storms).
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ORPHAN_HANDOFFS } from "../../durable-objects/gateway/handover.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import type { ShardStub } from "../../durable-objects/stubs.ts";
import type { Env } from "../../worker/env.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));

/** The parts of a Gateway instance this test looks into (private there). */
interface Inside {
  config: { resumeGraceMs: number };
  handover: { deps: { session: (id: string, call: unknown) => Promise<unknown> } };
  links: { shard: (index: number) => ShardStub };
  reconcile(): void;
}

describe("a gateway's restart", () => {
  it("parks at most ORPHAN_HANDOFFS sessions at once and unregisters the orphans' filters in batched calls", async () => {
    const persistent = Array.from({ length: ORPHAN_HANDOFFS + 16 }, (_, i) => `orphan-p-${i}`);
    const clean = Array.from({ length: 60 }, (_, i) => `orphan-c-${i}`);
    const clients: TestClient[] = [];
    for (const id of persistent) {
      const c = await TestClient.connected(id, 5, { sessionExpiryInterval: 300 });
      await c.subscribe(`orphan/${id}`);
      clients.push(c);
    }
    for (const id of clean) {
      const c = await TestClient.connected(id, 4);
      await c.subscribe(`orphan/${id}`);
      clients.push(c);
    }
    // The restart: the object's memory and its sockets are gone, its storage is not.
    await evictDurableObject(gateway(), { webSockets: "close" });

    const seen = { sessionCalls: 0, inFlight: 0, maxInFlight: 0, unsubscribes: 0 };
    await runInDurableObject(gateway(), (instance: Gateway) => {
      const inside = instance as unknown as Inside;
      // Parked at once, not held for their clients to resume them here (restart-resume.test.ts).
      inside.config.resumeGraceMs = 0;
      const deps = inside.handover.deps;
      const session = deps.session;
      deps.session = async (id, call) => {
        seen.sessionCalls++;
        seen.maxInFlight = Math.max(seen.maxInFlight, ++seen.inFlight);
        try {
          return await session(id, call);
        } finally {
          seen.inFlight--;
        }
      };
      const shard = inside.links.shard.bind(inside.links);
      inside.links.shard = (index) => {
        const stub = shard(index);
        return {
          subscribe: (...args: Parameters<ShardStub["subscribe"]>) => stub.subscribe(...args),
          unsubscribe: (...args: Parameters<ShardStub["unsubscribe"]>) => {
            seen.unsubscribes++;
            return stub.unsubscribe(...args);
          },
        } as unknown as ShardStub;
      };
      expect(instance.store.allClients()).toHaveLength(persistent.length + clean.length);
      inside.reconcile();
    });
    const deadline = Date.now() + 20_000;
    let left = -1;
    while (left !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      left = await runInDurableObject(gateway(), (instance: Gateway) => instance.store.allClients().length);
    }
    expect(left).toBe(0);
    // Every persistent session parked at its Session, never more than the bound at once.
    expect(seen.sessionCalls).toBe(persistent.length);
    expect(seen.maxInFlight).toBe(ORPHAN_HANDOFFS);
    // 1 shard here: each call carries what piled up while the one before was under way.
    expect(seen.unsubscribes).toBeGreaterThan(0);
    expect(seen.unsubscribes).toBeLessThanOrEqual(10);
    // Each parked session is present when its client comes back.
    const back = await TestClient.open(5);
    back.send(
      {
        type: "connect",
        protocolVersion: 5,
        protocolName: "MQTT",
        clientId: persistent[0] as string,
        cleanStart: false,
        keepAlive: 60,
        properties: { sessionExpiryInterval: 300 },
      },
      5,
    );
    expect((await back.next("connack")).sessionPresent).toBe(true);
    back.ws.close();
  }, 60_000);
});
