/**
 * Inside workerd: a gateway that restarts (its sockets gone, its storage still
 * listing their clients) holds its persistent sessions for RESUME_GRACE_MS, and a
 * client that comes back to it within that time resumes its session where it is:
 * no call to a shard (its filters stay registered for this gateway), no park at its
 * Session and no switch back; the messages that arrived meanwhile wait in its rows
 * and come in order after CONNACK (issue 25: reconnect storms). Past the grace, the
 * sessions are parked at their Sessions as before.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { BrokerConfig } from "../../broker/config.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import type { ShardStub } from "../../durable-objects/stubs.ts";
import type { Env } from "../../worker/env.ts";
import { connectPacket } from "../support/packets.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The parts of a Gateway instance this test looks into (private there). */
interface Inside {
  config: BrokerConfig;
  links: {
    shard: (index: number) => ShardStub;
    session: (id: string, call: unknown) => Promise<unknown>;
  };
  reconcile(): void;
}

/** Counts the calls the gateway makes to shards and Sessions from now on (claims go through the Registry). */
async function countCalls(graceMs: number) {
  const seen = { shard: 0, session: 0 };
  await runInDurableObject(gateway(), (instance: Gateway) => {
    const inside = instance as unknown as Inside;
    inside.config.resumeGraceMs = graceMs;
    const session = inside.links.session.bind(inside.links);
    inside.links.session = (id, call) => {
      seen.session++;
      return session(id, call);
    };
    const shard = inside.links.shard.bind(inside.links);
    inside.links.shard = (index) => {
      const stub = shard(index);
      return new Proxy(stub, {
        get: (target, key) => {
          const value = Reflect.get(target, key);
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            seen.shard++;
            return Reflect.apply(value, target, args);
          };
        },
      });
    };
    inside.reconcile();
  });
  return seen;
}

async function connectedPersistent(ids: string[]): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (const id of ids) {
    const c = await TestClient.connected(id, 5, { sessionExpiryInterval: 300 });
    await c.subscribe(`resume/${id}`);
    clients.push(c);
  }
  return clients;
}

/** A client of `ids` comes back: CONNECT without Clean Start, its CONNACK. */
async function back(id: string): Promise<{ client: TestClient; sessionPresent: boolean }> {
  const client = await TestClient.open(5);
  client.send(connectPacket(id, 5, { cleanStart: false, properties: { sessionExpiryInterval: 300 } }), 5);
  const connack = await client.next("connack");
  expect(connack.reasonCode ?? 0).toBe(0);
  return { client, sessionPresent: connack.sessionPresent };
}

/** Publishes `payloads` at QoS 1 to each client's topic from a clean client, each acknowledged. */
async function publishTo(ids: string[], payloads: string[]): Promise<void> {
  const pub = await TestClient.connected(`resume-pub-${crypto.randomUUID()}`, 5);
  let packetId = 1;
  for (const id of ids)
    for (const payload of payloads) {
      pub.send(
        {
          type: "publish",
          topic: `resume/${id}`,
          payload: new TextEncoder().encode(payload),
          qos: 1,
          dup: false,
          retain: false,
          packetId: packetId++,
        },
        5,
      );
      await pub.next("puback");
    }
  pub.ws.close();
}

async function receives(client: TestClient, topic: string, payloads: string[]): Promise<void> {
  const got: string[] = [];
  for (const _ of payloads) {
    const p = await client.next("publish");
    expect(p.topic).toBe(topic);
    got.push(text(p.payload));
    client.send({ type: "puback", packetId: p.packetId as number }, 5);
  }
  expect(got).toEqual(payloads);
}

describe("a gateway's restart, its persistent clients coming back to it", () => {
  it("resumes their sessions where they are within RESUME_GRACE_MS: no shard call, no Session call, messages kept in order", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `resume-${i}`);
    await connectedPersistent(ids);
    // The restart: the object's memory and its sockets are gone, its storage is not.
    await evictDurableObject(gateway(), { webSockets: "close" });
    const seen = await countCalls(30_000);
    // Messages for them while they are away (a shard call each: the publisher's).
    await publishTo(ids, ["m1", "m2", "m3"]);
    seen.shard = 0;
    seen.session = 0;
    const resumed: TestClient[] = [];
    for (const id of ids) {
      const { client, sessionPresent } = await back(id);
      // MQTT-3.2.2-3 (5.0): the session is present; its messages follow in order (MQTT-4.6.0-6 at QoS 1).
      expect(sessionPresent).toBe(true);
      await receives(client, `resume/${id}`, ["m1", "m2", "m3"]);
      resumed.push(client);
    }
    // Nothing was parked at a Session, switched back or registered again at a shard.
    expect(seen).toEqual({ shard: 0, session: 0 });
    for (const c of resumed) c.ws.close();
  }, 60_000);

  it("parks them at their Sessions once the grace is over, and they find their messages there", async () => {
    const ids = Array.from({ length: 4 }, (_, i) => `resume-late-${i}`);
    await connectedPersistent(ids);
    await evictDurableObject(gateway(), { webSockets: "close" });
    const seen = await countCalls(100);
    await publishTo(ids, ["m1"]);
    await new Promise((r) => setTimeout(r, 150));
    // The alarm set for the grace's end hands them off.
    await runDurableObjectAlarm(gateway());
    const deadline = Date.now() + 10_000;
    let left = -1;
    while (left !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      left = await runInDurableObject(gateway(), (instance: Gateway) => instance.store.allClients().length);
    }
    expect(left).toBe(0);
    // One park each.
    expect(seen.session).toBe(ids.length);
    await publishTo(ids, ["m2"]);
    for (const id of ids) {
      const { client, sessionPresent } = await back(id);
      expect(sessionPresent).toBe(true);
      await receives(client, `resume/${id}`, ["m1", "m2"]);
      client.ws.close();
    }
  }, 60_000);
});
