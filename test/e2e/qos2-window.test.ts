/**
 * The bound on QoS 2 packet ids a client leaves open by withholding PUBREL: each
 * is a row at the gateway (4.3.3) and holds no inbound bytes, so the byte bounds
 * never stop it. The Receive Maximum (MQTT-3.3.4-7, the client's rule; 3.1.1 has
 * none, the same bound applies) is checked before an id is stored in every path:
 * a routed message's and a 3.1.1 ACL-denied one's (acknowledged and dropped,
 * MQTT-3.3.5-2, its id kept until PUBREL all the same).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReasonCode } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { RawClient, unique } from "../support/clients.ts";

const RECEIVE_MAXIMUM = 4;
let broker: RunningBroker;

beforeAll(async () => {
  const acl = [{ user: "*", publish: ["open/#"], subscribe: ["#"] }];
  broker = await startBroker({
    vars: {
      TOPIC_SHARDS: "1",
      GATEWAYS: "1",
      ALLOW_ANONYMOUS: "true",
      RECEIVE_MAXIMUM: String(RECEIVE_MAXIMUM),
      ACL: JSON.stringify(acl),
    },
  });
});

afterAll(async () => {
  await broker?.stop();
});

/** QoS 2 PUBLISH packets 1..n, PUBREL withheld; the PUBRECs answered until the connection ended. */
async function withholdPubrel(c: RawClient, topic: string, n: number): Promise<number[]> {
  const answered: number[] = [];
  for (let packetId = 1; packetId <= n; packetId++) {
    c.send({
      type: "publish",
      topic,
      qos: 2,
      dup: false,
      retain: false,
      packetId,
      payload: new Uint8Array([1]),
    });
    try {
      answered.push((await c.next("pubrec")).packetId);
    } catch {
      break;
    }
  }
  return answered;
}

describe("QoS 2 with PUBREL withheld, past RECEIVE_MAXIMUM", () => {
  for (const [what, topic] of [
    ["routed", "open"],
    ["denied by the ACL (acknowledged and dropped)", "closed"],
  ] as const) {
    it(`3.1.1, ${what}: ${RECEIVE_MAXIMUM} ids are kept, the next PUBLISH ends the connection`, async () => {
      const c = await RawClient.open(broker.url, 4);
      expect((await c.connect(unique("q2w"))).reasonCode).toBe(0);
      const answered = await withholdPubrel(c, `${topic}/${unique("t")}`, RECEIVE_MAXIMUM + 1);
      expect(answered).toEqual([1, 2, 3, 4]);
      // 0x93, the client's violation: 1002 Protocol Error (broker/protocol/close.ts closeCodeOf).
      expect((await c.closed).code).toBe(1002);
      expect(c.drain()).toEqual([]);
    });
  }

  it("5.0: the PUBLISH past Receive Maximum gets DISCONNECT 0x93", async () => {
    const c = await RawClient.open(broker.url, 5);
    const connack = await c.connect(unique("q2w5"));
    expect(connack.properties?.receiveMaximum).toBe(RECEIVE_MAXIMUM);
    const answered = await withholdPubrel(c, `open/${unique("t")}`, RECEIVE_MAXIMUM + 1);
    expect(answered).toEqual([1, 2, 3, 4]);
    expect((await c.next("disconnect")).reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
    await c.closed;
  });
});
