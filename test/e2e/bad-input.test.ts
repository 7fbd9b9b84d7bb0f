/**
 * Bad input ends only the offending connection, with the right 5.0 reason code or
 * a clean close (DESIGN.md invariant 5); well-behaved clients on the same gateway
 * and shard carry on.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ReasonCode } from "../../mqtt/index.ts";
import { connect, Inbox, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const topic = unique("steady");
let sub: MqttClient;
let pub: MqttClient;
let inbox: Inbox;
let sent = 0;

beforeAll(async () => {
  sub = await connect(url, { protocolVersion: 5, clientId: unique("steady-sub") });
  inbox = new Inbox(sub);
  await sub.subscribeAsync(topic, { qos: 1 });
  pub = await connect(url, { protocolVersion: 4, clientId: unique("steady-pub") });
});

afterAll(async () => {
  await sub.endAsync(true);
  await pub.endAsync(true);
});

/** After each bad client, the good ones still exchange a message. */
async function othersStillWork() {
  sent++;
  await pub.publishAsync(topic, `still ${sent}`, { qos: 1 });
  await inbox.waitFor(sent);
  expect(inbox.messages.at(-1)?.payload).toBe(`still ${sent}`);
}

async function connected(version: 4 | 5) {
  const raw = await RawClient.open(url, version);
  await raw.connect(unique("bad"), { version });
  return raw;
}

describe("bad input", () => {
  it("a malformed packet: 5.0 gets DISCONNECT 0x81, 3.1.1 a close", async () => {
    const v5 = await connected(5);
    v5.send(Uint8Array.from([0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01])); // QoS 3 PUBLISH
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.MalformedPacket);
    await v5.closed;
    const v4 = await connected(4);
    v4.send(Uint8Array.from([0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01]));
    await v4.closed;
    await othersStillWork();
  });

  it("a Remaining Length not in the fewest bytes: 5.0 gets DISCONNECT 0x81 (MQTT-1.5.5-1); 3.1.1, which does not require it, is answered", async () => {
    const overlongPing = Uint8Array.from([0xc0, 0x80, 0x00]);
    const v5 = await connected(5);
    v5.send(overlongPing);
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.MalformedPacket);
    await v5.closed;
    const v4 = await connected(4);
    v4.send(overlongPing);
    await v4.next("pingresp");
    v4.close();
    await othersStillWork();
  });

  it("a packet over the maximum size: DISCONNECT 0x95 (5.0 3.1.2.11.4)", async () => {
    const v5 = await connected(5);
    // fixed header announcing 2 MiB, more than the 1 MiB default maximum
    v5.send(Uint8Array.from([0x30, 0x80, 0x80, 0x80, 0x01]));
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.PacketTooLarge);
    await v5.closed;
    await othersStillWork();
  });

  it("a text WebSocket frame closes the connection (MQTT-6.0.0-1)", async () => {
    const v4 = await connected(4);
    v4.ws.send("hello");
    // 3.1.1 has no DISCONNECT to send: a protocol error's close (RFC 6455 1002), nothing else.
    expect((await v4.closed).code).toBe(1002);
    expect(v4.drain()).toEqual([]);
    await othersStillWork();
  });

  it("an invalid topic name in PUBLISH: DISCONNECT 0x90", async () => {
    const v5 = await connected(5);
    v5.send({
      type: "publish",
      topic: "a/+/b",
      payload: new Uint8Array(0),
      qos: 0,
      dup: false,
      retain: false,
    });
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.TopicNameInvalid);
    await v5.closed;
    await othersStillWork();
  });

  it("a server-to-client packet from a client: DISCONNECT 0x82", async () => {
    const v5 = await connected(5);
    v5.send({ type: "suback", packetId: 1, reasonCodes: [0] });
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
    await v5.closed;
    await othersStillWork();
  });

  it("random bytes after CONNECT end only that connection", async () => {
    for (let i = 0; i < 10; i++) {
      const raw = await connected(i % 2 === 0 ? 4 : 5);
      const junk = Uint8Array.from({ length: 64 }, (_, j) => (j * 73 + i * 31) & 0xff);
      junk[0] = 0x00; // reserved type: always malformed
      raw.send(junk);
      // Malformed (MQTT-4.13.1-1): 5.0 is told 0x81 first; either way a protocol error's close.
      expect((await raw.closed).code).toBe(1002);
      const got = raw.drain();
      if (i % 2 === 0) expect(got).toEqual([]);
      else
        expect(got.map((p) => p.type === "disconnect" && p.reasonCode)).toEqual([ReasonCode.MalformedPacket]);
    }
    await othersStillWork();
  });

  it("a packet split across many frames is reassembled", async () => {
    const raw = await connected(4);
    const body = new TextEncoder().encode("split payload");
    const bytes = Uint8Array.from([
      0x30,
      2 + topic.length + body.length,
      0,
      topic.length,
      ...new TextEncoder().encode(topic),
      ...body,
    ]);
    for (const b of bytes) raw.ws.send(Uint8Array.of(b));
    sent++;
    await inbox.waitFor(sent);
    expect(inbox.messages.at(-1)?.payload).toBe("split payload");
    raw.close();
  });
});
