/**
 * Inside workerd: what a client's Topic Aliases (5.0 3.3.2.3.4) cost the gateway in
 * rows written. The alias map lives in memory on the connection; a change is
 * written with the next publish that gets past the rate (or by a timer before
 * the object may hibernate), so a flood dropped over PUBLISH_RATE that keeps
 * changing an alias writes no row per packet (docs/limits.md and docs/benchmarks.md).
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ALIAS_SAVE_MS } from "../../durable-objects/gateway/handle-publish.ts";
import type { Env } from "../../worker/env.ts";
import { until } from "../support/until.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
const counters = async (): Promise<Record<string, number | undefined>> => (await gateway().stats()).counters;

const storedAlias = (alias: number) =>
  runInDurableObject(gateway(), (_instance, state) =>
    state.storage.sql
      .exec<{ topic: string }>("SELECT topic FROM topic_aliases WHERE alias = ?", alias)
      .toArray()
      .map((r) => r.topic),
  );

describe("Topic Aliases of a QoS 0 flood over the rate", () => {
  it("write at most one row per publish admitted, not one per alias change", async () => {
    const c = await TestClient.connected("alias-flood", 5);
    const payload = new Uint8Array([1]);
    const publish = (topic: string) =>
      c.send(
        {
          type: "publish",
          topic,
          payload,
          qos: 0,
          dup: false,
          retain: false,
          properties: { topicAlias: 1 },
        },
        5,
      );
    const before = await counters();
    const sent = 10_000;
    for (let i = 0; i < sent; i++) publish(i % 2 === 0 ? "alias/a" : "alias/b");
    // Packets of one connection are handled in order: the PINGRESP comes after the last PUBLISH.
    c.send({ type: "pingreq" }, 5);
    await c.next("pingresp");
    const after = await counters();
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    expect(delta("messages_in")).toBe(sent);
    const dropped = delta("dropped_rate") + delta("dropped_overload");
    expect(dropped).toBeGreaterThan(sent / 2);
    const admitted = sent - dropped;
    // One row per admitted publish at most (its alias change), and a small constant
    // (a keep-alive alarm set).
    expect(delta("rows_written")).toBeLessThanOrEqual(admitted + 2);

    // A mapping set by a publish that was dropped reaches storage all the same, by
    // ALIAS_SAVE_MS's timer. Another burst over the rate ends with a new topic: an
    // admitted publish writes its mapping before the PINGRESP that follows, so one
    // not in storage then was dropped (nothing admitted comes after it to write it).
    let last = "";
    for (let k = 0; k < 20 && last === ""; k++) {
      for (let i = 0; i < 300; i++) publish("alias/a");
      publish(`alias/last-${k}`);
      c.send({ type: "pingreq" }, 5);
      await c.next("pingresp");
      if ((await storedAlias(1))[0] !== `alias/last-${k}`) last = `alias/last-${k}`;
    }
    expect(last).not.toBe("");
    const saved = await until(
      () => storedAlias(1),
      (topics) => topics[0] === last,
      ALIAS_SAVE_MS + 5_000,
    );
    expect(saved).toEqual([last]);
    c.ws.close();
  }, 60_000);

  it("keeps a mapping set by an admitted publish across an eviction with hibernated WebSockets", async () => {
    const sub = await TestClient.connected("alias-sub", 5);
    await sub.subscribe("aliasrt/#");
    const pub = await TestClient.connected("alias-pub", 5);
    const send = (topic: string, packetId: number, text: string) =>
      pub.send(
        {
          type: "publish",
          topic,
          payload: new TextEncoder().encode(text),
          qos: 1,
          dup: false,
          retain: false,
          packetId,
          properties: { topicAlias: 2 },
        },
        5,
      );
    send("aliasrt/x", 1, "set");
    await pub.next("puback");
    expect((await sub.next("publish")).topic).toBe("aliasrt/x");
    await evictDurableObject(gateway(), { webSockets: "hibernate" });
    send("", 2, "by alias");
    await pub.next("puback");
    const got = await sub.next("publish");
    expect([got.topic, new TextDecoder().decode(got.payload)]).toEqual(["aliasrt/x", "by alias"]);
    sub.ws.close();
    pub.ws.close();
  });
});
