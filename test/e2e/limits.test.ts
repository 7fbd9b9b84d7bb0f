/**
 * Cloudflare's limits that `wrangler dev` does not enforce (DESIGN.md invariant 6):
 * a call between objects carries at most 32 MiB (the objects refuse more where
 * it arrives, standing in for the platform), so batches are split in bytes.
 */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { gatewayCounters, startBroker } from "../support/broker.ts";
import { connect, Inbox, RawClient, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const open: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function client(): Promise<MqttClient> {
  const c = await connect(url, { protocolVersion: 5, clientId: unique("limits") });
  open.push(c);
  return c;
}

describe("calls between objects stay under 32 MiB", () => {
  it("40 clients each publishing a 1 MiB QoS 1 message at once all get PUBACK, and the subscriber every message", async () => {
    const topic = unique("big");
    const sub = await client();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(`${topic}/#`, { qos: 1 });
    const publishers = await Promise.all(Array.from({ length: 40 }, () => client()));
    // The largest payload a 1 MiB packet holds with this topic.
    const payload = Buffer.alloc(2 ** 20 - 256, 0x61);
    // Each publisher's PUBACKs, read off the wire: MQTT.js resolves a publish
    // answered 0x10 as it does one answered 0x00.
    const pubacks: Array<[number, number]> = [];
    publishers.forEach((p, i) => {
      p.on("packetreceive", (packet) => {
        if (packet.cmd === "puback") pubacks.push([i, packet.reasonCode ?? 0]);
      });
    });
    await Promise.all(publishers.map((p, i) => p.publishAsync(`${topic}/${i}`, payload, { qos: 1 })));
    expect(pubacks.sort(([a], [b]) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => [i, 0]));
    const got = await inbox.waitFor(40, 60_000);
    expect(new Set(got.map((m) => m.topic)).size).toBe(40);
    expect(got.every((m) => m.payload.length === payload.length)).toBe(true);
  }, 120_000);
});

describe("retained messages come a page at a time", () => {
  it("a new wildcard subscriber gets 12 MiB of retained messages (more than one call's worth), each once", async () => {
    const base = unique("retained-pages");
    const pub = await client();
    const payload = Buffer.alloc(2 ** 20 - 256, 0x62);
    for (let i = 0; i < 12; i++) await pub.publishAsync(`${base}/${i}`, payload, { qos: 1, retain: true });
    const sub = await client();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(`${base}/+`, { qos: 0 });
    const got = await inbox.waitFor(12, 60_000);
    expect(got.map((m) => m.topic).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `${base}/${i}`).sort(),
    );
    expect(got.every((m) => m.packet.retain && m.payload.length === payload.length)).toBe(true);
    // Cleared, so that other tests' wildcard subscriptions do not receive them.
    for (let i = 0; i < 12; i++) await pub.publishAsync(`${base}/${i}`, "", { qos: 1, retain: true });
  }, 120_000);
});

describe("settings past a platform limit", () => {
  it("are refused at start in plain words: every request, upgrades included, gets 500 naming them (a malformed ACL too)", async () => {
    const broker = await startBroker({
      vars: {
        MAX_PACKET_SIZE: String(32 * 2 ** 20),
        MAX_CONNECTIONS_PER_GATEWAY: "50000",
        // A list given as a string: refused, not spread into one pattern per character.
        ACL: JSON.stringify([{ user: "carol", publish: "carol/#" }]),
      },
      ready: { path: "/api/stats", status: 500 },
    });
    try {
      const res = await fetch(`${broker.httpUrl}/api/stats`);
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(text).toMatch(/MAX_PACKET_SIZE=33554432 .*2 MB/);
      expect(text).toMatch(/MAX_CONNECTIONS_PER_GATEWAY=50000 .*32,768 WebSockets/);
      expect(text).toContain('ACL[0] (user "carol"): publish must be a list of topic filters');
      const ws = new WebSocket(broker.url, "mqtt");
      await expect(new Promise((res, rej) => ws.once("open", res).once("error", rej))).rejects.toThrow(/500/);
    } finally {
      await broker.stop();
    }
  }, 120_000);
});

describe("an online client that acknowledges nothing", () => {
  it("has at most MAX_QUEUED_MESSAGES (25 here) waiting behind its window; the rest are dropped and counted, and the queue flows again once it acknowledges", async () => {
    const topic = unique("stalled");
    const sub = await RawClient.open(url, 5);
    sub.sendConnect(unique("stalled-sub"), { properties: { receiveMaximum: 1 } });
    await sub.next("connack");
    expect((await sub.subscribe(topic, 1)).reasonCodes).toEqual([1]);
    const before = await gatewayCounters(inject("brokerHttpUrl"), inject("brokerVars").API_TOKEN as string);
    const pub = await client();
    for (let i = 0; i < 40; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 });
    // One in flight (Receive Maximum 1), 25 waiting, 14 dropped.
    const first = await sub.next("publish");
    expect(new TextDecoder().decode(first.payload)).toBe("m0");
    const after = await gatewayCounters(inject("brokerHttpUrl"), inject("brokerVars").API_TOKEN as string);
    expect((after.dropped_queue_full ?? 0) - (before.dropped_queue_full ?? 0)).toBeGreaterThanOrEqual(14);
    // Acknowledging, it receives the 25 that waited, in order; and after them (the
    // queue has room again) a marker published now, not a 26th.
    const got: string[] = [];
    let p = first;
    for (let i = 0; i < 25; i++) {
      sub.send({ type: "puback", packetId: p.packetId as number });
      p = await sub.next("publish");
      got.push(new TextDecoder().decode(p.payload));
    }
    expect(got).toEqual(Array.from({ length: 25 }, (_, i) => `m${i + 1}`));
    sub.send({ type: "puback", packetId: p.packetId as number });
    await pub.publishAsync(topic, "marker", { qos: 1 });
    expect(new TextDecoder().decode((await sub.next("publish")).payload)).toBe("marker");
    sub.close();
  }, 60_000);
});
