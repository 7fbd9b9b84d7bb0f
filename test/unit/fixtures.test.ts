/**
 * Byte fixtures: every control packet of 3.1.1 and 5.0, encoded to exact bytes
 * (worked out by hand from the specifications) and decoded back.
 */
import { describe, expect, it } from "vitest";
import { decodePacket, encode, type Packet, type ProtocolVersion } from "../../mqtt/index.ts";
import { ascii, hex, toHex } from "../support/bytes.ts";

interface Fixture {
  name: string;
  version: ProtocolVersion;
  packet: Packet;
  bytes: string;
}

const fixtures: Fixture[] = [
  {
    name: "CONNECT 3.1 (MQIsdp, level 3)",
    version: 3,
    packet: {
      type: "connect",
      protocolVersion: 3,
      protocolName: "MQIsdp",
      clientId: "c",
      cleanStart: true,
      keepAlive: 60,
    },
    bytes: "10 0f 00 06 4d 51 49 73 64 70 03 02 00 3c 00 01 63",
  },
  {
    name: "CONNECT 3.1.1 with will, user name and password",
    version: 4,
    packet: {
      type: "connect",
      protocolVersion: 4,
      protocolName: "MQTT",
      clientId: "id",
      cleanStart: false,
      keepAlive: 10,
      username: "u",
      password: ascii("p"),
      will: { topic: "w", payload: ascii("x"), qos: 1, retain: true },
    },
    // flags: user 0x80 | pass 0x40 | will retain 0x20 | will qos1 0x08 | will 0x04 = 0xec
    bytes: "10 1a 00 04 4d 51 54 54 04 ec 00 0a 00 02 69 64 00 01 77 00 01 78 00 01 75 00 01 70",
  },
  {
    name: "CONNECT 5.0 with properties and will properties",
    version: 5,
    packet: {
      type: "connect",
      protocolVersion: 5,
      protocolName: "MQTT",
      clientId: "",
      cleanStart: true,
      keepAlive: 0,
      properties: { sessionExpiryInterval: 300, receiveMaximum: 10 },
      will: {
        topic: "w",
        payload: new Uint8Array(0),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 5 },
      },
    },
    bytes:
      "10 20 00 04 4d 51 54 54 05 06 00 00 08 11 00 00 01 2c 21 00 0a 00 00 05 18 00 00 00 05 00 01 77 00 00",
  },
  {
    name: "CONNACK 3.1.1 session present",
    version: 4,
    packet: { type: "connack", sessionPresent: true, reasonCode: 0 },
    bytes: "20 02 01 00",
  },
  {
    name: "CONNACK 5.0 with assigned client id",
    version: 5,
    packet: {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: { assignedClientIdentifier: "ab", topicAliasMaximum: 8 },
    },
    bytes: "20 0b 00 00 08 12 00 02 61 62 22 00 08",
  },
  {
    name: "PUBLISH 3.1.1 QoS 0 retained",
    version: 4,
    packet: { type: "publish", topic: "a/b", payload: ascii("hi"), qos: 0, dup: false, retain: true },
    bytes: "31 07 00 03 61 2f 62 68 69",
  },
  {
    name: "PUBLISH 3.1.1 QoS 2 DUP",
    version: 4,
    packet: {
      type: "publish",
      topic: "t",
      payload: ascii("x"),
      qos: 2,
      dup: true,
      retain: false,
      packetId: 7,
    },
    bytes: "3c 06 00 01 74 00 07 78",
  },
  {
    name: "PUBLISH 5.0 QoS 1 with properties",
    version: 5,
    packet: {
      type: "publish",
      topic: "t",
      payload: ascii("x"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 1,
      properties: {
        payloadFormatIndicator: 1,
        topicAlias: 3,
        userProperties: [
          ["k", "v"],
          ["k", "w"],
        ],
        subscriptionIdentifiers: [1, 200],
      },
    },
    bytes:
      "32 1f 00 01 74 00 01 18 01 01 23 00 03 26 00 01 6b 00 01 76 26 00 01 6b 00 01 77 0b 01 0b c8 01 78",
  },
  { name: "PUBACK 3.1.1", version: 4, packet: { type: "puback", packetId: 258 }, bytes: "40 02 01 02" },
  {
    name: "PUBACK 5.0 success, short form",
    version: 5,
    packet: { type: "puback", packetId: 1 },
    bytes: "40 02 00 01",
  },
  {
    name: "PUBACK 5.0 not authorized with reason string",
    version: 5,
    packet: { type: "puback", packetId: 1, reasonCode: 0x87, properties: { reasonString: "no" } },
    bytes: "40 09 00 01 87 05 1f 00 02 6e 6f",
  },
  {
    name: "PUBREC 5.0 no matching subscribers",
    version: 5,
    packet: { type: "pubrec", packetId: 2, reasonCode: 0x10 },
    bytes: "50 03 00 02 10",
  },
  { name: "PUBREC 3.1.1", version: 4, packet: { type: "pubrec", packetId: 2 }, bytes: "50 02 00 02" },
  { name: "PUBREL 3.1.1", version: 4, packet: { type: "pubrel", packetId: 2 }, bytes: "62 02 00 02" },
  {
    name: "PUBREL 5.0 packet id not found",
    version: 5,
    packet: { type: "pubrel", packetId: 2, reasonCode: 0x92 },
    bytes: "62 03 00 02 92",
  },
  { name: "PUBCOMP 3.1.1", version: 4, packet: { type: "pubcomp", packetId: 9 }, bytes: "70 02 00 09" },
  { name: "PUBCOMP 5.0", version: 5, packet: { type: "pubcomp", packetId: 9 }, bytes: "70 02 00 09" },
  {
    name: "SUBSCRIBE 3.1.1 two filters",
    version: 4,
    packet: {
      type: "subscribe",
      packetId: 10,
      subscriptions: [
        { topicFilter: "a/+", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: "#", qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
    },
    bytes: "82 0c 00 0a 00 03 61 2f 2b 01 00 01 23 02",
  },
  {
    name: "SUBSCRIBE 5.0 options and subscription identifier",
    version: 5,
    packet: {
      type: "subscribe",
      packetId: 1,
      properties: { subscriptionIdentifiers: [5] },
      subscriptions: [
        { topicFilter: "t", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
      ],
    },
    // options: qos 1 | nl 0x04 | rap 0x08 | rh 2 << 4 = 0x2d
    bytes: "82 09 00 01 02 0b 05 00 01 74 2d",
  },
  {
    name: "SUBACK 3.1.1 with failure",
    version: 4,
    packet: { type: "suback", packetId: 10, reasonCodes: [1, 0x80] },
    bytes: "90 04 00 0a 01 80",
  },
  {
    name: "SUBACK 5.0",
    version: 5,
    packet: { type: "suback", packetId: 1, reasonCodes: [0, 0x87] },
    bytes: "90 05 00 01 00 00 87",
  },
  {
    name: "UNSUBSCRIBE 3.1.1",
    version: 4,
    packet: { type: "unsubscribe", packetId: 3, topicFilters: ["a", "b/#"] },
    bytes: "a2 0a 00 03 00 01 61 00 03 62 2f 23",
  },
  {
    name: "UNSUBSCRIBE 5.0 with user property",
    version: 5,
    packet: {
      type: "unsubscribe",
      packetId: 3,
      topicFilters: ["a"],
      properties: { userProperties: [["a", "b"]] },
    },
    bytes: "a2 0d 00 03 07 26 00 01 61 00 01 62 00 01 61",
  },
  { name: "UNSUBACK 3.1.1", version: 4, packet: { type: "unsuback", packetId: 3 }, bytes: "b0 02 00 03" },
  {
    name: "UNSUBACK 5.0",
    version: 5,
    packet: { type: "unsuback", packetId: 3, reasonCodes: [0x00, 0x11] },
    bytes: "b0 05 00 03 00 00 11",
  },
  { name: "PINGREQ", version: 4, packet: { type: "pingreq" }, bytes: "c0 00" },
  { name: "PINGRESP", version: 5, packet: { type: "pingresp" }, bytes: "d0 00" },
  { name: "DISCONNECT 3.1.1", version: 4, packet: { type: "disconnect" }, bytes: "e0 00" },
  { name: "DISCONNECT 5.0 normal, short form", version: 5, packet: { type: "disconnect" }, bytes: "e0 00" },
  {
    name: "DISCONNECT 5.0 session taken over",
    version: 5,
    packet: { type: "disconnect", reasonCode: 0x8e },
    bytes: "e0 01 8e",
  },
  {
    name: "DISCONNECT 5.0 with session expiry",
    version: 5,
    packet: { type: "disconnect", reasonCode: 0x04, properties: { sessionExpiryInterval: 0 } },
    bytes: "e0 07 04 05 11 00 00 00 00",
  },
  {
    name: "AUTH 5.0 success, short form",
    version: 5,
    packet: { type: "auth", reasonCode: 0 },
    bytes: "f0 00",
  },
  {
    name: "AUTH 5.0 continue with method and data",
    version: 5,
    packet: {
      type: "auth",
      reasonCode: 0x18,
      properties: { authenticationMethod: "m", authenticationData: hex("01 02") },
    },
    bytes: "f0 0b 18 09 15 00 01 6d 16 00 02 01 02",
  },
];

describe("byte fixtures", () => {
  for (const f of fixtures) {
    it(`encodes ${f.name}`, () => {
      expect(toHex(encode(f.packet, f.version))).toBe(toHex(hex(f.bytes)));
    });
    it(`decodes ${f.name}`, () => {
      expect(decodePacket(hex(f.bytes), f.version)).toEqual(f.packet);
    });
  }

  it("covers every control packet type in both versions", () => {
    const seen = new Set(fixtures.map((f) => `${f.packet.type}@${f.version === 5 ? 5 : 4}`));
    const types = [
      "connect",
      "connack",
      "publish",
      "puback",
      "pubrec",
      "pubrel",
      "pubcomp",
      "subscribe",
      "suback",
      "unsubscribe",
      "unsuback",
      "disconnect",
    ];
    for (const t of types) {
      expect(seen, t).toContain(`${t}@4`);
      expect(seen, t).toContain(`${t}@5`);
    }
    expect(seen).toContain("auth@5");
    expect([...seen].some((s) => s.startsWith("pingreq"))).toBe(true);
    expect([...seen].some((s) => s.startsWith("pingresp"))).toBe(true);
  });

  it("encodes a 3.1 (level 3) CONNACK with its reserved byte 0, session present or not", () => {
    expect(toHex(encode({ type: "connack", sessionPresent: true, reasonCode: 0 }, 3))).toBe("20 02 00 00");
  });

  it.each([4, 5] as const)(
    "refuses a SUBSCRIBE or UNSUBSCRIBE with an empty topic filter as malformed (MQTT-4.7.3-1, level %i)",
    (v) => {
      const props = v === 5 ? "00 " : "";
      // SUBSCRIBE packet id 1, filter "" with options 0
      const sub = hex(`82 ${(v === 5 ? 6 : 5).toString(16).padStart(2, "0")} 00 01 ${props}00 00 00`);
      expect(decodePacket(sub, v)).toMatchObject({
        ok: false,
        reasonCode: 0x81,
        message: /empty topic filter/,
      });
      const unsub = hex(`a2 ${(v === 5 ? 5 : 4).toString(16).padStart(2, "0")} 00 01 ${props}00 00`);
      expect(decodePacket(unsub, v)).toMatchObject({
        ok: false,
        reasonCode: 0x81,
        message: /empty topic filter/,
      });
    },
  );

  it("encodes a PUBLISH whose remaining length needs two bytes", () => {
    const payload = new Uint8Array(200).fill(0x61);
    const bytes = encode({ type: "publish", topic: "t", payload, qos: 0, dup: false, retain: false }, 4);
    // remaining length 203 = 0xcb 0x01
    expect(toHex(bytes.subarray(0, 3))).toBe("30 cb 01");
    expect(bytes.length).toBe(3 + 203);
  });

  it("encodes a 5.0 property block longer than 127 bytes", () => {
    const long = "x".repeat(150);
    const packet: Packet = {
      type: "puback",
      packetId: 1,
      reasonCode: 0x80,
      properties: { reasonString: long },
    };
    const bytes = encode(packet, 5);
    expect(decodePacket(bytes, 5)).toEqual(packet);
    // property length 153 = 0x99 0x01 after the packet id and reason code
    expect(toHex(bytes.subarray(bytes[1]! > 127 ? 3 : 2, 8))).toBe("00 01 80 99 01");
  });
});

describe("encoded packets", () => {
  it("stay intact while later packets are encoded (they share slabs, never bytes)", () => {
    const kept: Array<[Packet, Uint8Array]> = [];
    for (let i = 0; i < 3000; i++) {
      const payload = new Uint8Array(i % 700).fill(i & 0xff);
      const p: Packet = {
        type: "publish",
        topic: `t/${i}`,
        payload,
        qos: 1,
        dup: false,
        retain: false,
        packetId: i + 1,
      };
      kept.push([p, encode(p, 4)]);
    }
    for (const [p, bytes] of kept) expect(decodePacket(bytes, 4)).toEqual(p);
  });
});
