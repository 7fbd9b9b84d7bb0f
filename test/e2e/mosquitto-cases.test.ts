/**
 * Cases from Eclipse Mosquitto's own broker tests (test/broker/*.py), written anew
 * against the raw client and run over WebSocket, where Nimbus behaved differently
 * from what the specification requires.
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { type ConnectPacket, ReasonCode } from "../../mqtt/index.ts";
import { offline } from "../support/broker.ts";
import { connect, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const httpUrl = inject("brokerHttpUrl");
const vars = inject("brokerVars");
const raws: RawClient[] = [];

afterEach(() => {
  for (const r of raws.splice(0)) r.terminate();
});

async function raw(version: 4 | 5, clientId: string, extra: Partial<ConnectPacket> = {}) {
  const r = await RawClient.open(url, version);
  raws.push(r);
  r.sendConnect(clientId, extra);
  const connack = await r.next("connack");
  return { r, connack };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("03-publish-c2b-disconnect-qos2: a QoS 2 PUBLISH resent after a reconnect", () => {
  for (const version of [4, 5] as const) {
    it(`MQTT ${version === 4 ? "3.1.1" : "5.0"}: PUBREC again, then PUBCOMP for the PUBREL, and the message delivered once (MQTT-4.3.3-10, MQTT-4.4.0-1)`, async () => {
      const id = unique("c2b-qos2");
      const topic = unique("c2b-qos2-topic");
      const session: Partial<ConnectPacket> =
        version === 5
          ? { cleanStart: false, properties: { sessionExpiryInterval: 60 } }
          : { cleanStart: false };
      const reader = await connect(url, { protocolVersion: 5, clientId: unique("c2b-reader") });
      const got: string[] = [];
      reader.on("message", (_t, payload) => got.push(payload.toString()));
      await reader.subscribeAsync(topic, { qos: 2 });

      const first = await raw(version, id, { ...session, cleanStart: version === 5 });
      first.r.send({
        type: "publish",
        topic,
        qos: 2,
        dup: false,
        retain: false,
        packetId: 312,
        payload: bytes("message"),
      });
      const rec = await first.r.next("pubrec");
      expect(rec.packetId).toBe(312);
      first.r.terminate();
      await offline(httpUrl, vars.API_TOKEN as string, id);

      const again = await raw(version, id, session);
      expect(again.connack.sessionPresent).toBe(true);
      again.r.send({
        type: "publish",
        topic,
        qos: 2,
        dup: true,
        retain: false,
        packetId: 312,
        payload: bytes("message"),
      });
      const rec2 = await again.r.next("pubrec");
      expect(rec2.packetId).toBe(312);
      again.r.send({ type: "pubrel", packetId: 312 });
      const comp = await again.r.next("pubcomp");
      expect(comp.packetId).toBe(312);
      if (version === 5) expect(comp.reasonCode ?? ReasonCode.Success).toBe(ReasonCode.Success);
      // Exactly once: a marker from the same publisher comes after it, and the message came once.
      again.r.send({
        type: "publish",
        topic,
        qos: 1,
        dup: false,
        retain: false,
        packetId: 313,
        payload: bytes("marker"),
      });
      await again.r.next("puback");
      const deadline = Date.now() + 10_000;
      while (!got.includes("marker") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(got).toEqual(["message", "marker"]);
      await reader.endAsync();
    });
  }
});

describe("12-prop-maximum-packet-size-publish: a message larger than the client's Maximum Packet Size", () => {
  for (const qos of [1, 2] as const) {
    for (const from of ["another client", "the subscriber itself"] as const) {
      it(`QoS ${qos}, published by ${from}: is discarded as if sent and the next one is delivered (MQTT-3.1.2-25)`, async () => {
        const topic = unique(`mps-${qos}`);
        const { r } = await raw(5, unique("mps-sub"), { properties: { maximumPacketSize: 128 } });
        expect((await r.subscribe(topic, qos)).reasonCodes).toEqual([qos]);
        const pub = from === "another client" ? (await raw(5, unique("mps-pub"))).r : r;
        for (const [packetId, payload] of [
          [2, new Uint8Array(200)],
          [3, bytes("small")],
        ] as const) {
          pub.send({ type: "publish", topic, qos, dup: false, retain: false, packetId, payload });
          if (qos === 1) expect((await pub.next("puback")).packetId).toBe(packetId);
          else {
            expect((await pub.next("pubrec")).packetId).toBe(packetId);
            pub.send({ type: "pubrel", packetId });
            expect((await pub.next("pubcomp")).packetId).toBe(packetId);
          }
        }
        const got = await r.next("publish");
        expect(text(got.payload)).toBe("small");
      });
    }
  }
});
