/** Clean and persistent sessions, offline queues, resending, and takeover. */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import { ReasonCode } from "../../mqtt/index.ts";
import { clientInfo, offline } from "../support/broker.ts";
import { connect, dropConnection, Inbox, markerTopic, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const httpUrl = inject("brokerHttpUrl");
const apiToken = inject("brokerVars").API_TOKEN as string;
const open: MqttClient[] = [];

async function client(options: Parameters<typeof connect>[1]) {
  const c = await connect(url, options);
  open.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

describe.each([4, 5] as const)("sessions, protocol %i", (version) => {
  const persistent =
    version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };

  it("a clean session starts without state (MQTT-3.1.2-6, MQTT-3.2.2-1; 5.0 MQTT-3.1.2-4, MQTT-3.2.2-2)", async () => {
    const clientId = unique("clean");
    const a = await client({ protocolVersion: version, clientId, clean: true });
    await a.subscribeAsync(unique("t"), { qos: 1 });
    await a.endAsync();
    const raw = await RawClient.open(url, version);
    const connack = await raw.connect(clientId, { version, cleanStart: true });
    expect(connack.sessionPresent).toBe(false);
    raw.close();
  });

  it("a persistent session keeps subscriptions and queues QoS 1/2 while offline (MQTT-3.1.2-4, MQTT-3.2.2-2; 5.0 MQTT-3.1.2-5, MQTT-3.2.2-3)", async () => {
    const clientId = unique("persist");
    const topic = unique("t");
    const a = await client({ protocolVersion: version, clientId, ...persistent });
    await a.subscribeAsync(topic, { qos: 2 });
    await a.endAsync();

    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    // QoS 0 first: one publisher's messages are routed in order, so once q2 is
    // acknowledged q0 has been routed too (and not just delivered late, live).
    await pub.publishAsync(topic, "q0", { qos: 0 });
    await pub.publishAsync(topic, "q1", { qos: 1 });
    await pub.publishAsync(topic, "q2", { qos: 2 });

    const raw = await RawClient.open(url, version);
    const connack = await raw.connect(clientId, { version, cleanStart: false });
    expect(connack.sessionPresent).toBe(true);
    const first = await raw.next("publish");
    const second = await raw.next("publish");
    expect([first, second].map((p) => new TextDecoder().decode(p.payload))).toEqual(["q1", "q2"]);
    expect([first.qos, second.qos]).toEqual([1, 2]);
    // QoS 0 is not queued for an offline session: nothing else comes before a
    // marker published now (new messages wait behind a resumed session's queue).
    await pub.publishAsync(topic, "marker", { qos: 1 });
    expect(await raw.publishesUntil("marker")).toEqual([]);
    raw.close();
  });

  it("resends unacknowledged messages with DUP and the same packet id on reconnect (MQTT-4.4.0-1)", async () => {
    const clientId = unique("resend");
    const topic = unique("t");
    const sub = await RawClient.open(url, version);
    // 5.0 needs a session expiry for the session to outlive the connection
    sub.sendConnect(clientId, {
      cleanStart: false,
      ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
    });
    await sub.next("connack");
    await sub.subscribe(topic, 2);
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    await pub.publishAsync(topic, "one", { qos: 1 });
    await pub.publishAsync(topic, "two", { qos: 2 });
    await pub.publishAsync(topic, "three", { qos: 2 });
    const p1 = await sub.next("publish");
    const p2 = await sub.next("publish");
    const p3 = await sub.next("publish");
    // withhold PUBACK for p1; PUBREC for p2 (then PUBREL arrives); nothing for p3
    sub.send({ type: "pubrec", packetId: p2.packetId as number });
    const rel = await sub.next("pubrel");
    expect(rel.packetId).toBe(p2.packetId);
    sub.terminate();
    await sub.closed;

    const again = await RawClient.open(url, version);
    const connack = await again.connect(clientId, { version, cleanStart: false });
    expect(connack.sessionPresent).toBe(true);
    const r1 = await again.next("publish");
    const r3 = await again.next("publish");
    const relAgain = await again.next("pubrel");
    expect(r1).toMatchObject({ packetId: p1.packetId, dup: true, qos: 1 });
    expect(new TextDecoder().decode(r1.payload)).toBe("one");
    expect(r3).toMatchObject({ packetId: p3.packetId, dup: true, qos: 2 });
    expect(relAgain.packetId).toBe(p2.packetId);
    // no second PUBLISH of "two": QoS 2 is never delivered twice
    await pub.publishAsync(topic, "marker", { qos: 1 });
    expect(await again.publishesUntil("marker")).toEqual([]);
    again.send({ type: "puback", packetId: r1.packetId as number });
    again.send({ type: "pubcomp", packetId: relAgain.packetId });
    again.send({ type: "pubrec", packetId: r3.packetId as number });
    expect((await again.next("pubrel")).packetId).toBe(r3.packetId);
    again.send({ type: "pubcomp", packetId: r3.packetId as number });
    again.close();
  });

  it("clean start discards a stored session (MQTT-3.1.2-6; 5.0 MQTT-3.1.2-4)", async () => {
    const clientId = unique("discard");
    const topic = unique("t");
    const a = await client({ protocolVersion: version, clientId, ...persistent });
    await a.subscribeAsync(topic, { qos: 1 });
    await a.endAsync();
    const b = await client({ protocolVersion: version, clientId, clean: true });
    const inbox = new Inbox(b);
    await b.subscribeAsync(markerTopic(topic), { qos: 1 });
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    await pub.publishAsync(topic, "x", { qos: 1 });
    await pub.publishAsync(markerTopic(topic), "marker", { qos: 1 });
    expect(await inbox.until("marker")).toEqual([]);
  });

  it("a second connection with the same client id takes the session over (MQTT-3.1.4-2; 5.0 MQTT-3.1.4-3)", async () => {
    const clientId = unique("takeover");
    const topic = unique("t");
    const first = await RawClient.open(url, version);
    await first.connect(clientId, { version, cleanStart: version !== 4 });
    await first.subscribe(topic, 1);

    const second = await connect(url, {
      protocolVersion: version,
      clientId,
      clean: version === 5,
    });
    open.push(second);
    if (version === 5) {
      // 5.0: the old connection gets DISCONNECT 0x8E Session taken over
      expect((await first.next("disconnect")).reasonCode).toBe(ReasonCode.SessionTakenOver);
    }
    await first.closed;
    expect(second.connected).toBe(true);
  });

  it("a clean session is taken over by a clean connection on any gateway: the old one ends with its will, the new one starts empty (MQTT-3.1.4-2, MQTT-3.1.2-8; 5.0 MQTT-3.1.4-3)", async () => {
    const clientId = unique("clean-hop");
    const topic = unique("t");
    const watcher = await client({ protocolVersion: version, clientId: unique("w") });
    const wills = new Inbox(watcher);
    await watcher.subscribeAsync(`${topic}/will`, { qos: 1 });
    const first = await RawClient.open(url, version);
    first.sendConnect(clientId, {
      cleanStart: true,
      keepAlive: 0,
      will: {
        topic: `${topic}/will`,
        payload: new TextEncoder().encode("first gone"),
        qos: 1,
        retain: false,
      },
    });
    await first.next("connack");
    await first.subscribe(topic, 1);

    const second = await RawClient.open(url, version);
    expect((await second.connect(clientId, { version, cleanStart: true })).sessionPresent).toBe(false);
    if (version === 5) expect((await first.next("disconnect")).reasonCode).toBe(ReasonCode.SessionTakenOver);
    await first.closed;
    const [will] = await wills.waitFor(1);
    expect(will?.payload).toBe("first gone");
    // The new session has none of the old one's subscriptions (MQTT-3.1.2-6; 5.0 MQTT-3.1.2-4): a message
    // to the old filter does not reach it, the marker after it does.
    await second.subscribe(`${topic}/marker`, 1);
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    await pub.publishAsync(topic, "old filter", { qos: 1 });
    await pub.publishAsync(`${topic}/marker`, "marker", { qos: 1 });
    const got = await second.next("publish");
    expect(got.topic).toBe(`${topic}/marker`);
    second.close();
  });

  it("clean and persistent connections with one client id take each other over, and a clean start discards the stored session (MQTT-3.1.2-6; 5.0 MQTT-3.1.2-4)", async () => {
    const clientId = unique("mixed");
    const topic = unique("t");
    const persistentConnect = (r: RawClient) =>
      r.connect(clientId, { version, cleanStart: false, ...(version === 5 ? { expiry: 300 } : {}) });
    // Clean first (its registry holds it), then a persistent connection (its Session holds it).
    const clean = await RawClient.open(url, version);
    await clean.connect(clientId, { version, cleanStart: true });
    const kept = await RawClient.open(url, version);
    expect((await persistentConnect(kept)).sessionPresent).toBe(false);
    await clean.closed;
    await kept.subscribe(topic, 1);
    // Then clean again: the persistent connection ends and its session is discarded.
    const cleanAgain = await RawClient.open(url, version);
    expect((await cleanAgain.connect(clientId, { version, cleanStart: true })).sessionPresent).toBe(false);
    await kept.closed;
    cleanAgain.close();
    await cleanAgain.closed;
    const back = await RawClient.open(url, version);
    expect((await persistentConnect(back)).sessionPresent).toBe(false);
    await back.subscribe(`${topic}/marker`, 1, 2);
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    await pub.publishAsync(topic, "to the discarded subscription", { qos: 1 });
    await pub.publishAsync(`${topic}/marker`, "marker", { qos: 1 });
    expect((await back.next("publish")).topic).toBe(`${topic}/marker`);
    back.close();
  });

  it("takeover works across gateways, many times over", async () => {
    // With several gateways the connections land on different ones at random.
    const clientId = unique("hop");
    const topic = unique("t");
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    let last: MqttClient | undefined;
    for (let i = 0; i < 6; i++) {
      const c = await connect(url, { protocolVersion: version, clientId, ...persistent });
      if (i === 0) await c.subscribeAsync(topic, { qos: 1 });
      last = c;
    }
    open.push(last as MqttClient);
    const inbox = new Inbox(last as MqttClient);
    await pub.publishAsync(topic, "after hops", { qos: 1 });
    const [m] = await inbox.waitFor(1);
    expect(m?.payload).toBe("after hops");
  });

  it("a takeover keeps the subscriptions the old connection had: one it unsubscribed stays gone (MQTT-3.1.4-2, MQTT-3.1.2-4; 5.0 MQTT-3.1.4-3, MQTT-3.1.2-5)", async () => {
    const clientId = unique("unsub-takeover");
    // One first level: the same shard, so the publisher's order holds across both topics.
    const base = unique("t");
    const first = await connect(url, { protocolVersion: version, clientId, ...persistent });
    await first.subscribeAsync([`${base}/kept`, `${base}/gone`], { qos: 1 });
    await first.endAsync();
    // Resumed, then unsubscribed while online.
    const second = await client({ protocolVersion: version, clientId, ...persistent });
    await second.unsubscribeAsync(`${base}/gone`);
    // Taken over by a third connection.
    const third = await client({ protocolVersion: version, clientId, ...persistent });
    const inbox = new Inbox(third);
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    await pub.publishAsync(`${base}/gone`, "not for me", { qos: 1 });
    await pub.publishAsync(`${base}/kept`, "marker", { qos: 1 });
    const [m] = await inbox.waitFor(1);
    expect([m?.topic, m?.payload]).toEqual([`${base}/kept`, "marker"]);
  });

  it("keeps at most MAX_QUEUED_MESSAGES for an offline session, dropping the newest", async () => {
    // The end-to-end broker runs with MAX_QUEUED_MESSAGES = 25.
    const max = Number(inject("brokerVars").MAX_QUEUED_MESSAGES);
    const clientId = unique("queue");
    const topic = unique("t");
    const a = await client({ protocolVersion: version, clientId, ...persistent });
    await a.subscribeAsync(topic, { qos: 1 });
    await a.endAsync();
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    for (let i = 0; i < max + 5; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    // Every publish is acknowledged, so the queue is what it will be: exactly max.
    expect((await clientInfo(httpUrl, apiToken, clientId)).body).toMatchObject({
      online: false,
      queued: max,
    });
    const b = await connect(url, { protocolVersion: version, clientId, ...persistent });
    open.push(b);
    const inbox = new Inbox(b);
    await inbox.waitFor(max);
    expect(inbox.messages.map((m) => Number(m.payload))).toEqual(Array.from({ length: max }, (_, i) => i));
  });

  it("an abrupt drop of a persistent client keeps its session", async () => {
    const clientId = unique("drop");
    const topic = unique("t");
    const a = await connect(url, { protocolVersion: version, clientId, ...persistent });
    await a.subscribeAsync(topic, { qos: 1 });
    dropConnection(a);
    await offline(httpUrl, apiToken, clientId);
    const pub = await client({ protocolVersion: version, clientId: unique("p") });
    await pub.publishAsync(topic, "kept", { qos: 1 });
    const b = await client({ protocolVersion: version, clientId, ...persistent });
    const inbox = new Inbox(b);
    expect((await inbox.waitFor(1))[0]?.payload).toBe("kept");
  });
});
