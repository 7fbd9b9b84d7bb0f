/**
 * clients/whole-packets.ts: MQTT.js in Node sends each packet as one WebSocket frame.
 * A loopback broker (the benchmark's frame counter) counts, for each packet it
 * receives, the frames that carried a part of it.
 */
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameCounter } from "../../bench/load/clients/frames.ts";
import { connectWholePackets } from "../../clients/whole-packets.ts";

let counter: FrameCounter;
beforeAll(async () => {
  counter = await FrameCounter.start();
});
afterAll(async () => {
  await counter.close();
});

function connected(client: MqttClient): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

/** Subscribes, publishes `payload` at QoS 1 to itself, waits for it; what it received. */
async function roundTrip(client: MqttClient, topic: string, payload: Buffer): Promise<Buffer> {
  await client.subscribeAsync(topic, { qos: 1 });
  const received = new Promise<Buffer>((resolve) => client.once("message", (_t, p) => resolve(p)));
  await client.publishAsync(topic, payload, { qos: 1 });
  return received;
}

describe("connectWholePackets", () => {
  it.each([4, 5] as const)(
    "MQTT %i: CONNECT, SUBSCRIBE, a 100 KiB QoS 1 PUBLISH and the PUBACK each arrive in one frame, and the message intact",
    async (protocolVersion) => {
      counter.take();
      const client = await connected(
        connectWholePackets(counter.url, {
          protocolVersion,
          clientId: `whole-${protocolVersion}`,
          reconnectPeriod: 0,
        }),
      );
      const payload = Buffer.alloc(100 * 1024, 0x61);
      expect((await roundTrip(client, "t/whole", payload)).equals(payload)).toBe(true);
      await client.endAsync();
      const { byType } = counter.take();
      for (const type of ["connect", "subscribe", "publish", "puback"] as const) {
        expect(byType[type], type).toEqual({ packets: 1, frames: 1 });
      }
    },
  );

  it("MQTT.js's own Node stream, for comparison, sends a QoS 1 PUBLISH as 6 frames (3.1.1)", async () => {
    counter.take();
    const client = await connected(mqtt.connect(counter.url, { clientId: "split", reconnectPeriod: 0 }));
    await roundTrip(client, "t/split", Buffer.from("hello"));
    await client.endAsync();
    expect(counter.take().byType.publish).toEqual({ packets: 1, frames: 6 });
  });

  it("a reconnect builds a new whole-packet stream: after the broker drops the socket, the second CONNECT is one frame too", async () => {
    counter.take();
    const client = connectWholePackets(counter.url, { clientId: "again", reconnectPeriod: 50 });
    await connected(client);
    const back = new Promise<void>((resolve) => client.once("connect", () => resolve()));
    counter.dropAll();
    await back;
    await client.endAsync();
    expect(counter.take().byType.connect).toEqual({ packets: 2, frames: 2 });
  });

  it("refuses a URL that is not ws:// or wss://", () => {
    expect(() => connectWholePackets("mqtt://127.0.0.1:1883")).toThrow("not a WebSocket URL");
  });
});
