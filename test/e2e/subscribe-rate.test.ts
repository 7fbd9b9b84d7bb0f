/**
 * SUBSCRIBE and UNSUBSCRIBE are charged to a token bucket per connection
 * (SUBSCRIBE_RATE, SUBSCRIBE_BURST): each writes rows, calls shards and, with
 * Retain Handling 0, sends retained messages again. Past the burst a client is
 * shaped, not ended: every SUBSCRIBE is acknowledged (MQTT-3.8.4-1), later.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { RawClient, unique } from "../support/clients.ts";

const RATE = 5;
const BURST = 10;
let broker: RunningBroker;

beforeAll(async () => {
  broker = await startBroker({
    vars: {
      TOPIC_SHARDS: "1",
      GATEWAYS: "1",
      ALLOW_ANONYMOUS: "true",
      SUBSCRIBE_RATE: String(RATE),
      SUBSCRIBE_BURST: String(BURST),
    },
  });
});

afterAll(async () => {
  await broker?.stop();
});

describe("SUBSCRIBE past SUBSCRIBE_BURST", () => {
  it("acknowledges every one, no more of them by time T than the burst and RATE a second since", async () => {
    const c = await RawClient.open(broker.url, 5);
    expect((await c.connect(unique("subrate"))).reasonCode).toBe(0);
    const n = BURST + 15;
    const filter = `${unique("t")}/#`;
    const start = performance.now();
    for (let packetId = 1; packetId <= n; packetId++) {
      const options = {
        qos: 0 as const,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0 as const,
      };
      if (packetId % 2 === 0) c.send({ type: "unsubscribe", packetId, topicFilters: [filter] });
      else c.send({ type: "subscribe", packetId, subscriptions: [{ topicFilter: filter, ...options }] });
    }
    const acked: number[] = [];
    for (let k = 1; k <= n; k++) {
      const ack = await c.next(k % 2 === 0 ? "unsuback" : "suback", 15_000);
      // The k-th answer came at `elapsed`: the bucket (made at the first SUBSCRIBE,
      // after `start`) had at most BURST tokens and RATE a second since.
      const elapsed = (performance.now() - start) / 1000;
      expect(k).toBeLessThanOrEqual(BURST + RATE * elapsed + 1);
      acked.push(ack.packetId);
    }
    expect(acked).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // A PINGREQ after them is answered: the connection carried on.
    c.send({ type: "pingreq" });
    await c.next("pingresp");
    expect(c.isClosed).toBe(false);
    c.close();
  }, 30_000);
});
