/**
 * The broker restarts (every object loses its memory and every socket) in the
 * middle of QoS 1 and QoS 2 flows of persistent sessions. After reconnecting,
 * nothing acknowledged is lost and no QoS 2 message is delivered twice
 * (DESIGN.md invariants 1, 2 and 4).
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import type { PublishPacket } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { RawClient, unique } from "../support/clients.ts";

const text = (p: PublishPacket) => new TextDecoder().decode(p.payload);
const bytes = (s: string) => new TextEncoder().encode(s);
let broker: RunningBroker | undefined;

afterAll(async () => {
  await broker?.stop();
});

describe("gateway restart in the middle of QoS 1 and QoS 2 flows", () => {
  it("loses nothing and duplicates no QoS 2 message", async () => {
    const vars = inject("brokerVars");
    broker = await startBroker({ vars });
    const topic = unique("restart");
    const subId = unique("sub");
    const pubId = unique("pub");

    const sub = await RawClient.open(broker.url, 4);
    await sub.connect(subId, { cleanStart: false });
    await sub.subscribe(topic, 2);

    const pub = await RawClient.open(broker.url, 4);
    await pub.connect(pubId, { cleanStart: false });
    const publish = (packetId: number, payload: string, qos: 1 | 2) =>
      pub.send({ type: "publish", topic, payload: bytes(payload), qos, dup: false, retain: false, packetId });

    // m1: QoS 1, acknowledged to the publisher; the subscriber withholds PUBACK.
    publish(1, "m1", 1);
    await pub.next("puback");
    const m1 = await sub.next("publish");
    // m2: QoS 2, PUBREC to the publisher, whose PUBREL is not sent before the restart;
    // the subscriber answers PUBREC, gets PUBREL and withholds PUBCOMP.
    publish(2, "m2", 2);
    await pub.next("pubrec");
    const m2 = await sub.next("publish");
    sub.send({ type: "pubrec", packetId: m2.packetId as number });
    await sub.next("pubrel");
    // m3: QoS 2 completed by the publisher; the subscriber withholds PUBREC.
    publish(3, "m3", 2);
    await pub.next("pubrec");
    pub.send({ type: "pubrel", packetId: 3 });
    await pub.next("pubcomp");
    const m3 = await sub.next("publish");
    expect([text(m1), text(m2), text(m3)]).toEqual(["m1", "m2", "m3"]);

    await broker.stop();
    await Promise.all([sub.closed, pub.closed]);
    broker = await startBroker({ vars, persistTo: broker.persistTo });

    const sub2 = await RawClient.open(broker.url, 4);
    expect((await sub2.connect(subId, { cleanStart: false })).sessionPresent).toBe(true);
    // MQTT-4.4.0-1: unacknowledged PUBLISH again with DUP and the same ids; PUBREL again.
    const again1 = await sub2.next("publish");
    const again3 = await sub2.next("publish");
    const rel2 = await sub2.next("pubrel");
    expect(again1).toMatchObject({ packetId: m1.packetId, dup: true, qos: 1 });
    expect(text(again1)).toBe("m1");
    expect(again3).toMatchObject({ packetId: m3.packetId, dup: true, qos: 2 });
    expect(text(again3)).toBe("m3");
    expect(rel2.packetId).toBe(m2.packetId);
    sub2.send({ type: "puback", packetId: m1.packetId as number });
    sub2.send({ type: "pubcomp", packetId: m2.packetId as number });
    sub2.send({ type: "pubrec", packetId: m3.packetId as number });
    expect((await sub2.next("pubrel")).packetId).toBe(m3.packetId);
    sub2.send({ type: "pubcomp", packetId: m3.packetId as number });

    // The publisher's QoS 2 flow for m2 completes after the restart (MQTT-4.3.3-2; 5.0 MQTT-4.3.3-11).
    const pub2 = await RawClient.open(broker.url, 4);
    expect((await pub2.connect(pubId, { cleanStart: false })).sessionPresent).toBe(true);
    pub2.send({ type: "pubrel", packetId: 2 });
    expect(await pub2.next("pubcomp")).toEqual({ type: "pubcomp", packetId: 2 });
    // and a fresh message still flows
    pub2.send({
      type: "publish",
      topic,
      payload: bytes("m4"),
      qos: 2,
      dup: false,
      retain: false,
      packetId: 4,
    });
    await pub2.next("pubrec");
    pub2.send({ type: "pubrel", packetId: 4 });
    await pub2.next("pubcomp");
    const m4 = await sub2.next("publish");
    expect(text(m4)).toBe("m4");
    // No duplicate of m2 or m3, nothing else, before a last message from the same publisher.
    pub2.send({
      type: "publish",
      topic,
      payload: bytes("marker"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 5,
    });
    await pub2.next("puback");
    expect(await sub2.publishesUntil("marker")).toEqual([]);
    sub2.close();
    pub2.close();
  }, 120_000);
});
