/** The WebSocket upgrade, CONNECT/CONNACK, keep-alive and DISCONNECT, over a real socket. */
import { describe, expect, inject, it } from "vitest";
import { ReasonCode } from "../../mqtt/index.ts";
import { clientInfo, clientState } from "../support/broker.ts";
import { connect, RawClient, sleep, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const httpUrl = inject("brokerHttpUrl");
const apiToken = inject("brokerVars").API_TOKEN as string;

describe("WebSocket upgrade at /mqtt", () => {
  it("answers a plain GET / (the broker is up)", async () => {
    const res = await fetch(`${httpUrl}/`);
    expect(res.status).toBe(200);
  });

  it("refuses a request that is not an upgrade with 426", async () => {
    const res = await fetch(`${httpUrl}/mqtt`);
    expect(res.status).toBe(426);
  });

  it("refuses an upgrade without the mqtt subprotocol with 400", async () => {
    await expect(RawClient.open(url, 4, "chat")).rejects.toThrow(/400/);
  });

  it.each(["mqtt", "mqttv3.1"])("echoes the %s subprotocol (MQTT-6.0.0-4)", async (protocol) => {
    const client = await RawClient.open(url, 4, protocol);
    expect(client.ws.protocol).toBe(protocol);
    client.close();
  });
});

describe("CONNECT and CONNACK", () => {
  it.each([3, 4, 5] as const)("accepts protocol level %i", async (version) => {
    const client = await RawClient.open(url, version);
    const connack = await client.connect(unique("c"), { version });
    expect(connack).toMatchObject({ type: "connack", reasonCode: 0, sessionPresent: false });
    client.close();
  });

  it("MQTT.js connects with protocol 4 and 5", async () => {
    for (const protocolVersion of [4, 5] as const) {
      const client = await connect(url, { protocolVersion, clientId: unique("js") });
      expect(client.connected).toBe(true);
      await client.endAsync();
    }
  });

  it("assigns a client id to an empty one with clean start, and says so in 5.0 (MQTT-3.1.3-6, MQTT-3.2.2-16)", async () => {
    const client = await RawClient.open(url, 5);
    const connack = await client.connect("", { version: 5 });
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.assignedClientIdentifier).toMatch(/^nimbus-/);
    client.close();
    const v4 = await RawClient.open(url, 4);
    expect((await v4.connect("", { version: 4, cleanStart: true })).reasonCode).toBe(0);
    v4.close();
  });

  it("refuses an empty client id without clean session in 3.1.1 with return code 0x02 (MQTT-3.1.3-8)", async () => {
    const client = await RawClient.open(url, 4);
    const connack = await client.connect("", { version: 4, cleanStart: false });
    expect(connack.reasonCode).toBe(0x02);
    await client.closed;
  });

  it("answers an unsupported protocol level with return code 0x01 and closes (MQTT-3.1.2-2)", async () => {
    const client = await RawClient.open(url, 4);
    // CONNECT "MQTT" level 6
    client.send(Uint8Array.from([0x10, 0x0c, 0, 4, 0x4d, 0x51, 0x54, 0x54, 6, 2, 0, 60, 0, 0]));
    const connack = await client.next("connack");
    expect(connack.reasonCode).toBe(0x01);
    await client.closed;
  });

  it("closes when the first packet is not CONNECT (MQTT-3.1.0-1)", async () => {
    const client = await RawClient.open(url, 4);
    client.send({ type: "pingreq" });
    await client.closed;
    expect(client.drain()).toEqual([]);
  });

  it("closes on a second CONNECT (MQTT-3.1.0-2); 5.0 gets DISCONNECT 0x82", async () => {
    const v4 = await RawClient.open(url, 4);
    await v4.connect(unique("twice"));
    await v4.connect(unique("twice")).catch(() => undefined);
    await v4.closed;

    const v5 = await RawClient.open(url, 5);
    const id = unique("twice5");
    await v5.connect(id, { version: 5 });
    v5.send({
      type: "connect",
      protocolVersion: 5,
      protocolName: "MQTT",
      clientId: id,
      cleanStart: true,
      keepAlive: 0,
    });
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.ProtocolError);
    await v5.closed;
  });

  it("closes a socket that sends no CONNECT within the timeout", async () => {
    const client = await RawClient.open(url, 4);
    const start = Date.now();
    await client.closed;
    // CONNECT_TIMEOUT is 3 s in the test configuration
    expect(Date.now() - start).toBeGreaterThanOrEqual(2_500);
  });
});

describe("keep-alive", () => {
  it("answers PINGREQ with PINGRESP (MQTT-3.12.4-1)", async () => {
    const client = await RawClient.open(url, 4);
    await client.connect(unique("ping"));
    client.send({ type: "pingreq" });
    expect(await client.next("pingresp")).toEqual({ type: "pingresp" });
    client.close();
  });

  it("closes a silent client after 1.5 × keep-alive (3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22); 5.0 gets DISCONNECT 0x8D", async () => {
    const v4 = await RawClient.open(url, 4);
    await v4.connect(unique("ka"), { keepAlive: 1 });
    const v5 = await RawClient.open(url, 5);
    await v5.connect(unique("ka5"), { version: 5, keepAlive: 1 });
    const start = Date.now();
    await v4.closed;
    expect((await v5.next("disconnect")).reasonCode).toBe(ReasonCode.KeepAliveTimeout);
    await v5.closed;
    expect(Date.now() - start).toBeGreaterThanOrEqual(1_400);
  });

  it("keeps a client that pings within its keep-alive", async () => {
    const client = await RawClient.open(url, 4);
    await client.connect(unique("alive"), { keepAlive: 1 });
    for (let i = 0; i < 4; i++) {
      await sleep(700);
      client.send({ type: "pingreq" });
      await client.next("pingresp");
    }
    expect(client.isClosed).toBe(false);
    client.close();
  });
});

describe("DISCONNECT", () => {
  it("a client DISCONNECT closes the connection and ends its clean session, sending nothing back (3.14.4)", async () => {
    const client = await RawClient.open(url, 4);
    const clientId = unique("bye");
    await client.connect(clientId);
    expect((await clientInfo(httpUrl, apiToken, clientId)).body).toMatchObject({ online: true });
    client.send({ type: "disconnect" });
    // Closed by the broker, normally: the client did not close it.
    expect((await client.closed).code).toBe(1000);
    expect(client.drain()).toEqual([]);
    // The session ended with the connection: the client id is free.
    await clientState(httpUrl, apiToken, clientId, ({ status }) => status === 404);
  });
});
