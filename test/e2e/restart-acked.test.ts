/**
 * The whole runtime is killed (SIGKILL: no object finishes anything) while a
 * persistent subscriber is acknowledging a stream of QoS 1 messages. Its gateway
 * keeps an acknowledged row for the next message to overwrite rather than
 * deleting it (gateway/outbound-rows.ts), so the rows of the last ones it
 * acknowledged may still read as in flight after the restart. What the broker
 * acknowledged to the publisher and the subscriber did not is delivered again
 * (DESIGN.md invariant 1, MQTT-4.4.0-1); anything else that comes again is a QoS
 * 1 duplicate and carries DUP (MQTT-3.3.1-1, invariant 2).
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import type { ProtocolVersion, PublishPacket } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { RawClient, unique } from "../support/clients.ts";

const text = (p: PublishPacket) => new TextDecoder().decode(p.payload);
const bytes = (s: string) => new TextEncoder().encode(s);
let broker: RunningBroker | undefined;

afterAll(async () => {
  await broker?.stop();
});

const ACKED = 15;
const UNACKED = 5;

describe.each([4, 5] as ProtocolVersion[])("a kill of the whole runtime, MQTT %i", (version) => {
  it("loses no message the subscriber had not acknowledged, and sends nothing again without DUP", async () => {
    const vars = inject("brokerVars");
    broker ??= await startBroker({ vars });
    const topic = unique("killed");
    const subId = unique("sub");
    const session = { cleanStart: false, version, expiry: version === 5 ? 300 : undefined };

    const sub = await RawClient.open(broker.url, version);
    await sub.connect(subId, session);
    await sub.subscribe(topic, 1);
    const pub = await RawClient.open(broker.url, version);
    await pub.connect(unique("pub"), { version });

    const sent: PublishPacket[] = [];
    for (let n = 1; n <= ACKED + UNACKED; n++) {
      pub.send({
        type: "publish",
        topic,
        payload: bytes(`m${n}`),
        qos: 1,
        dup: false,
        retain: false,
        packetId: n,
      });
      await pub.next("puback");
      const got = await sub.next("publish");
      expect(text(got)).toBe(`m${n}`);
      sent.push(got);
    }
    // The first ones are acknowledged together: their rows wait for reuse when the runtime dies.
    for (const p of sent.slice(0, ACKED)) sub.send({ type: "puback", packetId: p.packetId as number });
    // The PUBACKs are handled once the PINGRESP behind them comes back.
    sub.send({ type: "pingreq" });
    await sub.next("pingresp");

    await broker.stop("SIGKILL");
    await Promise.all([sub.closed, pub.closed]);
    broker = await startBroker({ vars, persistTo: broker.persistTo });

    const sub2 = await RawClient.open(broker.url, version);
    expect((await sub2.connect(subId, session)).sessionPresent).toBe(true);
    const pub2 = await RawClient.open(broker.url, version);
    await pub2.connect(unique("pub"), { version });
    pub2.send({
      type: "publish",
      topic,
      payload: bytes("marker"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 1,
    });
    await pub2.next("puback");
    // Each is acknowledged as it comes: the window may be full of those sent again.
    const again: PublishPacket[] = [];
    for (;;) {
      const p = await sub2.next("publish");
      sub2.send({ type: "puback", packetId: p.packetId as number });
      if (text(p) === "marker") break;
      again.push(p);
    }

    // MQTT-4.4.0-1: every unacknowledged one again, with DUP and its packet id, in order.
    const unacked = sent.slice(ACKED);
    const resent = again.filter((p) => unacked.some((u) => text(u) === text(p)));
    expect(resent.map(text)).toEqual(unacked.map(text));
    expect(resent.map((p) => p.packetId)).toEqual(unacked.map((u) => u.packetId));
    // Whatever else came again is one of those acknowledged, at most once each, with DUP.
    for (const p of again) expect(p).toMatchObject({ dup: true, qos: 1 });
    const others = again.filter((p) => !resent.includes(p)).map(text);
    expect(new Set(others).size).toBe(others.length);
    for (const m of others) expect(sent.slice(0, ACKED).map(text)).toContain(m);
    sub2.close();
    pub2.close();
  }, 120_000);
});
