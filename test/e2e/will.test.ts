/** Last Will (3.1.1 3.1.2.5, 5.0 3.1.2.5): published on abnormal ends only. */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import { connect, dropConnection, Inbox, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const open: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function watcher(topic: string, version: 4 | 5) {
  const w = await connect(url, { protocolVersion: version, clientId: unique("watch") });
  open.push(w);
  const inbox = new Inbox(w);
  await w.subscribeAsync(topic, { qos: 2 });
  return inbox;
}

describe("Last Will and a 5.0 DISCONNECT with a code other than 0x00", () => {
  for (const reasonCode of [0x04, 0x80]) {
    it(`0x${reasonCode.toString(16).padStart(2, "0")}: the will is published (MQTT-3.1.2-8 discards it only for 0x00)`, async () => {
      const topic = unique("will");
      const inbox = await watcher(topic, 5);
      const raw = await RawClient.open(url, 5);
      raw.sendConnect(unique("leaving"), {
        will: { topic, payload: new TextEncoder().encode("gone"), qos: 1, retain: false },
      });
      await raw.next("connack");
      raw.send({ type: "disconnect", reasonCode });
      await raw.closed;
      const [m] = await inbox.waitFor(1);
      expect(m).toMatchObject({ topic, payload: "gone" });
    });
  }
});

describe.each([4, 5] as const)("Last Will, protocol %i", (version) => {
  it("is published when the socket drops (MQTT-3.1.2-8), with its QoS", async () => {
    const topic = unique("will");
    const inbox = await watcher(topic, version);
    const c = await connect(url, {
      protocolVersion: version,
      clientId: unique("dying"),
      will: { topic, payload: Buffer.from("gone"), qos: 1, retain: false },
    });
    dropConnection(c);
    const [m] = await inbox.waitFor(1);
    expect(m).toMatchObject({ topic, payload: "gone" });
    expect(m?.packet.qos).toBe(1);
  });

  it("is not published after a normal DISCONNECT (MQTT-3.1.2-10, MQTT-3.14.4-3)", async () => {
    const topic = unique("will");
    const inbox = await watcher(topic, version);
    const clientId = unique("polite");
    const c = await connect(url, {
      protocolVersion: version,
      clientId,
      will: { topic, payload: Buffer.from("gone"), qos: 1, retain: false },
    });
    await c.endAsync();
    // The marker: the same client id connects again, which its registry grants
    // only once the first connection has ended (will or no will), and drops.
    const again = await connect(url, {
      protocolVersion: version,
      clientId,
      will: { topic, payload: Buffer.from("marker"), qos: 1, retain: false },
    });
    dropConnection(again);
    expect(await inbox.until("marker")).toEqual([]);
  });

  it("is published on keep-alive expiry", async () => {
    const topic = unique("will");
    const inbox = await watcher(topic, version);
    const raw = await RawClient.open(url, version);
    raw.sendConnect(unique("silent"), {
      keepAlive: 1,
      will: { topic, payload: new TextEncoder().encode("timeout"), qos: 0, retain: false },
    });
    await raw.next("connack");
    const [m] = await inbox.waitFor(1, 10_000);
    expect(m?.payload).toBe("timeout");
  });

  it("is published on a protocol error (MQTT-3.1.2-8)", async () => {
    const topic = unique("will");
    const inbox = await watcher(topic, version);
    const raw = await RawClient.open(url, version);
    raw.sendConnect(unique("rude"), {
      keepAlive: 60,
      will: { topic, payload: new TextEncoder().encode("violation"), qos: 1, retain: false },
    });
    await raw.next("connack");
    raw.send(Uint8Array.from([0x00, 0x00])); // reserved packet type 0
    await raw.closed;
    expect((await inbox.waitFor(1))[0]?.payload).toBe("violation");
  });

  it("honours will retain: a later subscriber gets it with RETAIN set (MQTT-3.1.2-17; 5.0 MQTT-3.1.2-15)", async () => {
    const topic = unique("will");
    // Live, it arrives once the shard has stored it (a retained message is stored first).
    const live = await watcher(topic, version);
    const c = await connect(url, {
      protocolVersion: version,
      clientId: unique("retained-will"),
      will: { topic, payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    dropConnection(c);
    expect((await live.waitFor(1))[0]?.payload).toBe("offline");
    const inbox = await watcher(topic, version);
    const [m] = await inbox.waitFor(1);
    expect(m?.payload).toBe("offline");
    expect(m?.packet.retain).toBe(true);
  });
});
