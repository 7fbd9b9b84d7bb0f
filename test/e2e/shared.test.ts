/** Shared subscriptions `$share/{group}/{filter}` (5.0 section 4.8.2). */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import { afterRetained, connect, Inbox, markerTopic, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const open: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function client(version: 4 | 5 = 5) {
  const c = await connect(url, { protocolVersion: version, clientId: unique("sh") });
  open.push(c);
  return c;
}

describe("shared subscriptions", () => {
  it("gives each message to one member of the group and spreads the load", async () => {
    const topic = unique("work");
    const group = unique("g");
    const members = await Promise.all([client(5), client(5), client(4)]);
    const inboxes = members.map((m) => new Inbox(m));
    for (const m of members) {
      await m.subscribeAsync(`$share/${group}/${topic}/job`, { qos: 1 });
      // Not shared: each member gets the marker.
      await m.subscribeAsync(markerTopic(topic), { qos: 1 });
    }

    const pub = await client(5);
    const n = 30;
    for (let i = 0; i < n; i++) await pub.publishAsync(`${topic}/job`, String(i), { qos: 1 });
    await pub.publishAsync(markerTopic(topic), "marker", { qos: 1 });
    const shares = await Promise.all(inboxes.map((b) => b.until("marker")));
    // Every message exactly once across the group, one member per message (4.8.2).
    expect(
      shares
        .flat()
        .map((m) => Number(m.payload))
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: n }, (_, i) => i));
    // Strict round robin (route-table.ts pickMember): the topic's one shard hands
    // the members turns in order, in either layout, so each gets every third.
    expect(shares.map((s) => s.length)).toEqual([10, 10, 10]);
    for (const share of shares) expect(new Set(share.map((m) => Number(m.payload) % 3)).size).toBe(1);
  });

  it("two groups on the same filter each get every message", async () => {
    const topic = unique("two");
    const [a, b] = await Promise.all([client(), client()]);
    const [ia, ib] = [new Inbox(a), new Inbox(b)];
    await a.subscribeAsync([`$share/${unique("ga")}/${topic}`, markerTopic(topic)], { qos: 1 });
    await b.subscribeAsync([`$share/${unique("gb")}/${topic}`, markerTopic(topic)], { qos: 1 });
    const pub = await client();
    for (let i = 0; i < 5; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await pub.publishAsync(markerTopic(topic), "marker", { qos: 1 });
    // Each group, its only member here, gets every message exactly once, in order.
    const every = ["0", "1", "2", "3", "4"];
    expect((await ia.until("marker")).map((m) => m.payload)).toEqual(every);
    expect((await ib.until("marker")).map((m) => m.payload)).toEqual(every);
  });

  it("does not send retained messages to a shared subscription (4.8.2)", async () => {
    const topic = unique("ret");
    const pub = await client();
    await pub.publishAsync(topic, "kept", { qos: 1, retain: true });
    const s = await client();
    const inbox = new Inbox(s);
    await s.subscribeAsync(`$share/${unique("g")}/${topic}`, { qos: 1 });
    expect(await afterRetained(s, inbox, pub, topic)).toEqual([]);
  });

  it("hands a leaving member's unacknowledged messages to another member", async () => {
    const topic = unique("leave");
    const group = unique("g");
    // A member that never acknowledges, then vanishes.
    const lazy = await RawClient.open(url, 5);
    await lazy.connect(unique("lazy"), { version: 5 });
    lazy.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [
        {
          topicFilter: `$share/${group}/${topic}`,
          qos: 1,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 0,
        },
      ],
    });
    await lazy.next("suback");
    const busy = await client();
    const inbox = new Inbox(busy);
    await busy.subscribeAsync(`$share/${group}/${topic}`, { qos: 1 });

    const pub = await client();
    const n = 10;
    for (let i = 0; i < n; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await lazy.next("publish");
    lazy.terminate();
    await lazy.closed;
    await inbox.waitFor(n, 10_000);
    const got = inbox.messages.map((m) => Number(m.payload)).sort((a, b) => a - b);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});
