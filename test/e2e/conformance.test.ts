/**
 * Conformance details that a peer broker's own test suite (Eclipse Mosquitto's
 * test/broker) found, each against the running Worker in both layouts and for
 * every protocol level it applies to. Each test names the statement it checks.
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { readConfig } from "../../broker/config.ts";
import { type ConnectPacket, type Packet, type ProtocolVersion, ReasonCode } from "../../mqtt/index.ts";
import { RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const raws: RawClient[] = [];
const utf8 = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

afterEach(() => {
  for (const r of raws.splice(0)) r.terminate();
});

async function raw(version: ProtocolVersion): Promise<RawClient> {
  const r = await RawClient.open(url, version, version === 3 ? "mqttv3.1" : "mqtt");
  raws.push(r);
  return r;
}

async function connected(
  version: ProtocolVersion,
  clientId = unique("conf"),
  extra: Partial<ConnectPacket> = {},
) {
  const r = await raw(version);
  r.sendConnect(clientId, { protocolVersion: version, ...extra });
  const connack = await r.next("connack");
  expect(connack.reasonCode).toBe(0);
  return r;
}

const subscription = (topicFilter: string, qos: 0 | 1 | 2 = 1) => ({
  topicFilter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0 as const,
});

/** The packets a client got before its socket closed (a protocol error closes it). */
async function closedAfter(r: RawClient): Promise<Packet[]> {
  await r.closed;
  return r.drain();
}

/**
 * Waits for the broker to end a connection for a fault: a 5.0 client gets
 * DISCONNECT with `reasonCode` first (4.13), a 3.1.1 client a plain close. The
 * packets it got before.
 */
async function endedWith(r: RawClient, v: ProtocolVersion, reasonCode: number): Promise<Packet[]> {
  const got = await closedAfter(r);
  if (v === 5) expect(got).toContainEqual(expect.objectContaining({ type: "disconnect", reasonCode }));
  return got;
}

describe("client ids the broker will not keep (MQTT-3.1.3-9; 5.0 MQTT-3.1.3-8)", () => {
  it.each([3, 4, 5] as const)(
    "a 65,000-character client id gets CONNACK 0x85 / 2 and a clean close (level %i)",
    async (v) => {
      const r = await raw(v);
      r.sendConnect("c".repeat(65_000), { protocolVersion: v });
      const connack = await r.next("connack");
      expect(connack.reasonCode).toBe(v === 5 ? ReasonCode.ClientIdentifierNotValid : 2);
      expect((await r.closed).code).toBe(1000);
    },
  );

  it.each([4, 5] as const)(
    "a client id with a control character is refused with 0x85 / 2 (level %i)",
    async (v) => {
      const r = await raw(v);
      r.sendConnect(`ctl\u0001${unique("x")}`, { protocolVersion: v });
      expect((await r.next("connack")).reasonCode).toBe(v === 5 ? ReasonCode.ClientIdentifierNotValid : 2);
    },
  );

  it("a CONNECT with 5,000 user properties is answered", async () => {
    const r = await raw(5);
    const userProperties = Array.from({ length: 5_000 }, (_, i): [string, string] => [`k${i}`, `v${i}`]);
    r.sendConnect(unique("props"), { properties: { userProperties } });
    expect((await r.next("connack")).reasonCode).toBe(0);
  });
});

describe("CONNACK", () => {
  it("of MQTT 3.1 (level 3) has its reserved byte 0, also when a session is resumed (3.1 3.2)", async () => {
    const id = unique("v31");
    const first = await connected(3, id, { cleanStart: false });
    first.close();
    await first.closed;
    const again = await raw(3);
    again.sendConnect(id, { protocolVersion: 3, cleanStart: false });
    await again.next("connack");
    expect(hex(again.frames[0] as Uint8Array)).toBe("20020000");
  });

  it("stays within the client's Maximum Packet Size, leaving out what may be left out (MQTT-3.1.2-24)", async () => {
    const r = await raw(5);
    r.sendConnect(unique("small"), { properties: { maximumPacketSize: 20, requestResponseInformation: 1 } });
    const connack = await r.next("connack");
    expect(connack.reasonCode).toBe(0);
    expect((r.frames[0] as Uint8Array).length).toBeLessThanOrEqual(20);
    // What the client needs to stay within our limits is kept.
    const config = readConfig(inject("brokerVars"));
    expect(connack.properties?.maximumPacketSize).toBe(config.maxPacketSize);
    expect(connack.properties?.receiveMaximum).toBe(config.receiveMaximum);
    expect([config.maxPacketSize, config.receiveMaximum]).toEqual([2 ** 20, 20]);
  });

  it("is not sent at all to a client whose Maximum Packet Size no CONNACK fits; the socket is closed", async () => {
    const r = await raw(5);
    r.sendConnect(unique("tiny"), { properties: { maximumPacketSize: 2 } });
    expect(await closedAfter(r)).toEqual([]);
  });
});

describe("zero-length topic filters make the packet malformed (MQTT-4.7.3-1)", () => {
  it.each([4, 5] as const)(
    "SUBSCRIBE with an empty filter: DISCONNECT 0x81 (5.0) or close (level %i)",
    async (v) => {
      const r = await connected(v);
      r.send({ type: "subscribe", packetId: 1, subscriptions: [subscription("")] });
      const got = await endedWith(r, v, ReasonCode.MalformedPacket);
      expect(got.filter((p) => p.type === "suback")).toEqual([]);
    },
  );

  it.each([4, 5] as const)(
    "UNSUBSCRIBE with an empty filter: DISCONNECT 0x81 (5.0) or close (level %i)",
    async (v) => {
      const r = await connected(v);
      r.send({ type: "unsubscribe", packetId: 1, topicFilters: ["a", ""] });
      const got = await endedWith(r, v, ReasonCode.MalformedPacket);
      expect(got.filter((p) => p.type === "unsuback")).toEqual([]);
    },
  );
});

describe("acknowledgements of the wrong QoS flow are protocol errors (4.3)", () => {
  /** A subscriber that has received one message at `qos`, unacknowledged. */
  async function holding(v: 4 | 5, qos: 1 | 2) {
    const topic = unique("ack");
    const sub = await connected(v);
    await sub.subscribe(topic, qos);
    const pub = await connected(v);
    pub.send({ type: "publish", topic, payload: utf8("m"), qos, dup: false, retain: false, packetId: 1 });
    await pub.next(qos === 1 ? "puback" : "pubrec");
    const message = await sub.next("publish");
    expect(message.qos).toBe(qos);
    return { sub, packetId: message.packetId as number };
  }

  it.each([
    [4, "pubcomp", 1],
    [5, "pubcomp", 1],
    [4, "pubrec", 1],
    [5, "pubrec", 1],
    [5, "puback", 2],
    [5, "pubcomp", 2],
  ] as const)(
    "level %i: %s for a QoS %i message in flight closes the connection (5.0: 0x82)",
    async (v, type, qos) => {
      const { sub, packetId } = await holding(v, qos);
      sub.send({ type, packetId });
      await endedWith(sub, v, ReasonCode.ProtocolError);
    },
  );

  it("a PUBREC with a failure code ends the QoS 2 flow: no PUBREL follows (5.0 4.3.3)", async () => {
    const topic = unique("pubrec-fail");
    const sub = await connected(5);
    await sub.subscribe(topic, 2);
    const pub = await connected(5);
    const publish = (packetId: number, payload: string) =>
      pub.send({
        type: "publish",
        topic,
        payload: utf8(payload),
        qos: 2,
        dup: false,
        retain: false,
        packetId,
      });
    publish(1, "refused by the client");
    const first = await sub.next("publish");
    expect(first.qos).toBe(2);
    sub.send({ type: "pubrec", packetId: first.packetId as number, reasonCode: ReasonCode.UnspecifiedError });
    // A marker after it: once it arrives, a PUBREL for the first would have come before.
    publish(2, "marker");
    const marker = await sub.next("publish");
    expect(new TextDecoder().decode(marker.payload)).toBe("marker");
    expect(sub.drain().filter((p) => p.type === "pubrel")).toEqual([]);
  });
});

describe("control characters in topics are refused (1.5.4, as Mosquitto does)", () => {
  it.each([4, 5] as const)(
    "PUBLISH to a topic with U+0007: DISCONNECT 0x90 (5.0) or close (level %i)",
    async (v) => {
      const r = await connected(v);
      r.send({
        type: "publish",
        topic: "bell/\u0007",
        payload: utf8("x"),
        qos: 0,
        dup: false,
        retain: false,
      });
      await endedWith(r, v, ReasonCode.TopicNameInvalid);
    },
  );

  it.each([4, 5] as const)(
    "SUBSCRIBE to a filter with U+0085: SUBACK 0x8F (5.0) / 0x80 (level %i)",
    async (v) => {
      const r = await connected(v);
      r.send({
        type: "subscribe",
        packetId: 3,
        subscriptions: [subscription("next\u0085line/#"), subscription(unique("fine"))],
      });
      expect((await r.next("suback")).reasonCodes).toEqual([
        v === 5 ? ReasonCode.TopicFilterInvalid : 0x80,
        1,
      ]);
    },
  );

  it("a will topic with a control character is refused at CONNECT", async () => {
    const r = await raw(5);
    r.sendConnect(unique("will"), { will: { topic: "w/\u001b", payload: utf8(""), qos: 0, retain: false } });
    expect((await r.next("connack")).reasonCode).toBe(ReasonCode.TopicNameInvalid);
  });
});

describe("anonymous access with a user name (as Mosquitto)", () => {
  it.each([4, 5] as const)(
    "a client that sends a user name, with or without a password, is let in when no credential store is configured (level %i)",
    async (v) => {
      await connected(v, unique("named"), { username: "device-7" });
      await connected(v, unique("named"), { username: "device-7", password: utf8("anything") });
    },
  );
});

describe("No matching subscribers (5.0 3.4.2.1, 3.5.2.1)", () => {
  it("a QoS 1 or 2 PUBLISH that reaches nobody is acknowledged with 0x10; one that reaches someone with 0x00", async () => {
    const pub = await connected(5);
    const nobody = unique("nobody");
    pub.send({
      type: "publish",
      topic: nobody,
      payload: utf8("x"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 1,
    });
    expect((await pub.next("puback")).reasonCode).toBe(ReasonCode.NoMatchingSubscribers);
    pub.send({
      type: "publish",
      topic: nobody,
      payload: utf8("x"),
      qos: 2,
      dup: false,
      retain: false,
      packetId: 2,
    });
    expect((await pub.next("pubrec")).reasonCode).toBe(ReasonCode.NoMatchingSubscribers);
    // 0x10 is a success: the QoS 2 flow completes.
    pub.send({ type: "pubrel", packetId: 2 });
    expect((await pub.next("pubcomp")).packetId).toBe(2);

    const someone = unique("someone");
    const sub = await connected(5);
    await sub.subscribe(someone, 1);
    pub.send({
      type: "publish",
      topic: someone,
      payload: utf8("x"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 3,
    });
    expect((await pub.next("puback")).reasonCode ?? 0).toBe(0);
  });

  it("a 3.1.1 PUBACK carries no reason code (the bytes are 40 02 00 01)", async () => {
    const pub = await connected(4);
    pub.send({
      type: "publish",
      topic: unique("nobody4"),
      payload: utf8("x"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 1,
    });
    await pub.next("puback");
    expect(hex(pub.frames.at(-1) as Uint8Array)).toBe("40020001");
  });
});
