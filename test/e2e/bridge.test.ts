/**
 * A bridge to a local Mosquitto over TCP (README, Integrations): topics go both
 * ways with the prefixes applied, a topic bridged both ways does not loop, and
 * after Mosquitto restarts the bridge connects again and delivers the QoS 1
 * messages that waited meanwhile. What the remote side sends is checked as the
 * HTTP API checks a message: through Mosquitto (a `$SYS` topic by way of the
 * prefix, a payload past MAX_PACKET_SIZE) and from a remote broker that keeps
 * to no rule (a control character, a wildcard, an empty topic, a 64 MiB header).
 */
import type { MqttClient } from "mqtt";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BridgeStatus } from "../../durable-objects/contracts.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { withIntegrationsPanel } from "../support/browser.ts";
import { connect, Inbox, unique } from "../support/clients.ts";
import { type HostileRemote, rawPublish, startHostileRemote } from "../support/hostile-remote.ts";
import { type RunningMosquitto, startMosquitto } from "../support/mosquitto.ts";
import { until } from "../support/until.ts";

const API_TOKEN = "bridge-token";
let broker: RunningBroker;
let mosquitto: RunningMosquitto;
let hostile: HostileRemote;
const clients: MqttClient[] = [];

async function local(): Promise<MqttClient> {
  const c = await connect(broker.url, { protocolVersion: 5, clientId: unique("local") });
  clients.push(c);
  return c;
}

/** A client of Mosquitto; `clientId` and clean false keep its session across Mosquitto's restart. */
async function remote(clientId = unique("remote"), clean = true): Promise<MqttClient> {
  const c = await connect(mosquitto.url, {
    protocolVersion: 4,
    clientId,
    clean,
    reconnectPeriod: clean ? 0 : 200,
  });
  clients.push(c);
  return c;
}

async function bridges(): Promise<BridgeStatus[]> {
  const res = await fetch(`${broker.httpUrl}/api/bridges`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as BridgeStatus[];
}

async function bridge(name: string): Promise<BridgeStatus> {
  const b = (await bridges()).find((x) => x.name === name);
  if (b === undefined) throw new Error(`no bridge ${name}`);
  return b;
}

async function connectedAfter(connects: number, name = "plant"): Promise<BridgeStatus> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const b = await bridge(name);
    if (b !== undefined && b.state === "connected" && b.connects > connects) return b;
    if (Date.now() > deadline) throw new Error(`bridge not connected: ${JSON.stringify(b)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  mosquitto = await startMosquitto({ persistence: true });
  hostile = await startHostileRemote();
  const config = [
    {
      name: "plant",
      host: "127.0.0.1",
      port: mosquitto.port,
      // Plain TCP to a local test broker: TLS is the default.
      tls: false,
      keepAlive: 10,
      topics: [
        { pattern: "sensors/#", direction: "in", qos: 1, localPrefix: "plant/", remotePrefix: "" },
        { pattern: "cmd/#", direction: "out", qos: 1, localPrefix: "", remotePrefix: "nimbus/" },
        { pattern: "both/#", direction: "both", qos: 1 },
        // Whatever comes under up/ arrives here without it: up/$SYS/x would be $SYS/x.
        { pattern: "#", direction: "in", qos: 1, localPrefix: "", remotePrefix: "up/" },
      ],
    },
    {
      // 3.1.1 cannot tell the remote broker a Maximum Packet Size.
      name: "old311",
      host: "127.0.0.1",
      port: mosquitto.port,
      tls: false,
      keepAlive: 10,
      protocolVersion: 4,
      topics: [{ pattern: "#", direction: "in", qos: 1, localPrefix: "old/", remotePrefix: "old/" }],
    },
    {
      name: "hostile",
      host: "127.0.0.1",
      port: hostile.port,
      tls: false,
      // A PINGREQ every 2.5 s.
      keepAlive: 5,
      topics: [{ pattern: "#", direction: "in", qos: 1, localPrefix: "", remotePrefix: "up/" }],
    },
  ];
  broker = await startBroker({
    vars: { ALLOW_ANONYMOUS: "true", API_TOKEN, BRIDGES: JSON.stringify(config) },
  });
  await connectedAfter(0);
  await connectedAfter(0, "old311");
  await connectedAfter(0, "hostile");
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  await mosquitto?.stop();
  await hostile?.stop();
});

describe("a bridge to Mosquitto", () => {
  it("carries remote topics in and local topics out, with the prefixes applied", async () => {
    const before = await bridge("plant");
    const here = await local();
    const hereInbox = new Inbox(here);
    await here.subscribeAsync("plant/#", { qos: 1 });
    const there = await remote();
    const thereInbox = new Inbox(there);
    await there.subscribeAsync("nimbus/#", { qos: 1 });

    await there.publishAsync("sensors/t1", "21.5", { qos: 1 });
    const [inbound] = await hereInbox.waitFor(1, 10_000);
    expect(inbound).toMatchObject({ topic: "plant/sensors/t1", payload: "21.5" });

    await here.publishAsync("cmd/valve", "open", { qos: 1 });
    const [outbound] = await thereInbox.waitFor(1, 10_000);
    expect(outbound).toMatchObject({ topic: "nimbus/cmd/valve", payload: "open" });
    const b = await bridge("plant");
    expect(b).toMatchObject({ state: "connected", dropped: 0 });
    // One message each way: counted once it reached the shard (in) and once written to Mosquitto (out).
    expect([b.messagesIn - before.messagesIn, b.messagesOut - before.messagesOut]).toEqual([1, 1]);
  });

  it("no client may take a bridge's client id (its messages' origin): CONNACK 0x85 / 2", async () => {
    for (const protocolVersion of [5, 4] as const) {
      const refused = connect(broker.url, { protocolVersion, clientId: "bridge:plant", reconnectPeriod: 0 });
      await expect(refused).rejects.toMatchObject({ code: protocolVersion === 5 ? 0x85 : 2 });
    }
  });

  it("a topic bridged both ways arrives once on each side and does not come back", async () => {
    const here = await local();
    const hereInbox = new Inbox(here);
    await here.subscribeAsync("both/#", { qos: 1 });
    const there = await remote();
    const thereInbox = new Inbox(there);
    await there.subscribeAsync("both/#", { qos: 1 });

    await here.publishAsync("both/from-here", "h", { qos: 1 });
    await there.publishAsync("both/from-there", "t", { qos: 1 });
    // Markers after them, on each side: once they arrive, any echo would have too.
    await thereInbox.waitFor(2, 10_000);
    await hereInbox.waitFor(2, 10_000);
    await here.publishAsync("both/marker-here", "m", { qos: 1 });
    await there.publishAsync("both/marker-there", "m", { qos: 1 });
    await thereInbox.waitFor(4, 10_000);
    await hereInbox.waitFor(4, 10_000);
    expect(hereInbox.messages.map((m) => m.topic).sort()).toEqual(
      ["both/from-here", "both/from-there", "both/marker-here", "both/marker-there"].sort(),
    );
    expect(thereInbox.messages.map((m) => m.topic).sort()).toEqual(
      ["both/from-here", "both/from-there", "both/marker-here", "both/marker-there"].sort(),
    );
  });

  it("resumes after Mosquitto restarts, and delivers the QoS 1 messages that waited meanwhile", async () => {
    const there = await remote("bridge-test-remote", false);
    const thereInbox = new Inbox(there);
    await there.subscribeAsync("nimbus/cmd/#", { qos: 1 });
    const before = await bridge("plant");

    await mosquitto.stop();
    const here = await local();
    for (let i = 0; i < 5; i++) await here.publishAsync("cmd/while-down", `d${i}`, { qos: 1 });
    await mosquitto.start();
    await connectedAfter(before?.connects ?? 0);

    const got = await thereInbox.waitFor(5, 20_000);
    expect(got.map((m) => m.payload)).toEqual(["d0", "d1", "d2", "d3", "d4"]);
    // And in, after the restart.
    const hereInbox = new Inbox(here);
    await here.subscribeAsync("plant/sensors/after", { qos: 1 });
    const sender = await remote();
    await sender.publishAsync("sensors/after", "back", { qos: 1 });
    expect((await hereInbox.waitFor(1, 10_000))[0]?.payload).toBe("back");
  }, 60_000);

  it("while Mosquitto is down, what waits for it is bounded (BRIDGE_QUEUE_BYTES): past it messages are dropped and counted", async () => {
    const before = await bridge("plant");
    await mosquitto.stop();
    const here = await local();
    // 1,000,000 bytes: under MAX_PACKET_SIZE (1 MiB) with the header.
    const big = Buffer.alloc(1_000_000, 7);
    for (let i = 0; i < 20; i++) await here.publishAsync("cmd/big", big, { qos: 1 });
    const full = await bridge("plant");
    // 16 MiB (16,777,216 bytes) hold 16 of them; the other 4 are dropped.
    expect((full?.dropped ?? 0) - (before?.dropped ?? 0)).toBe(4);
    expect(full?.queued).toBe(16);
    await mosquitto.start();
    await connectedAfter(full?.connects ?? 0);
    const deadline = Date.now() + 20_000;
    while ((await bridge("plant")).queued !== 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect((await bridge("plant")).queued).toBe(0);
  }, 60_000);

  it("drops and counts what Mosquitto passes on that this broker refuses: a $SYS topic (by the prefix), a payload past MAX_PACKET_SIZE", async () => {
    const before = await bridge("plant");
    const here = await local();
    const inbox = new Inbox(here);
    // MQTT-4.7.2-1: # does not match $ topics; $SYS/x is asked for by name.
    await here.subscribeAsync(["$SYS/x", "big", "marker-5"], { qos: 1 });
    const there = await remote();
    await there.publishAsync("up/$SYS/x", "forged", { qos: 1, retain: true });
    // 1.5 MB: 5.0 told Mosquitto the bridge's Maximum Packet Size, so it discards it
    // as if sent (MQTT-3.1.2-25): the connection stays up.
    await there.publishAsync("up/big", Buffer.alloc(1_500_000, 1), { qos: 1 });
    await there.publishAsync("up/marker-5", "after", { qos: 1 });
    const [first] = await inbox.waitFor(1, 10_000);
    expect(first).toMatchObject({ topic: "marker-5", payload: "after" });
    expect(inbox.messages).toHaveLength(1);
    const after = await bridge("plant");
    expect(after.refused - before.refused).toBe(1);
    expect(after).toMatchObject({ badInput: before.badInput, connects: before.connects, state: "connected" });
  });

  it("a 3.1.1 bridge, which cannot tell Mosquitto its maximum, ends the connection at a packet past MAX_PACKET_SIZE, counts it, and goes on", async () => {
    const before = await bridge("old311");
    const here = await local();
    const inbox = new Inbox(here);
    await here.subscribeAsync("old/#", { qos: 1 });
    const there = await remote();
    await there.publishAsync("old/big", Buffer.alloc(1_500_000, 1), { qos: 0 });
    await there.publishAsync("old/marker", "after", { qos: 1 });
    const [first] = await inbox.waitFor(1, 20_000);
    expect(first).toMatchObject({ topic: "old/marker", payload: "after" });
    expect(inbox.messages).toHaveLength(1);
    const after = await connectedAfter(before.connects, "old311");
    expect(after.badInput - before.badInput).toBe(1);
  }, 60_000);

  it("drops and counts, and acknowledges, what a remote broker keeping to no rule sends: a control character, an empty topic, a wildcard, $SYS", async () => {
    const before = await bridge("hostile");
    const here = await local();
    const inbox = new Inbox(here);
    await here.subscribeAsync(["#", "$SYS/forged"], { qos: 1 });
    const bad = ["up/a\u0001b", "up/", "up/a/#", "up/$SYS/forged"];
    bad.forEach((topic, i) => {
      hostile.send(rawPublish(topic, new TextEncoder().encode("x"), 1, 100 + i, true));
    });
    hostile.send(rawPublish("up/hostile/marker-1", new TextEncoder().encode("m1"), 1, 200));
    // The marker comes after them on the one connection, published here in order.
    while (!inbox.messages.some((m) => m.topic === "hostile/marker-1"))
      await inbox.waitFor(inbox.messages.length + 1, 10_000);
    expect(inbox.messages.map((m) => m.topic)).toEqual(["hostile/marker-1"]);
    // Acknowledged all the same: sent again, they would be refused again. The marker's
    // PUBACK may follow its delivery here (it is sent once the shard has it stored).
    const all = [100, 101, 102, 103, 200];
    await until(async () => all.every((id) => hostile.acked.includes(id)), true);
    expect(hostile.acked).toEqual(expect.arrayContaining(all));
    const after = await bridge("hostile");
    expect(after.refused - before.refused).toBe(4);
    expect(after.messagesIn - before.messagesIn).toBe(1);
  });

  it("a header announcing 64 MiB from the remote broker ends the connection at once, counted; the bridge connects again", async () => {
    const before = await bridge("hostile");
    const here = await local();
    const inbox = new Inbox(here);
    await here.subscribeAsync("hostile/#", { qos: 1 });
    // PUBLISH QoS 0, Remaining Length 64 MiB, then 256 KiB of it.
    hostile.send(new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x20, ...new Uint8Array(256 * 1024)]));
    const after = await connectedAfter(before.connects, "hostile");
    expect(after.badInput - before.badInput).toBe(1);
    await hostile.subscribed(2);
    hostile.send(rawPublish("up/hostile/marker-2", new TextEncoder().encode("m2"), 1, 201));
    const [marker] = await inbox.waitFor(1, 10_000);
    expect(marker).toMatchObject({ topic: "hostile/marker-2", payload: "m2" });
  }, 60_000);

  it("a CONNACK again does not start another keep-alive timer: PINGREQs stay one per half keep-alive", async () => {
    for (let i = 0; i < 3; i++) hostile.send(new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00]));
    const from = hostile.pings.length;
    await hostile.pinged(from + 3);
    const [a, , c] = hostile.pings.slice(from);
    // Two intervals of 2.5 s; four timers would have sent these three within one.
    expect((c as number) - (a as number)).toBeGreaterThan(4_000);
  }, 30_000);

  it("the console shows the bridge, its remote broker and its state", async () => {
    await withIntegrationsPanel(broker.httpUrl, API_TOKEN, async (page) => {
      const row = page.locator("#bridges tbody tr", { hasText: "plant" });
      await row.waitFor({ timeout: 10_000 });
      const cells = await row.locator("td").allTextContents();
      // bridge, remote, state, in, out, dropped, waiting, connects, last error
      expect(cells.slice(0, 3)).toEqual(["plant", `mqtt://127.0.0.1:${mosquitto.port}`, "connected"]);
      expect(Number(cells[7])).toBeGreaterThanOrEqual(3);
    });
  }, 60_000);
});
