/**
 * A subscriber granted `$SYS/presence/#` sees another client's connected and
 * disconnected events within 2 s, with the reason each connection ended, in both
 * layouts; one without the grant is refused; nothing is retained.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { passwordEntry } from "../../broker/auth/passwords.ts";
import { type PublishPacket, ReasonCode } from "../../mqtt/index.ts";
import { type RunningBroker, startBroker } from "../support/broker.ts";
import { RawClient, unique } from "../support/clients.ts";

const LAYOUTS = [
  { name: "1 shard, 1 gateway", shards: "1", gateways: "1" },
  { name: "4 shards, 3 gateways", shards: "4", gateways: "3" },
];
const utf8 = (s: string) => new TextEncoder().encode(s);
const body = (p: PublishPacket) => JSON.parse(new TextDecoder().decode(p.payload));

describe.each(LAYOUTS)("presence, $name", (layout) => {
  let broker: RunningBroker;
  const raws: RawClient[] = [];

  beforeAll(async () => {
    broker = await startBroker({
      vars: {
        TOPIC_SHARDS: layout.shards,
        GATEWAYS: layout.gateways,
        ALLOW_ANONYMOUS: "true",
        MQTT_PASSWORDS: await passwordEntry("ops", "ops-pw"),
        PRESENCE: "true",
        PRESENCE_ADDRESS: "true",
        ACL: JSON.stringify([
          { user: "ops", subscribe: ["$SYS/presence/#"] },
          { user: "*", publish: ["#"], subscribe: ["#"] },
        ]),
      },
    });
  }, 120_000);

  afterAll(async () => {
    await broker?.stop();
  });

  afterEach(() => {
    for (const r of raws.splice(0)) r.terminate();
  });

  async function raw(version: 4 | 5, headers: Record<string, string> = {}): Promise<RawClient> {
    const r = await RawClient.open(broker.url, version, "mqtt", headers);
    raws.push(r);
    return r;
  }

  /** The operator's dashboard: subscribed to every presence event. */
  async function watcher(): Promise<RawClient> {
    const ops = await raw(5);
    ops.sendConnect(unique("ops"), { username: "ops", password: utf8("ops-pw") });
    expect((await ops.next("connack")).reasonCode).toBe(0);
    expect((await ops.subscribe("$SYS/presence/#", 0)).reasonCodes).toEqual([0]);
    return ops;
  }

  /** The next presence event about `clientId`, within 2 s (events of other tests' clients are skipped). */
  async function eventOf(
    ops: RawClient,
    clientId: string,
  ): Promise<{ packet: PublishPacket; body: Record<string, unknown> }> {
    const deadline = Date.now() + 2_000;
    for (;;) {
      const packet = await ops.next("publish", Math.max(1, deadline - Date.now()));
      const b = body(packet);
      if (b.clientId === clientId) return { packet, body: b };
    }
  }

  it("a subscriber without a grant for $SYS/presence/# is refused (0x87), and no client may publish there", async () => {
    const anon = await raw(5);
    expect((await anon.connect(unique("anon"))).reasonCode).toBe(0);
    expect((await anon.subscribe("$SYS/presence/#", 0)).reasonCodes).toEqual([ReasonCode.NotAuthorized]);
    expect((await anon.subscribe("#", 0, 2)).reasonCodes).toEqual([0]);
    anon.send({
      type: "publish",
      topic: "$SYS/presence/connected/fake",
      payload: utf8("{}"),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 3,
    });
    expect((await anon.next("puback")).reasonCode).toBe(ReasonCode.NotAuthorized);
  });

  it("connected and disconnected within 2 s each, paired by connectionId, with principal, level, address and reason", async () => {
    const ops = await watcher();
    const id = unique("dev");
    const dev = await raw(4, { "CF-Connecting-IP": "203.0.113.7" });
    const started = Date.now();
    expect((await dev.connect(id)).reasonCode).toBe(0);
    const connected = await eventOf(ops, id);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(connected.packet).toMatchObject({ topic: `$SYS/presence/connected/${id}`, qos: 0, retain: false });
    expect(connected.body).toMatchObject({
      event: "connected",
      clientId: id,
      principal: "anonymous",
      protocolLevel: 4,
      address: "203.0.113.7",
    });
    dev.send({ type: "disconnect" });
    const ended = Date.now();
    const disconnected = await eventOf(ops, id);
    expect(Date.now() - ended).toBeLessThan(2_000);
    expect(disconnected.packet.topic).toBe(`$SYS/presence/disconnected/${id}`);
    expect(disconnected.body).toMatchObject({
      event: "disconnected",
      reason: "client-disconnect",
      connectionId: connected.body.connectionId,
    });
  });

  it("a dropped socket and a takeover say so; a client id with / and # has one topic level", async () => {
    const ops = await watcher();
    const id = unique("a/b#c");
    const first = await raw(5);
    expect((await first.connect(id)).reasonCode).toBe(0);
    const up = await eventOf(ops, id);
    expect(up.packet.topic).toBe(`$SYS/presence/connected/${id.replace("/", "%2F").replace("#", "%23")}`);
    const second = await raw(5);
    expect((await second.connect(id)).reasonCode).toBe(0);
    // The first connection taken over, the second connected: in either order.
    const events = [await eventOf(ops, id), await eventOf(ops, id)].map((e) => e.body);
    expect(events).toContainEqual(expect.objectContaining({ event: "disconnected", reason: "taken-over" }));
    expect(events).toContainEqual(expect.objectContaining({ event: "connected" }));
    second.terminate();
    expect((await eventOf(ops, id)).body).toMatchObject({ event: "disconnected", reason: "socket-closed" });
  });

  it("nothing is retained: a new subscriber gets no event with RETAIN set (MQTT-3.3.1-8), only those after it", async () => {
    const before = await raw(4);
    expect((await before.connect(unique("before"))).reasonCode).toBe(0);
    const ops = await watcher();
    // A connection after the subscription is the marker: every event until its own is looked at.
    const marker = unique("marker");
    const m = await raw(4);
    expect((await m.connect(marker)).reasonCode).toBe(0);
    const seen: PublishPacket[] = [];
    for (;;) {
      const p = await ops.next("publish", 2_000);
      seen.push(p);
      if (body(p).clientId === marker) break;
    }
    expect(seen.filter((p) => p.retain)).toEqual([]);
  });
});
