/**
 * An ordinary burst, with the settings a new user starts with: a device flushing
 * its backlog, or a page restoring its state, publishes hundreds or thousands of
 * QoS 1 messages at once. Past PUBLISH_RATE (100 a second, a burst of 200) the
 * client is slowed down, not disconnected: its acknowledgements wait, and every
 * message arrives, in order (MQTT-4.6.0-6: an Ordered Topic's messages reach
 * subscribers in the order they were received). MQTT.js, of both majors, at both
 * protocol levels: neither keeps to a server's Receive Maximum, so they put the
 * whole burst on the wire at once.
 */
import type { MqttClient } from "mqtt";
import mqtt4 from "mqtt4";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayCounters, type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, unique } from "../support/clients.ts";

const API_TOKEN = "burst-token";
let broker: RunningBroker;

beforeAll(async () => {
  // Defaults but for anonymous access and the API (to read the counters).
  broker = await startBroker({ vars: { ALLOW_ANONYMOUS: "true", API_TOKEN } });
}, 90_000);

afterAll(async () => {
  await broker?.stop();
});

type Library = "MQTT.js 5" | "MQTT.js 4";

/** A publisher of either MQTT.js major: publishes `n` QoS 1 messages at once, resolves once all are acknowledged. */
interface Publisher {
  burst(topic: string, n: number): Promise<void>;
  /** Whether the broker closed the connection or sent DISCONNECT. */
  readonly ended: boolean;
  end(): Promise<void>;
}

async function publisher(library: Library, protocolVersion: 4 | 5): Promise<Publisher> {
  const options = { protocolVersion, clientId: unique(`burst-${library.at(-1)}-${protocolVersion}`) };
  let ended = false;
  if (library === "MQTT.js 5") {
    const c = await connect(broker.url, options);
    c.on("close", () => {
      ended = true;
    });
    return {
      burst: async (topic, n) => {
        await Promise.all(Array.from({ length: n }, (_, i) => c.publishAsync(topic, String(i), { qos: 1 })));
      },
      get ended() {
        return ended;
      },
      end: () => c.endAsync(),
    };
  }
  const c = mqtt4.connect(broker.url, { ...options, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
  });
  c.on("close", () => {
    ended = true;
  });
  return {
    burst: (topic, n) =>
      Promise.all(
        Array.from(
          { length: n },
          (_, i) =>
            new Promise<void>((resolve, reject) =>
              c.publish(topic, String(i), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
            ),
        ),
      ).then(() => undefined),
    get ended() {
      return ended;
    },
    end: () => new Promise<void>((resolve) => c.end(false, {}, () => resolve())),
  };
}

/** A QoS 1 subscriber that records the payloads of `topic` in the order they arrive. */
async function subscriber(topic: string): Promise<{ client: MqttClient; got: number[] }> {
  const client = await connect(broker.url, { protocolVersion: 5, clientId: unique("burst-sub") });
  const got: number[] = [];
  client.on("message", (t, payload) => {
    if (t === topic) got.push(Number(payload.toString()));
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, got };
}

async function waitUntil(what: () => boolean, timeoutMs: number, describeIt: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describeIt()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const dropped = (c: Record<string, number>) =>
  Object.entries(c)
    .filter(([k]) => k.startsWith("dropped"))
    .reduce((n, [, v]) => n + v, 0);

type Client = [Library, 4 | 5];
const MQTTJS_5: Client[] = [
  ["MQTT.js 5", 4],
  ["MQTT.js 5", 5],
];
const MQTTJS_4: Client[] = [
  ["MQTT.js 4", 4],
  ["MQTT.js 4", 5],
];

/** Publishes `n` at once from each client side by side; checks every message arrived, in order. */
async function burstFromEach(CLIENTS: Client[], n: number, timeoutMs: number): Promise<void> {
  const before = await gatewayCounters(broker.httpUrl, API_TOKEN);
  const runs = await Promise.all(
    CLIENTS.map(async ([library, version]) => {
      const topic = unique("burst");
      const sub = await subscriber(topic);
      const pub = await publisher(library, version);
      return { library, version, topic, sub, pub };
    }),
  );
  const started = Date.now();
  await Promise.all(runs.map((r) => r.pub.burst(r.topic, n)));
  const took = Date.now() - started;
  const last = await gatewayCounters(broker.httpUrl, API_TOKEN);
  for (const r of runs) {
    await waitUntil(
      () => r.sub.got.length >= n,
      timeoutMs,
      () => `${r.library} ${r.version}: ${r.sub.got.length} of ${n}, counters ${JSON.stringify(last)}`,
    );
    // Every message once, in the order published.
    expect(r.sub.got, `${r.library}, protocol ${r.version}`).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(r.pub.ended, `${r.library}, protocol ${r.version} was disconnected`).toBe(false);
  }
  const after = await gatewayCounters(broker.httpUrl, API_TOKEN);
  expect((after.messages_in ?? 0) - (before.messages_in ?? 0)).toBe(CLIENTS.length * n);
  expect(dropped(after) - dropped(before)).toBe(0);
  // Shaped, not merely accepted: past a burst of 200, 100 a second for each client.
  if (n > 200) expect(took).toBeGreaterThanOrEqual(((n - 200) / 100) * 1000 * 0.9);
  await Promise.all(runs.flatMap((r) => [r.pub.end(), r.sub.client.endAsync()]));
}

describe("a burst of QoS 1 past PUBLISH_RATE, default settings", () => {
  it("300 at once from MQTT.js 4 and 5, at protocol levels 4 and 5: all arrive in order, nobody is disconnected", async () => {
    await burstFromEach([...MQTTJS_5, ...MQTTJS_4], 300, 30_000);
  }, 60_000);

  // MQTT.js in Node writes a QoS 1 PUBLISH as 6 or 7 WebSocket frames, each an
  // event for the gateway: two clients' 5,000 are 70,000 events, which the gateway
  // works through before anything else. Two at a time, not four.
  it("5,000 at once from MQTT.js 5, at protocol levels 4 and 5: all arrive in order, nobody is disconnected", async () => {
    await burstFromEach(MQTTJS_5, 5_000, 30_000);
  }, 150_000);

  it("5,000 at once from MQTT.js 4, at protocol levels 4 and 5: all arrive in order, nobody is disconnected", async () => {
    await burstFromEach(MQTTJS_4, 5_000, 30_000);
  }, 150_000);
});
