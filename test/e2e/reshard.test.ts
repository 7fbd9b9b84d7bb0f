/**
 * Re-sharding a live broker (DESIGN.md, "Re-sharding"; invariant 8): a 4-shard,
 * 3-gateway broker with retained messages, offline persistent sessions with queued
 * messages, a shared subscription, unacknowledged deliveries and live subscribers
 * is restarted on its storage with 8 shards and 5 gateways while a publisher keeps
 * publishing QoS 1. Afterwards every retained message is where a subscriber of its
 * exact topic and a new `#` subscriber find it (once, newest value), every queued
 * message reaches its session, and no acknowledged QoS 1 message is lost.
 */
import type { MqttClient } from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { layoutOf, shardOf } from "../../broker/routing.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { connect, Inbox, RawClient } from "../support/clients.ts";

const API_TOKEN = "reshard-token";
const VARS = {
  ALLOW_ANONYMOUS: "true",
  API_TOKEN,
  // The publisher goes as fast as its acknowledgements: above the default 100/s.
  PUBLISH_RATE: "5000",
  PUBLISH_BURST: "10000",
};
const BEFORE = { ...VARS, TOPIC_SHARDS: "4", GATEWAYS: "3" };
const AFTER = { ...VARS, TOPIC_SHARDS: "8", GATEWAYS: "5" };

/** Retained topics: their first level differs, so they spread over the shards. */
const RETAINED = 120;
const retainedTopic = (i: number) => `t${i}/state`;
/** Offline sessions, each with its own tree; one more holds a wildcard over all of them. */
const OFFLINE = 4;
const QUEUED_BEFORE = 10;
const QUEUED_AFTER = 5;
const LIVE_TOPICS = 8;
const HELD = 3;

const brokers: RunningBroker[] = [];
const clients: MqttClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  for (const b of brokers) await b.stop();
});

async function stats(broker: RunningBroker) {
  const res = await fetch(`${broker.httpUrl}/api/stats`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as {
    gateways: unknown[];
    shards: Array<{
      shard: string;
      retained: number;
      layout: { version: number; resharding: boolean };
      counters: Record<string, number>;
    }>;
  };
}

/** Connects a persistent session (5.0: kept for an hour). */
function resume(
  url: string,
  clientId: string,
  protocolVersion: 4 | 5,
  reconnectPeriod = 0,
): Promise<MqttClient> {
  return connect(url, {
    clientId,
    protocolVersion,
    clean: false,
    reconnectPeriod,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
  });
}

/** A persistent client that reconnects by itself (as devices do across a deploy). */
async function persistent(url: string, clientId: string, protocolVersion: 4 | 5): Promise<MqttClient> {
  const client = await resume(url, clientId, protocolVersion, 250);
  clients.push(client);
  return client;
}

describe("re-sharding 4×3 → 8×5 on a live broker", () => {
  it("keeps every retained message, queued message, subscription and acknowledged QoS 1 message", async () => {
    const a = await startBroker({ vars: BEFORE });
    brokers.push(a);

    // Retained messages over many first levels, and one to clear after the re-shard.
    const setup = await connect(a.url, { protocolVersion: 5, clientId: "rs-setup" });
    for (let i = 0; i < RETAINED; i++)
      await setup.publishAsync(retainedTopic(i), `a${i}`, { qos: 1, retain: true });

    // Offline persistent sessions: one tree each (exact first level), one wildcard over all,
    // and a member of a shared group.
    const offline = Array.from(
      { length: OFFLINE },
      (_, k) => ({ id: `rs-offline-${k}`, version: k % 2 ? 4 : 5 }) as const,
    );
    for (const o of offline) {
      const c = await resume(a.url, o.id, o.version);
      await c.subscribeAsync(`q${o.id.at(-1)}/#`, { qos: 1 });
      await c.endAsync();
    }
    const wild = await resume(a.url, "rs-offline-wild", 5);
    await wild.subscribeAsync("+/queued/#", { qos: 1 });
    await wild.endAsync();
    const member = await resume(a.url, "rs-member", 5);
    await member.subscribeAsync("$share/grp/shared/+", { qos: 1 });
    await member.endAsync();
    const queue = async (round: "before" | "after", n: number) => {
      for (let k = 0; k < OFFLINE; k++)
        for (let j = 0; j < n; j++)
          await setupOn().publishAsync(`q${k}/queued/${j}`, `${round}-${k}-${j}`, { qos: 1 });
      for (let j = 0; j < n; j++)
        await setupOn().publishAsync("shared/x", `${round}-shared-${j}`, { qos: 1 });
    };
    let setupClient = setup;
    const setupOn = () => setupClient;
    await queue("before", QUEUED_BEFORE);

    // Subscribers whose QoS 1 deliveries stay unacknowledged across the restart.
    const held: Array<{ id: string; packetId: number; payload: string }> = [];
    for (let k = 0; k < HELD; k++) {
      const raw = await RawClient.open(a.url, 4);
      await raw.connect(`rs-held-${k}`, { cleanStart: false });
      await raw.subscribe(`held${k}/x`, 1);
      await setup.publishAsync(`held${k}/x`, `held-${k}`, { qos: 1 });
      const p = await raw.next("publish");
      held.push({ id: `rs-held-${k}`, packetId: p.packetId as number, payload: `held-${k}` });
    }

    // Live subscribers: a wildcard (every shard) and exact filters (one shard each).
    const live5 = await persistent(a.url, "rs-live-5", 5);
    const inbox5 = new Inbox(live5);
    await live5.subscribeAsync("+/live", { qos: 1 });
    const live4 = await persistent(a.url, "rs-live-4", 4);
    const inbox4 = new Inbox(live4);
    await live4.subscribeAsync(
      Array.from({ length: LIVE_TOPICS }, (_, k) => `p${k}/live`),
      { qos: 1 },
    );

    // The publisher: QoS 1, one at a time, through the restart; every 5th also updates a retained topic.
    const publisher = await persistent(a.url, "rs-publisher", 5);
    const acked: number[] = [];
    const latest = new Map<string, string>();
    let stop = false;
    const publishing = (async () => {
      for (let i = 0; !stop; i++) {
        await publisher.publishAsync(`p${i % LIVE_TOPICS}/live`, String(i), { qos: 1 });
        acked.push(i);
        if (i % 5 === 0) {
          const t = retainedTopic((i / 5) % 20);
          await publisher.publishAsync(t, `b${i}`, { qos: 1, retain: true });
          latest.set(t, `b${i}`);
        }
      }
    })();
    const ackedAtLeast = async (n: number) => {
      while (acked.length < n) await new Promise((r) => setTimeout(r, 20));
    };
    await ackedAtLeast(50);

    // The deploy: every socket ends, and the broker comes back with the new layout on the same storage.
    await a.stop();
    const b = await startBroker({ vars: AFTER, port: a.port, persistTo: a.persistTo });
    brokers.push(b);
    const beforeRestart = acked.length;
    await ackedAtLeast(beforeRestart + 150);
    stop = true;
    await publishing;

    setupClient = await connect(b.url, { protocolVersion: 5, clientId: "rs-setup-2" });
    clients.push(setupClient);
    await queue("after", QUEUED_AFTER);
    await setupClient.publishAsync(retainedTopic(RETAINED - 1), "", { qos: 1, retain: true });
    latest.delete(retainedTopic(RETAINED - 1));
    // A last message on every live topic: once it arrives, everything before it has (order per publisher).
    for (let k = 0; k < LIVE_TOPICS; k++)
      await setupClient.publishAsync(`p${k}/live`, `end-${k}`, { qos: 1 });

    // Every shard of the new layout holds its rows: version 2 (4 shards was 1), none still moving.
    const s = await stats(b);
    expect(s.gateways).toHaveLength(5);
    expect(s.shards).toHaveLength(8);
    for (const shard of s.shards) expect(shard.layout).toEqual({ version: 2, resharding: false });
    expect(s.shards.reduce((n, x) => n + x.retained, 0)).toBe(RETAINED - 1);
    // Rows handed over: at least every retained message whose topic's shard changed
    // (jump hash, first level); subscription rows come on top, wildcards copied to the new shards.
    const v1 = layoutOf({ topicShards: 4, shardLevels: 1 });
    const v2 = layoutOf({ topicShards: 8, shardLevels: 1 });
    const moved = Array.from({ length: RETAINED }, (_, i) => retainedTopic(i)).filter(
      (t) => shardOf(t, v1) !== shardOf(t, v2),
    ).length;
    expect(moved).toBeGreaterThan(RETAINED / 4);
    expect(s.shards.reduce((n, x) => n + (x.counters.rows_received ?? 0), 0)).toBeGreaterThanOrEqual(moved);

    // No acknowledged QoS 1 message is lost to either live subscriber.
    const payloads = async (inbox: Inbox) => {
      for (;;) {
        const got = inbox.messages.map((m) => m.payload);
        if (Array.from({ length: LIVE_TOPICS }, (_, k) => `end-${k}`).every((e) => got.includes(e)))
          return got;
        await inbox.waitFor(inbox.messages.length + 1, 20_000);
      }
    };
    for (const inbox of [inbox5, inbox4]) {
      const got = new Set(await payloads(inbox));
      const lost = acked.filter((i) => !got.has(String(i)));
      expect(lost).toEqual([]);
    }

    // Unacknowledged deliveries are sent again, wherever the client lands among 5 gateways (MQTT-4.4.0-1).
    for (const h of held) {
      const raw = await RawClient.open(b.url, 4);
      expect((await raw.connect(h.id, { cleanStart: false })).sessionPresent).toBe(true);
      const again = await raw.next("publish", 15_000);
      expect(again).toMatchObject({ packetId: h.packetId, dup: true, qos: 1 });
      expect(new TextDecoder().decode(again.payload)).toBe(h.payload);
      raw.close();
    }

    // Every queued message reaches its session, in order.
    for (const o of offline) {
      const k = o.id.at(-1);
      const c = await resume(b.url, o.id, o.version);
      clients.push(c);
      const inbox = new Inbox(c);
      const got = await inbox.waitFor(QUEUED_BEFORE + QUEUED_AFTER, 15_000);
      expect(got.map((m) => m.payload)).toEqual([
        ...Array.from({ length: QUEUED_BEFORE }, (_, j) => `before-${k}-${j}`),
        ...Array.from({ length: QUEUED_AFTER }, (_, j) => `after-${k}-${j}`),
      ]);
    }
    const wild2 = await resume(b.url, "rs-offline-wild", 5);
    clients.push(wild2);
    const wildGot = await new Inbox(wild2).waitFor(OFFLINE * (QUEUED_BEFORE + QUEUED_AFTER), 15_000);
    expect(new Set(wildGot.map((m) => m.payload)).size).toBe(OFFLINE * (QUEUED_BEFORE + QUEUED_AFTER));
    const member2 = await resume(b.url, "rs-member", 5);
    clients.push(member2);
    const memberGot = await new Inbox(member2).waitFor(QUEUED_BEFORE + QUEUED_AFTER, 15_000);
    expect(memberGot.map((m) => m.payload)).toEqual([
      ...Array.from({ length: QUEUED_BEFORE }, (_, j) => `before-shared-${j}`),
      ...Array.from({ length: QUEUED_AFTER }, (_, j) => `after-shared-${j}`),
    ]);

    // Retained: each topic once, with its newest value, to exact filters and to `#` (5.0 MQTT-3.3.1-5, MQTT-3.3.1-9).
    const expected = new Map<string, string>();
    for (let i = 0; i < RETAINED - 1; i++)
      expected.set(retainedTopic(i), latest.get(retainedTopic(i)) ?? `a${i}`);
    const exact = await connect(b.url, { protocolVersion: 5, clientId: "rs-exact" });
    clients.push(exact);
    const exactInbox = new Inbox(exact);
    await exact.subscribeAsync(
      Array.from({ length: RETAINED }, (_, i) => retainedTopic(i)),
      { qos: 1 },
    );
    const exactGot = await exactInbox.waitFor(RETAINED - 1, 15_000);
    expect(new Map(exactGot.map((m) => [m.topic, m.payload]))).toEqual(expected);

    const all = await connect(b.url, { protocolVersion: 5, clientId: "rs-all" });
    clients.push(all);
    const allInbox = new Inbox(all);
    await all.subscribeAsync("#", { qos: 1 });
    await allInbox.waitFor(RETAINED - 1, 15_000);
    await setupClient.publishAsync("zz/marker", "marker", { qos: 1 });
    const untilMarker = async () => {
      while (!allInbox.messages.some((m) => m.topic === "zz/marker"))
        await allInbox.waitFor(allInbox.messages.length + 1, 15_000);
      return allInbox.messages.filter((m) => m.packet.retain);
    };
    const retained = await untilMarker();
    expect(retained).toHaveLength(RETAINED - 1);
    expect(new Map(retained.map((m) => [m.topic, m.payload]))).toEqual(expected);
  }, 240_000);
});
