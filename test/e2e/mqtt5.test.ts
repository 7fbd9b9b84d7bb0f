/**
 * MQTT 5.0 features end to end, with MQTT.js at protocol 5 and, where exact bytes
 * matter, a raw client on our codec. Each test names the statements it checks.
 */
import type { MqttClient } from "mqtt";

import { afterEach, describe, expect, inject, it } from "vitest";
import { type ConnectPacket, ReasonCode, type Subscription } from "../../mqtt/index.ts";
import { clientState, offline } from "../support/broker.ts";
import {
  afterRetained,
  connect,
  dropConnection,
  Inbox,
  markerTopic,
  RawClient,
  sleep,
  unique,
} from "../support/clients.ts";

const url = inject("brokerUrl");
const vars = inject("brokerVars");
const httpUrl = inject("brokerHttpUrl");
const open: MqttClient[] = [];
const raws: RawClient[] = [];

afterEach(async () => {
  for (const r of raws.splice(0)) r.terminate();
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function client(options: Parameters<typeof connect>[1] = {}) {
  const c = await connect(url, { protocolVersion: 5, clientId: unique("v5"), ...options });
  open.push(c);
  return c;
}

async function raw(clientId: string, extra: Partial<ConnectPacket> = {}) {
  const r = await RawClient.open(url, 5);
  raws.push(r);
  r.sendConnect(clientId, extra);
  const connack = await r.next("connack");
  return { r, connack };
}

const sub = (topicFilter: string, qos: 0 | 1 | 2 = 1, more: Partial<Subscription> = {}): Subscription => ({
  topicFilter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
  ...more,
});
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("CONNACK capabilities", () => {
  it("advertises what the broker does (3.2.2.3)", async () => {
    const { connack } = await raw(unique("caps"));
    expect(connack.properties).toMatchObject({
      receiveMaximum: Number(vars.RECEIVE_MAXIMUM),
      topicAliasMaximum: expect.any(Number),
      maximumPacketSize: expect.any(Number),
      retainAvailable: 1,
      wildcardSubscriptionAvailable: 1,
      subscriptionIdentifiersAvailable: 1,
    });
  });

  it("answers Request Response Information with Response Information (3.1.2.11.7)", async () => {
    const { connack } = await raw(unique("rri"), { properties: { requestResponseInformation: 1 } });
    expect(connack.properties?.responseInformation).toMatch(/^response\//);
  });

  it("sends Server Keep Alive when the client asks for more than allowed (3.2.2.3.14; the client must use it, MQTT-3.2.2-21)", async () => {
    const { connack } = await raw(unique("ska"), { keepAlive: 60_000 });
    expect(connack.properties?.serverKeepAlive).toBe(Number(vars.MAX_KEEP_ALIVE));
  });

  it("refuses an unknown authentication method with 0x8C (4.12)", async () => {
    const { r, connack } = await raw(unique("auth"), {
      properties: { authenticationMethod: "NO-SUCH-METHOD" },
    });
    expect(connack.reasonCode).toBe(ReasonCode.BadAuthenticationMethod);
    await r.closed;
  });
});

describe("quotas", () => {
  it("refuses subscriptions past MAX_SUBSCRIPTIONS with 0x97 Quota exceeded, keeping the session", async () => {
    const max = Number(vars.MAX_SUBSCRIPTIONS);
    const { r } = await raw(unique("quota"));
    const filters = Array.from({ length: max + 2 }, (_, i) => sub(`${unique("q")}/${i}`, 0));
    r.send({ type: "subscribe", packetId: 1, subscriptions: filters });
    const suback = await r.next("suback");
    expect(suback.reasonCodes.slice(0, max)).toEqual(Array(max).fill(0));
    expect(suback.reasonCodes.slice(max)).toEqual([ReasonCode.QuotaExceeded, ReasonCode.QuotaExceeded]);
    // re-subscribing to a filter already held is not a new subscription
    r.send({ type: "subscribe", packetId: 2, subscriptions: [filters[0] as Subscription] });
    expect((await r.next("suback")).reasonCodes).toEqual([0]);
    r.send({ type: "pingreq" });
    await r.next("pingresp");
  });
});

describe("Session Expiry Interval", () => {
  it("a session expires after its interval (3.1.2.11.2)", async () => {
    const clientId = unique("exp");
    const a = await client({ clientId, clean: false, properties: { sessionExpiryInterval: 1 } });
    await a.subscribeAsync(unique("t"), { qos: 1 });
    await a.endAsync();
    // Expired: the HTTP API knows the client id no more.
    await clientState(httpUrl, vars.API_TOKEN as string, clientId, ({ status }) => status === 404);
    const { connack } = await raw(clientId, { cleanStart: false });
    expect(connack.sessionPresent).toBe(false);
  });

  it("DISCONNECT can shorten it to 0, ending the session (3.14.2.2.2)", async () => {
    const clientId = unique("exp0");
    const { r } = await raw(clientId, { cleanStart: false, properties: { sessionExpiryInterval: 300 } });
    r.send({ type: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await r.closed;
    // Ended, not kept: the HTTP API knows the client id no more.
    await clientState(httpUrl, vars.API_TOKEN as string, clientId, ({ status }) => status === 404);
    const again = await raw(clientId, { cleanStart: false });
    expect(again.connack.sessionPresent).toBe(false);
  });

  it("DISCONNECT cannot set one after 0 at CONNECT: 0x82 (3.14.2.2.2)", async () => {
    const { r } = await raw(unique("exp-bad"));
    r.send({ type: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    expect((await r.next("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });
});

describe("Message Expiry Interval (3.3.2.3.3)", () => {
  it("forwards the remaining interval and drops expired messages from offline queues", async () => {
    const clientId = unique("mexp");
    const topic = unique("t");
    const a = await client({ clientId, clean: false, properties: { sessionExpiryInterval: 300 } });
    await a.subscribeAsync(topic, { qos: 1 });
    await a.endAsync();
    const pub = await client();
    await pub.publishAsync(topic, "short", { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync(topic, "long", { qos: 1, properties: { messageExpiryInterval: 100 } });
    await sleep(2_200);
    const b = await client({ clientId, clean: false, properties: { sessionExpiryInterval: 300 } });
    const inbox = new Inbox(b);
    // New messages for a resumed session wait behind its queue: the marker comes last.
    await pub.publishAsync(topic, "marker", { qos: 1 });
    const before = await inbox.until("marker");
    expect(before.map((x) => x.payload)).toEqual(["long"]);
    const left = before[0]?.packet.properties?.messageExpiryInterval as number;
    expect(left).toBeGreaterThan(90);
    expect(left).toBeLessThanOrEqual(98);
  });

  it("drops an expired retained message", async () => {
    const topic = unique("rexp");
    const pub = await client();
    await pub.publishAsync(topic, "soon gone", {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 1 },
    });
    await sleep(2_200);
    const s = await client();
    const inbox = new Inbox(s);
    await s.subscribeAsync(topic, { qos: 1 });
    expect(await afterRetained(s, inbox, pub, topic)).toEqual([]);
  });
});

describe("Topic aliases (3.3.2.3.4)", () => {
  it("maps the client's aliases: a topic sets one, an empty topic uses it", async () => {
    const topic = unique("alias-in");
    const s = await client();
    const inbox = new Inbox(s);
    await s.subscribeAsync(topic, { qos: 1 });
    const { r } = await raw(unique("aliaser"));
    r.send({
      type: "publish",
      topic,
      payload: bytes("one"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 1,
      properties: { topicAlias: 3 },
    });
    await r.next("puback");
    r.send({
      type: "publish",
      topic: "",
      payload: bytes("two"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 2,
      properties: { topicAlias: 3 },
    });
    await r.next("puback");
    await inbox.waitFor(2);
    expect(inbox.messages.map((m) => [m.topic, m.payload])).toEqual([
      [topic, "one"],
      [topic, "two"],
    ]);
  });

  it("refuses an alias above the maximum with DISCONNECT 0x94 (3.3.2.3.4; the client broke MQTT-3.3.2-9)", async () => {
    const { r, connack } = await raw(unique("alias-big"));
    const max = connack.properties?.topicAliasMaximum as number;
    r.send({
      type: "publish",
      topic: "x",
      payload: bytes(""),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: max + 1 },
    });
    expect((await r.next("disconnect")).reasonCode).toBe(ReasonCode.TopicAliasInvalid);
  });

  it("refuses an unknown alias with DISCONNECT 0x82", async () => {
    const { r } = await raw(unique("alias-unknown"));
    r.send({
      type: "publish",
      topic: "",
      payload: bytes(""),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 1 },
    });
    expect((await r.next("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it("uses aliases towards a client that allows them, saving the topic on repeats", async () => {
    const topic = unique("alias-out");
    const { r } = await raw(unique("alias-rx"), { properties: { topicAliasMaximum: 2 } });
    r.send({ type: "subscribe", packetId: 1, subscriptions: [sub(topic, 0)] });
    await r.next("suback");
    const pub = await client();
    for (let i = 0; i < 3; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    const first = await r.next("publish");
    const second = await r.next("publish");
    const third = await r.next("publish");
    expect(first.topic).toBe(topic);
    expect(first.properties?.topicAlias).toBe(1);
    expect(second.topic).toBe("");
    expect(second.properties?.topicAlias).toBe(1);
    expect(third.topic).toBe("");
  });

  it("uses no more aliases towards a client than TOPIC_ALIAS_MAXIMUM, however many the client allows (bounded memory)", async () => {
    const base = unique("alias-many");
    const { r } = await raw(unique("alias-65535"), { properties: { topicAliasMaximum: 65535 } });
    r.send({ type: "subscribe", packetId: 1, subscriptions: [sub(`${base}/#`, 0)] });
    await r.next("suback");
    const pub = await client();
    // 64 is the broker's TOPIC_ALIAS_MAXIMUM here (the default): 80 topics reuse aliases.
    for (let i = 0; i < 80; i++) await pub.publishAsync(`${base}/${i}`, String(i), { qos: 1 });
    const aliases = new Set<number>();
    for (let i = 0; i < 80; i++) {
      const p = await r.next("publish");
      // A new assignment always carries the topic, so the client can follow.
      expect(p.topic).toBe(`${base}/${i}`);
      aliases.add(p.properties?.topicAlias as number);
    }
    expect(Math.max(...aliases)).toBe(64);
    expect(aliases.size).toBe(64);
  });

  it("MQTT.js resolves the broker's aliases", async () => {
    const topic = unique("alias-js");
    const s = await client({ properties: { topicAliasMaximum: 10 } });
    const inbox = new Inbox(s);
    await s.subscribeAsync(topic, { qos: 1 });
    const pub = await client();
    for (let i = 0; i < 3; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await inbox.waitFor(3);
    expect(inbox.messages.map((m) => m.topic)).toEqual([topic, topic, topic]);
  });
});

describe("Receive Maximum (3.3.4)", () => {
  /**
   * Publishes `n` QoS 1 messages to a raw subscriber that holds every
   * acknowledgement, and checks that the broker sends exactly `window` of them
   * at a time: a QoS 0 marker after each round is not held back by the window
   * (only QoS 1 and 2 count, 4.9), so what arrived before it is all the broker
   * sent. Then the round is acknowledged, and the next one must fill the window
   * again, in order (4.6), until all `n` have come. Packet order on the wire is
   * what the client sees, so the refill must be in before the next marker is sent.
   */
  async function fillsWindowExactly(receiveMaximum: number, window: number, n: number) {
    const topic = unique("rm");
    const { r } = await raw(unique("rm-rx"), { properties: { receiveMaximum } });
    r.send({ type: "subscribe", packetId: 1, subscriptions: [sub(topic, 1)] });
    await r.next("suback");
    const pub = await client();
    for (let i = 0; i < n; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    const got: string[] = [];
    for (let round = 0; got.length < n; round++) {
      const marker = `marker ${round}`;
      await pub.publishAsync(topic, marker, { qos: 0 });
      const held = await r.publishesUntil(marker);
      const expected = Array.from({ length: Math.min(window, n - got.length) }, (_, i) =>
        String(got.length + i),
      );
      expect(held.map((p) => text(p.payload))).toEqual(expected);
      got.push(...expected);
      for (const p of held) r.send({ type: "puback", packetId: p.packetId as number });
      // One packet is handled at a time: once PINGRESP is in, so are the acks' refills.
      r.send({ type: "pingreq" });
      await r.next("pingresp");
    }
    // Everything acknowledged: nothing more comes.
    await pub.publishAsync(topic, "last marker", { qos: 0 });
    expect(await r.publishesUntil("last marker")).toEqual([]);
  }

  it("never has more unacknowledged QoS 1 messages out than the client allows (MQTT-3.3.4-9)", async () => {
    await fillsWindowExactly(2, 2, 5);
  });

  it("refills a full window as the client acknowledges, in order, never past Receive Maximum (MQTT-3.3.4-9)", async () => {
    // 8 in flight and 22 waiting: within the 25 MAX_QUEUED_MESSAGES of these tests,
    // which bounds what waits behind the window (limits.test.ts).
    await fillsWindowExactly(8, 8, 30);
  });

  it("sends a client that allows more no more than MAX_INFLIGHT unacknowledged at once", async () => {
    const max = Number(vars.MAX_INFLIGHT);
    // MAX_INFLIGHT in flight and 5 waiting, within MAX_QUEUED_MESSAGES.
    await fillsWindowExactly(65_535, max, max + 5);
  });

  it("answers a client that exceeds the broker's with DISCONNECT 0x93 (3.3.4; the client broke MQTT-3.3.4-7)", async () => {
    const { r, connack } = await raw(unique("rm-tx"));
    const max = connack.properties?.receiveMaximum as number;
    for (let i = 1; i <= max + 1; i++) {
      r.send({
        type: "publish",
        topic: unique("rm-t"),
        payload: bytes("x"),
        qos: 2,
        dup: false,
        retain: false,
        packetId: i,
      });
    }
    expect((await r.next("disconnect", 15_000)).reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
  });
});

describe("Maximum Packet Size (3.1.2.11.4)", () => {
  it("discards messages larger than the client accepts and sends the rest (MQTT-3.1.2-25)", async () => {
    const topic = unique("mps");
    const { r } = await raw(unique("mps-rx"), { properties: { maximumPacketSize: 200 } });
    r.send({ type: "subscribe", packetId: 1, subscriptions: [sub(topic, 1)] });
    await r.next("suback");
    const pub = await client();
    await pub.publishAsync(topic, "x".repeat(500), { qos: 1 });
    await pub.publishAsync(topic, "small", { qos: 1 });
    const got = await r.next("publish");
    expect(text(got.payload)).toBe("small");
  });
});

describe("subscription options and identifiers (3.8.3.1, 3.8.2.1.2)", () => {
  it("sends the subscription identifiers of every matching subscription in one copy (MQTT-3.3.4-3, MQTT-3.3.4-4)", async () => {
    const topic = unique("sid");
    const s = await client();
    const inbox = new Inbox(s);
    await s.subscribeAsync(`${topic}/#`, { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await s.subscribeAsync(`${topic}/+`, { qos: 1, properties: { subscriptionIdentifier: 9 } });
    const pub = await client();
    await pub.publishAsync(`${topic}/a`, "x", { qos: 1 });
    const [m] = await inbox.waitFor(1);
    const ids = m?.packet.properties?.subscriptionIdentifier;
    expect((Array.isArray(ids) ? ids : [ids]).sort()).toEqual([7, 9]);
  });

  it("keeps the subscription identifiers of messages queued for an offline session (MQTT-3.3.4-3)", async () => {
    const topic = unique("sid-offline");
    const id = unique("sid-owner");
    const expiry = { properties: { sessionExpiryInterval: 300 } };
    const first = await raw(id, { cleanStart: false, ...expiry });
    first.r.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [sub(`${topic}/#`, 1), sub(`${topic}/+`, 2)],
      properties: { subscriptionIdentifiers: [11] },
    });
    await first.r.next("suback");
    first.r.send({
      type: "subscribe",
      packetId: 2,
      subscriptions: [sub(`${topic}/a`, 1)],
      properties: { subscriptionIdentifiers: [12] },
    });
    await first.r.next("suback");
    first.r.send({ type: "disconnect", reasonCode: 0 });
    await first.r.closed;
    const pub = await client();
    await pub.publishAsync(`${topic}/a`, "while away", { qos: 1 });
    await pub.publishAsync(`${topic}/b`, "and this", { qos: 1 });
    const back = await raw(id, { cleanStart: false, ...expiry });
    expect(back.connack.sessionPresent).toBe(true);
    const a = await back.r.next("publish");
    const b = await back.r.next("publish");
    expect(text(a.payload)).toBe("while away");
    expect([...(a.properties?.subscriptionIdentifiers ?? [])].sort()).toEqual([11, 11, 12]);
    expect(text(b.payload)).toBe("and this");
    expect(b.properties?.subscriptionIdentifiers).toEqual([11, 11]);
  });

  it("No Local: not sent back to the publisher (MQTT-3.8.3-3)", async () => {
    const topic = unique("nl");
    const self = await client();
    const inbox = new Inbox(self);
    await self.subscribeAsync(topic, { qos: 1, nl: true });
    // Its own marker does come back: No Local is not set on that subscription.
    await self.subscribeAsync(markerTopic(topic), { qos: 1 });
    await self.publishAsync(topic, "mine", { qos: 1 });
    await self.publishAsync(markerTopic(topic), "marker", { qos: 1 });
    expect(await inbox.until("marker")).toEqual([]);
    const other = await client();
    await other.publishAsync(topic, "theirs", { qos: 1 });
    await inbox.waitFor(2);
    expect(inbox.messages.map((m) => m.payload)).toEqual(["marker", "theirs"]);
  });

  it("Retain As Published keeps RETAIN on live forwarding (3.8.3.1)", async () => {
    const topic = unique("rap");
    const keep = await client();
    const kept = new Inbox(keep);
    await keep.subscribeAsync(topic, { qos: 1, rap: true });
    const plain = await client();
    const cleared = new Inbox(plain);
    await plain.subscribeAsync(topic, { qos: 1 });
    const pub = await client();
    await pub.publishAsync(topic, "r", { qos: 1, retain: true });
    expect((await kept.waitFor(1))[0]?.packet.retain).toBe(true);
    expect((await cleared.waitFor(1))[0]?.packet.retain).toBe(false);
  });

  it("Retain Handling 0 sends retained messages always, 1 only to a new subscription, 2 never", async () => {
    const topic = unique("rh");
    const pub = await client();
    await pub.publishAsync(topic, "kept", { qos: 1, retain: true });
    const count = async (rh: 0 | 1 | 2) => {
      const s = await client();
      const inbox = new Inbox(s);
      await s.subscribeAsync(topic, { qos: 1, rh });
      await s.subscribeAsync(topic, { qos: 1, rh });
      return (await afterRetained(s, inbox, pub, topic)).length;
    };
    expect(await count(0)).toBe(2);
    expect(await count(1)).toBe(1);
    expect(await count(2)).toBe(0);
  });
});

describe("properties travel with the message (3.3.2.3)", () => {
  it("forwards Response Topic, Correlation Data, Content Type, Payload Format and User Properties in order", async () => {
    const topic = unique("props");
    const s = await client();
    const inbox = new Inbox(s);
    await s.subscribeAsync(topic, { qos: 1 });
    const { r } = await raw(unique("props-tx"));
    r.send({
      type: "publish",
      topic,
      payload: bytes("{}"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 1,
      properties: {
        payloadFormatIndicator: 1,
        contentType: "application/json",
        responseTopic: `${topic}/reply`,
        correlationData: bytes("req-42"),
        userProperties: [
          ["b", "1"],
          ["a", "2"],
          ["b", "3"],
        ],
      },
    });
    await r.next("puback");
    // a raw subscriber sees the order on the wire
    const { r: rx } = await raw(unique("props-rx"));
    rx.send({ type: "subscribe", packetId: 1, subscriptions: [sub(topic, 1)] });
    await rx.next("suback");
    r.send({
      type: "publish",
      topic,
      payload: bytes("{}"),
      qos: 0,
      dup: false,
      retain: false,
      properties: {
        userProperties: [
          ["z", "1"],
          ["a", "2"],
          ["z", "3"],
        ],
      },
    });
    const wire = await rx.next("publish");
    expect(wire.properties?.userProperties).toEqual([
      ["z", "1"],
      ["a", "2"],
      ["z", "3"],
    ]);
    const [m] = await inbox.waitFor(1);
    expect(m?.packet.properties).toMatchObject({
      payloadFormatIndicator: true,
      contentType: "application/json",
      responseTopic: `${topic}/reply`,
    });
    expect(Buffer.from(m?.packet.properties?.correlationData as Buffer).toString()).toBe("req-42");
  });

  it("refuses a payload that is not UTF-8 though it says so with 0x99 (3.3.2.3.2 allows it)", async () => {
    const { r } = await raw(unique("pfi"));
    r.send({
      type: "publish",
      topic: unique("t"),
      payload: Uint8Array.of(0xc3, 0x28),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 5,
      properties: { payloadFormatIndicator: 1 },
    });
    const ack = await r.next("puback");
    expect(ack.reasonCode).toBe(ReasonCode.PayloadFormatInvalid);
    expect(ack.properties?.reasonString).toMatch(/UTF-8/);
  });

  it("leaves out reason strings when Request Problem Information is 0 (MQTT-3.1.2-29)", async () => {
    const { r } = await raw(unique("rpi"), { properties: { requestProblemInformation: 0 } });
    r.send({ type: "subscribe", packetId: 1, subscriptions: [sub("a/#/b")] });
    const suback = await r.next("suback");
    expect(suback.reasonCodes).toEqual([ReasonCode.TopicFilterInvalid]);
    expect(suback.properties).toBeUndefined();
    const { r: chatty } = await raw(unique("rpi1"));
    chatty.send({ type: "subscribe", packetId: 1, subscriptions: [sub("a/#/b")] });
    expect((await chatty.next("suback")).properties?.reasonString).toMatch(/#/);
  });
});

describe("Will Delay Interval and will properties (3.1.3.2)", () => {
  it("publishes the will after its delay, with its properties", async () => {
    const topic = unique("wd");
    const watch = await client();
    const inbox = new Inbox(watch);
    await watch.subscribeAsync(topic, { qos: 1 });
    const dying = await connect(url, {
      protocolVersion: 5,
      clientId: unique("wd-c"),
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic,
        payload: Buffer.from("late"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 2, contentType: "text/plain", userProperties: { why: "test" } },
      },
    });
    const dropped = Date.now();
    dropConnection(dying);
    const [m] = await inbox.waitFor(1, 10_000);
    expect(Date.now() - dropped).toBeGreaterThanOrEqual(1_800);
    expect(m?.payload).toBe("late");
    expect(m?.packet.properties).toMatchObject({
      contentType: "text/plain",
      userProperties: { why: "test" },
    });
  });

  it("forwards will properties when the will is published at once", async () => {
    const topic = unique("wp");
    const watch = await client();
    const inbox = new Inbox(watch);
    await watch.subscribeAsync(topic, { qos: 1 });
    const dying = await connect(url, {
      protocolVersion: 5,
      clientId: unique("wp-c"),
      will: {
        topic,
        payload: Buffer.from("{}"),
        qos: 1,
        retain: false,
        properties: {
          contentType: "application/json",
          responseTopic: `${topic}/r`,
          userProperties: { k: "v" },
        },
      },
    });
    dropConnection(dying);
    const [m] = await inbox.waitFor(1);
    expect(m?.packet.properties).toMatchObject({
      contentType: "application/json",
      responseTopic: `${topic}/r`,
      userProperties: { k: "v" },
    });
  });

  it("cancels the will when the client reconnects within the delay (MQTT-3.1.3-9)", async () => {
    const topic = unique("wdc");
    const clientId = unique("wdc-c");
    const watch = await client();
    const inbox = new Inbox(watch);
    await watch.subscribeAsync(topic, { qos: 1 });
    const options = {
      protocolVersion: 5 as const,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic,
        payload: Buffer.from("should not"),
        qos: 1 as const,
        retain: false,
        properties: { willDelayInterval: 2 },
      },
    };
    dropConnection(await connect(url, options));
    await offline(httpUrl, vars.API_TOKEN as string, clientId);
    const back = await connect(url, { ...options, will: undefined });
    open.push(back);
    // The marker: another client's will with the same delay, whose delay starts
    // later. A will that was not cancelled would have been due first.
    const marker = { ...options, clientId: unique("wdc-marker") };
    dropConnection(
      await connect(url, { ...marker, will: { ...marker.will, payload: Buffer.from("marker") } }),
    );
    expect(await inbox.until("marker", 10_000)).toEqual([]);
  });
});
