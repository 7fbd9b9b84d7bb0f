/** Publish/subscribe through the broker with MQTT.js at protocol 4 and 5. */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import { ReasonCode } from "../../mqtt/index.ts";
import { afterRetained, connect, Inbox, markerTopic, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const vars = inject("brokerVars");
const open: MqttClient[] = [];

async function client(protocolVersion: 4 | 5, options: Parameters<typeof connect>[1] = {}) {
  const c = await connect(url, { protocolVersion, clientId: unique("m"), ...options });
  open.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

describe.each([4, 5] as const)("publish/subscribe, MQTT.js protocol %i", (version) => {
  it.each([0, 1, 2] as const)("delivers QoS %i in both directions", async (qos) => {
    const topic = unique("t");
    const sub = await client(version);
    const inbox = new Inbox(sub);
    const granted = await sub.subscribeAsync(`${topic}/#`, { qos });
    expect(granted[0]?.qos).toBe(qos);
    const pub = await client(version);
    await pub.publishAsync(`${topic}/a`, "hello", { qos });
    const [m] = await inbox.waitFor(1);
    expect(m).toMatchObject({ topic: `${topic}/a`, payload: "hello" });
    expect(m?.packet.qos).toBe(qos);
    // and back: the subscriber publishes, the publisher receives
    const back = new Inbox(pub);
    await pub.subscribeAsync(`${topic}/back`, { qos });
    await sub.publishAsync(`${topic}/back`, "reply", { qos });
    expect((await back.waitFor(1))[0]?.payload).toBe("reply");
  });

  it("downgrades to the granted QoS (MQTT-3.8.4-6; 5.0 MQTT-3.8.4-8)", async () => {
    const topic = unique("t");
    const sub = await client(version);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    const pub = await client(version);
    await pub.publishAsync(topic, "x", { qos: 2 });
    const [m] = await inbox.waitFor(1);
    expect(m?.packet.qos).toBe(1);
  });

  it("matches + and # wildcards (4.7.1)", async () => {
    const topic = unique("w");
    const sub = await client(version);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync([`${topic}/+/temp`, `${topic}/alerts/#`, markerTopic(topic)], { qos: 1 });
    const pub = await client(version);
    for (const t of [
      `${topic}/kitchen/temp`,
      `${topic}/kitchen/humidity`,
      `${topic}/alerts`,
      `${topic}/alerts/fire/1`,
    ]) {
      await pub.publishAsync(t, t, { qos: 1 });
    }
    await pub.publishAsync(markerTopic(topic), "marker", { qos: 1 });
    expect((await inbox.until("marker")).map((m) => m.topic)).toEqual([
      `${topic}/kitchen/temp`,
      `${topic}/alerts`,
      `${topic}/alerts/fire/1`,
    ]);
  });

  it("delivers once with the highest QoS on overlapping subscriptions (MQTT-3.3.5-1; 5.0 MQTT-3.3.4-2)", async () => {
    const topic = unique("o");
    const sub = await client(version);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync({ [`${topic}/#`]: { qos: 0 }, [`${topic}/+`]: { qos: 2 } });
    const pub = await client(version);
    await pub.publishAsync(`${topic}/x`, "once", { qos: 2 });
    // The marker matches both filters too, and comes once.
    await pub.publishAsync(markerTopic(topic), "marker", { qos: 2 });
    const before = await inbox.until("marker");
    expect(before.map((m) => [m.payload, m.packet.qos])).toEqual([["once", 2]]);
    expect(inbox.messages.filter((m) => m.payload === "marker")).toHaveLength(1);
  });

  it("keeps one publisher's messages on one topic in order (4.6)", async () => {
    const topic = unique("order");
    const sub = await client(version);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    const pub = await client(version);
    // All at once, as many as one client may have in flight and waiting behind its
    // window (MAX_INFLIGHT + MAX_QUEUED_MESSAGES): past that the newest would be
    // dropped whenever the subscriber's acknowledgements lag (limits.test).
    const n = Number(vars.MAX_INFLIGHT) + Number(vars.MAX_QUEUED_MESSAGES);
    const sends = [];
    for (let i = 0; i < n; i++) sends.push(pub.publishAsync(topic, String(i), { qos: 1 }));
    await Promise.all(sends);
    await inbox.waitFor(n);
    expect(inbox.messages.map((m) => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it("stops delivery after UNSUBSCRIBE (MQTT-3.10.4-1, MQTT-3.10.4-2)", async () => {
    const topic = unique("u");
    const sub = await client(version);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync([topic, markerTopic(topic)], { qos: 1 });
    const pub = await client(version);
    await pub.publishAsync(topic, "1", { qos: 1 });
    await inbox.waitFor(1);
    await sub.unsubscribeAsync(topic);
    await pub.publishAsync(topic, "2", { qos: 1 });
    await pub.publishAsync(markerTopic(topic), "marker", { qos: 1 });
    expect((await inbox.until("marker")).map((m) => m.payload)).toEqual(["1"]);
  });

  it("refuses a bad filter in SUBACK and grants the others (MQTT-3.9.3)", async () => {
    // MQTT.js refuses to send a bad filter, so this one speaks raw packets.
    const raw = await RawClient.open(url, version);
    await raw.connect(unique("badfilter"), { version });
    const sub = (topicFilter: string) => ({
      topicFilter,
      qos: 1 as const,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
    });
    raw.send({ type: "subscribe", packetId: 3, subscriptions: [sub("a/#/b"), sub(unique("ok")), sub("a+")] });
    const suback = await raw.next("suback");
    const failure = version === 5 ? ReasonCode.TopicFilterInvalid : 0x80;
    expect(suback.reasonCodes).toEqual([failure, 1, failure]);
    raw.close();
  });
});

describe("retained messages (3.3.1.3)", () => {
  it.each([4, 5] as const)(
    "are stored, replaced, sent with RETAIN to new subscribers, and cleared (protocol %i)",
    async (version) => {
      const topic = unique("r");
      const pub = await client(version);
      await pub.publishAsync(topic, "first", { qos: 1, retain: true });
      await pub.publishAsync(topic, "second", { qos: 1, retain: true });

      // MQTT-3.3.1-6/-8 (5.0 MQTT-3.3.1-9): a new subscriber gets the last retained message, RETAIN set
      const s1 = await client(version);
      const in1 = new Inbox(s1);
      await s1.subscribeAsync(topic, { qos: 1 });
      const [m] = await in1.waitFor(1);
      expect(m).toMatchObject({ payload: "second" });
      expect(m?.packet.retain).toBe(true);

      // MQTT-3.3.1-9 (5.0 MQTT-3.3.1-12): live forwarding clears RETAIN
      await pub.publishAsync(topic, "third", { qos: 1, retain: true });
      const [, live] = await in1.waitFor(2);
      expect(live).toMatchObject({ payload: "third" });
      expect(live?.packet.retain).toBe(false);

      // MQTT-3.3.1-10/-11 (5.0 MQTT-3.3.1-6/-7): an empty retained payload clears it
      await pub.publishAsync(topic, "", { qos: 1, retain: true });
      await in1.waitFor(3);
      const s2 = await client(version);
      const in2 = new Inbox(s2);
      await s2.subscribeAsync(topic, { qos: 1 });
      expect(await afterRetained(s2, in2, pub, topic)).toEqual([]);
    },
  );

  it("sends retained messages of every shard to a wildcard subscriber", async () => {
    const base = unique("rw");
    const pub = await client(4);
    const topics = Array.from({ length: 12 }, (_, i) => `${base}-${i}/state`);
    for (const t of topics) await pub.publishAsync(t, t, { qos: 1, retain: true });
    const sub = await client(4);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync("+/state", { qos: 1 });
    const ours = () => inbox.messages.filter((m) => topics.includes(m.topic));
    await inbox.waitUntil(() => ours().length >= topics.length, `${topics.length} retained messages`);
    // Each once: no second copy comes before the marker.
    await afterRetained(sub, inbox, pub, topics[0] as string);
    expect(
      ours()
        .map((m) => m.topic)
        .sort(),
    ).toEqual(topics.sort());
  });

  it("a non-retained publish is not stored (MQTT-3.3.1-12)", async () => {
    const topic = unique("nr");
    const pub = await client(4);
    await pub.publishAsync(topic, "x", { qos: 1, retain: false });
    const sub = await client(4);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(topic, { qos: 1 });
    expect(await afterRetained(sub, inbox, pub, topic)).toEqual([]);
  });
});

describe("$ topics (MQTT-4.7.2-1)", () => {
  it("are not matched by a leading wildcard", async () => {
    const sub = await client(4);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync("#", { qos: 0 });
    const pub = await client(4);
    const topic = `$${unique("dollar")}`;
    await pub.publishAsync(topic, "hidden", { qos: 1 });
    // Another shard, maybe: the hidden message was handed to every matching gateway
    // before its PUBACK, so the marker, published after that, comes after it.
    const marker = unique("seen");
    await pub.publishAsync(unique("visible"), marker, { qos: 1 });
    expect((await inbox.until(marker)).filter((m) => m.topic === topic)).toEqual([]);
  });
});

describe("QoS 2 from the publisher", () => {
  it("delivers once when the PUBLISH is sent again before PUBREL (MQTT-4.3.3-2; 5.0 MQTT-4.3.3-10)", async () => {
    const topic = unique("q2");
    const sub = await client(4);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync([topic, markerTopic(topic)], { qos: 2 });
    const raw = await RawClient.open(url, 4);
    await raw.connect(unique("raw"));
    const publish = {
      type: "publish",
      topic,
      payload: new TextEncoder().encode("x"),
      qos: 2,
      dup: false,
      retain: false,
      packetId: 7,
    } as const;
    raw.send(publish);
    await raw.next("pubrec");
    raw.send({ ...publish, dup: true });
    await raw.next("pubrec");
    raw.send({ type: "pubrel", packetId: 7 });
    expect(await raw.next("pubcomp")).toEqual({ type: "pubcomp", packetId: 7 });
    raw.send({
      ...publish,
      topic: markerTopic(topic),
      payload: new TextEncoder().encode("marker"),
      packetId: 8,
    });
    await raw.next("pubrec");
    raw.send({ type: "pubrel", packetId: 8 });
    await raw.next("pubcomp");
    expect((await inbox.until("marker")).map((m) => m.payload)).toEqual(["x"]);
    raw.close();
  });
});
