/**
 * A session moves between its holders a page at a time (DESIGN.md invariant 6):
 * a queue far larger than one call between objects may carry (32 MiB on
 * Cloudflare, enforced here by the objects themselves) reaches the client whole
 * and in order when it comes back, and when it moves to another connection.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, unique } from "../support/clients.ts";

const MIB = 2 ** 20;
let broker: RunningBroker;

beforeAll(async () => {
  broker = await startBroker({
    vars: {
      ALLOW_ANONYMOUS: "true",
      // Room for a 1 MiB payload with its topic and header, and a queue of 1,000.
      MAX_PACKET_SIZE: String(MIB + 1024),
      MAX_QUEUED_MESSAGES: "1000",
      GATEWAYS: "2",
      TOPIC_SHARDS: "2",
    },
  });
}, 90_000);

afterAll(async () => {
  await broker?.stop();
});

/** A 1 MiB payload whose first four bytes are its number. */
function numbered(i: number): Buffer {
  const payload = Buffer.alloc(MIB, 0x6d);
  payload.writeUInt32BE(i, 0);
  return payload;
}

/**
 * Publishes `n` numbered 1 MiB QoS 1 messages, `window` awaiting PUBACK at a time;
 * fails at once if the broker ends the publisher (MQTT.js leaves its publishes
 * waiting then), with the reason code it gave.
 */
async function publishNumbered(pub: MqttClient, topic: string, n: number, window = 16): Promise<void> {
  let next = 0;
  let reason = "none";
  pub.on("disconnect", (packet) => {
    reason = `0x${(packet.reasonCode ?? 0).toString(16)}`;
  });
  const ended = new Promise<never>((_, reject) =>
    pub.once("close", () => reject(new Error(`publisher ended after ${next} sent (DISCONNECT ${reason})`))),
  );
  // It ends when the test ends it, too, after the race: not a failure then.
  ended.catch(() => {});
  await Promise.race([
    ended,
    Promise.all(
      Array.from({ length: window }, async () => {
        while (next < n) {
          const i = next++;
          await pub.publishAsync(topic, numbered(i), { qos: 1 });
        }
      }),
    ),
  ]);
}

/** Resolves with the numbers of the first `n` messages, in arrival order, once all came. */
function collectNumbers(client: MqttClient, n: number, timeoutMs: number): Promise<number[]> {
  const seen: number[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`got ${seen.length} of ${n}; last ${seen.at(-1)}`)),
      timeoutMs,
    );
    client.on("message", (_topic, payload) => {
      if (payload.length !== MIB) {
        clearTimeout(timer);
        reject(new Error(`payload of ${payload.length} bytes`));
        return;
      }
      seen.push(payload.readUInt32BE(0));
      if (seen.length === n) {
        clearTimeout(timer);
        resolve(seen);
      }
    });
  });
}

const persistent = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 3600 } };

describe("a persistent session's queue, a page at a time", () => {
  it("1,000 queued 1 MiB messages (1 GiB) reach the client when it reconnects, every one and in order", async () => {
    const clientId = unique("big-queue");
    const topic = `${unique("queue")}/t`;
    const first = await connect(broker.url, { ...persistent, clientId });
    await first.subscribeAsync(topic, { qos: 1 });
    await first.endAsync();

    const pub = await connect(broker.url, { protocolVersion: 5, clientId: unique("big-pub") });
    await publishNumbered(pub, topic, 1000);
    await pub.endAsync();

    const back = await connect(broker.url, { ...persistent, clientId });
    const numbers = await collectNumbers(back, 1000, 240_000);
    expect(numbers).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    await back.endAsync();
  }, 420_000);

  it("200 unacknowledged 1 MiB messages move with the session when another connection takes it over", async () => {
    const clientId = unique("big-takeover");
    const topic = `${unique("takeover")}/t`;
    // Receives nothing: it never acknowledges, so everything stays queued for it.
    const stalled = await connect(broker.url, {
      ...persistent,
      clientId,
      properties: { ...persistent.properties, receiveMaximum: 1 },
    });
    await stalled.subscribeAsync(topic, { qos: 1 });
    stalled.handleMessage = () => {};

    const pub = await connect(broker.url, { protocolVersion: 5, clientId: unique("big-pub") });
    await publishNumbered(pub, topic, 200);
    await pub.endAsync();

    const taker = await connect(broker.url, { ...persistent, clientId });
    // The first was in flight to the stalled connection: sent again, with DUP.
    const numbers = await collectNumbers(taker, 200, 120_000);
    expect(numbers).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await taker.endAsync();
    stalled.end(true);
  }, 300_000);
});
