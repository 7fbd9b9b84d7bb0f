/**
 * A persistent session outliving an ACL change (issue 26, item 6): when the broker
 * comes back with an ACL that no longer lets the principal read a topic, the
 * resumed session neither keeps the subscription nor receives what it matches:
 * not from the stored queue, not while the queue is being taken, not after.
 * The subscriptions the ACL still grants carry on.
 */
import { afterAll, describe, expect, it } from "vitest";
import { passwordEntry } from "../../broker/auth/passwords.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { RawClient, unique } from "../support/clients.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);
let broker: RunningBroker | undefined;

afterAll(async () => {
  await broker?.stop();
});

/** PUBLISH QoS 1 and wait for its PUBACK. */
async function publish(c: RawClient, topic: string, packetId: number, payload: string) {
  c.send({ type: "publish", topic, qos: 1, dup: false, retain: false, packetId, payload: bytes(payload) });
  expect((await c.next("puback")).packetId).toBe(packetId);
}

async function login(url: string, user: string, clientId: string) {
  const c = await RawClient.open(url, 5);
  c.sendConnect(clientId, {
    cleanStart: false,
    username: user,
    password: bytes(`${user}-pw`),
    properties: { sessionExpiryInterval: 600 },
  });
  const connack = await c.next("connack");
  expect(connack.reasonCode).toBe(0);
  return { c, connack };
}

describe("a session resumed under a narrower ACL", () => {
  it("keeps only what the ACL still grants: the denied subscription is gone, its queued and new messages never arrive, the allowed one carries on", async () => {
    const passwords = [await passwordEntry("carol", "carol-pw"), await passwordEntry("dave", "dave-pw")].join(
      " ",
    );
    const wide = [
      { user: "carol", subscribe: ["open/#", "secret/#"] },
      { user: "dave", publish: ["open/#", "secret/#"] },
    ];
    const narrow = [
      { user: "carol", subscribe: ["open/#"] },
      { user: "dave", publish: ["open/#", "secret/#"] },
    ];
    const vars = { TOPIC_SHARDS: "1", GATEWAYS: "1", ALLOW_ANONYMOUS: "false", MQTT_PASSWORDS: passwords };
    broker = await startBroker({ vars: { ...vars, ACL: JSON.stringify(wide) } });
    const id = unique("carol");
    const topic = unique("t");
    const { c: carol } = await login(broker.url, "carol", id);
    carol.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [`open/${topic}`, `secret/${topic}`].map((topicFilter) => ({
        topicFilter,
        qos: 1 as const,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0 as const,
      })),
    });
    expect((await carol.next("suback")).reasonCodes).toEqual([1, 1]);
    carol.send({ type: "disconnect", reasonCode: 0 });
    await carol.closed;
    // Queued while carol is offline: one message each way.
    const { c: dave } = await login(broker.url, "dave", unique("dave"));
    for (const [packetId, t] of [
      [1, `secret/${topic}`],
      [2, `open/${topic}`],
    ] as const) {
      await publish(dave, t, packetId, `queued ${t}`);
    }
    dave.terminate();

    await broker.stop();
    broker = await startBroker({
      vars: { ...vars, ACL: JSON.stringify(narrow) },
      persistTo: broker.persistTo,
    });
    const { c: again, connack } = await login(broker.url, "carol", id);
    expect(connack.sessionPresent).toBe(true);
    const { c: dave2 } = await login(broker.url, "dave", unique("dave"));
    // Published while carol's queue is still being taken and after it; each publisher's
    // messages arrive in order, so the last marker comes after everything before it.
    let packetId = 10;
    for (const t of [`secret/${topic}`, `open/${topic}`, `secret/${topic}`, `open/${topic}`]) {
      await publish(dave2, t, packetId++, `live ${t}`);
    }
    dave2.send({
      type: "publish",
      topic: `open/${topic}`,
      qos: 1,
      dup: false,
      retain: false,
      packetId,
      payload: bytes("marker"),
    });
    await dave2.next("puback");
    const got: string[] = [];
    for (;;) {
      const p = await again.next("publish", 20_000);
      if (p.qos > 0 && p.packetId !== undefined)
        again.send({ type: "puback", packetId: p.packetId, reasonCode: 0 });
      got.push(`${p.topic} ${text(p.payload)}`);
      if (text(p.payload) === "marker") break;
    }
    expect(got).toEqual([
      `open/${topic} queued open/${topic}`,
      `open/${topic} live open/${topic}`,
      `open/${topic} live open/${topic}`,
      `open/${topic} marker`,
    ]);
    // The subscription itself is gone: unsubscribing it says there was none (0x11, 3.11.2.2).
    again.send({ type: "unsubscribe", packetId: 20, topicFilters: [`secret/${topic}`] });
    expect((await again.next("unsuback")).reasonCodes).toEqual([0x11]);
    again.terminate();
    dave2.terminate();
  }, 120_000);
});
