/**
 * Inside workerd: a Gateway's in-memory state is discarded mid-session (the object
 * is evicted, its WebSockets hibernated) and every connection carries on, because
 * what it needs lives in attachments and SQLite (DESIGN.md invariant 4).
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { QUEUE_START } from "../../broker/session-state.ts";
import { SPILL_AFTER_MS } from "../../durable-objects/gateway/outbound.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import type { Env } from "../../worker/env.ts";
import { until } from "../support/until.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));

describe("Gateway eviction with hibernated WebSockets", () => {
  it("keeps every connection working after the object's memory is discarded", async () => {
    const sub = await TestClient.connected("hib-sub", 5, { sessionExpiryInterval: 300 });
    await sub.subscribe("hib/#");
    const pub = await TestClient.connected("hib-pub", 4);

    // Mark the live instance, then evict it: a new instance must not carry the mark.
    await runInDurableObject(gateway(), (instance) => {
      (instance as unknown as { marker?: string }).marker = "before";
    });
    await evictDurableObject(gateway(), { webSockets: "hibernate" });

    const payload = new TextEncoder().encode("after eviction");
    pub.send({ type: "publish", topic: "hib/a", payload, qos: 1, dup: false, retain: false, packetId: 9 }, 4);
    expect(await pub.next("puback")).toEqual({ type: "puback", packetId: 9 });
    const got = await sub.next("publish");
    expect(new TextDecoder().decode(got.payload)).toBe("after eviction");
    expect(got.qos).toBe(1);
    sub.send({ type: "puback", packetId: got.packetId as number }, 5);

    const marker = await runInDurableObject(
      gateway(),
      (instance) => (instance as unknown as { marker?: string }).marker,
    );
    expect(marker).toBeUndefined();

    // The connections' protocol state survived: ping and a second CONNECT rule.
    sub.send({ type: "pingreq" }, 5);
    await sub.next("pingresp");
    await evictDurableObject(gateway(), { webSockets: "hibernate" });
    pub.send(
      {
        type: "connect",
        protocolVersion: 4,
        protocolName: "MQTT",
        clientId: "hib-pub",
        cleanStart: true,
        keepAlive: 60,
      },
      4,
    );
    // MQTT-3.1.0-2: still known as connected after eviction, so a second CONNECT closes it.
    await new Promise<void>((resolve) => pub.ws.addEventListener("close", () => resolve()));
    sub.ws.close();
  });
});

/** The outbound rows a client has in the gateway's storage. */
const storedOutbound = (clientId: string) =>
  runInDurableObject(
    gateway(),
    (instance) => (instance as Gateway).store.outboundPage(clientId, QUEUE_START).entries.length,
  );

describe("A clean session's messages in flight and waiting", () => {
  it("are held in memory while acknowledged promptly, and written before the object may hibernate", async () => {
    // One message in flight at a time: the next ones wait for room.
    const sub = await TestClient.connected("held-sub", 5, { receiveMaximum: 1 });
    await sub.subscribe("held/#");
    const pub = await TestClient.connected("held-pub", 4);
    const publish = async (n: number) => {
      const payload = new TextEncoder().encode(`m${n}`);
      pub.send(
        { type: "publish", topic: "held/a", payload, qos: 1, dup: false, retain: false, packetId: n },
        4,
      );
      await pub.next("puback");
    };
    const received = async () => {
      const p = await sub.next("publish");
      return { text: new TextDecoder().decode(p.payload), packetId: p.packetId as number };
    };
    const ack = async (packetId: number) => {
      sub.send({ type: "puback", packetId }, 5);
      sub.send({ type: "pingreq" }, 5);
      await sub.next("pingresp");
    };

    await publish(1);
    const first = await received();
    expect(first.text).toBe("m1");
    await publish(2); // waits: MQTT-3.3.4-9, Receive Maximum 1
    expect(await storedOutbound("held-sub")).toBe(0);

    // Held past SPILL_AFTER_MS: both written, so hibernation cannot lose them.
    expect(await until(() => storedOutbound("held-sub"), 2, SPILL_AFTER_MS + 5_000)).toBe(2);
    await evictDurableObject(gateway(), { webSockets: "hibernate" });

    await publish(3); // waits behind the stored m2, held in memory again
    await ack(first.packetId);
    const second = await received();
    expect(second.text).toBe("m2"); // MQTT 4.6: order kept across storage and memory
    await ack(second.packetId);
    const third = await received();
    expect(third.text).toBe("m3");
    await ack(third.packetId);
    expect(await storedOutbound("held-sub")).toBe(0);
    sub.ws.close();
    pub.ws.close();
  }, 30_000);

  it("never takes a packet id still in flight after the object woke up (MQTT-2.3.1-4)", async () => {
    const sub = await TestClient.connected("held-ids", 4);
    await sub.subscribe("ids/#");
    const pub = await TestClient.connected("ids-pub", 4);
    const publish = async (n: number) => {
      pub.send(
        {
          type: "publish",
          topic: "ids/a",
          payload: new Uint8Array([n]),
          qos: 1,
          dup: false,
          retain: false,
          packetId: n,
        },
        4,
      );
      await pub.next("puback");
      return (await sub.next("publish")).packetId as number;
    };
    const first = await publish(1);
    // Held past SPILL_AFTER_MS: written, with its packet id, before the eviction.
    expect(await until(() => storedOutbound("held-ids"), 1, SPILL_AFTER_MS + 5_000)).toBe(1);
    await evictDurableObject(gateway(), { webSockets: "hibernate" });
    expect(await publish(2)).not.toBe(first);
    sub.ws.close();
    pub.ws.close();
  }, 30_000);
});

describe("Gateway drain", () => {
  it("disconnects every client with DISCONNECT 0x8B Server shutting down", async () => {
    const a = await TestClient.connected("drain-a", 5);
    const closed = new Promise<void>((resolve) => a.ws.addEventListener("close", () => resolve()));
    const stub = gateway() as unknown as { disconnectAll(code?: number): Promise<number> };
    expect(await stub.disconnectAll()).toBeGreaterThanOrEqual(1);
    expect((await a.next("disconnect")).reasonCode).toBe(0x8b);
    await closed;
  });
});
