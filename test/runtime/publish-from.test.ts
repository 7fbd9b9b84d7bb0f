/**
 * A gateway's publish is one call, not two, for what matches its own clients: the
 * shard answers it (`publishFrom`'s `here`) instead of calling `deliver` back on
 * that gateway. Other gateways still get their `deliver` call, and past a call's
 * worth the caller's messages go that way too.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type Message, RPC_BATCH_MESSAGES } from "../../broker/message.ts";
import { gatewayDestination } from "../../broker/routing.ts";
import type { ShardStats } from "../../broker/stats.ts";
import type { ShardRpc } from "../../durable-objects/contracts.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;

function shard(name: string): ShardRpc {
  return bindings.TOPIC_SHARD.get(bindings.TOPIC_SHARD.idFromName(name)) as unknown as ShardRpc;
}

const message = (id: string, topic: string, qos: 0 | 1 = 1): Message => ({
  id,
  topic,
  payload: new Uint8Array([1]),
  qos,
  retain: false,
});

async function deliveries(s: ShardRpc): Promise<number> {
  return ((await s.stats()) as ShardStats).counters.deliveries ?? 0;
}

describe("TopicShard.publishFrom", () => {
  it("answers what matches the calling gateway, and delivers to the others in a call each", async () => {
    const s = shard("shard-0");
    const a = gatewayDestination("pf-a");
    const b = gatewayDestination("pf-b");
    for (const [dest, clientId] of [
      [a, "pf-1"],
      [b, "pf-2"],
    ] as const) {
      await s.subscribe(dest, { filters: ["pf/x"], shared: [], retainedFor: [], clientId });
    }
    // A shared group whose one member is behind the caller: its copy comes back too.
    await s.subscribe(a, { filters: [], shared: ["$share/g/pf/x"], retainedFor: [], clientId: "pf-3" });
    const before = await deliveries(s);
    const published = await s.publishFrom(a, [
      message("m1", "pf/x"),
      message("m2", "pf/x", 0),
      message("m3", "pf/none"),
    ]);
    expect(published.codes).toEqual([0x00, 0x00, 0x10]);
    expect(published.here.map((m) => [m.id, m.target?.clientId])).toEqual([
      ["m1", undefined],
      ["m1", "pf-3"],
      ["m2", undefined],
      ["m2", "pf-3"],
    ]);
    // pf-b's calls: m1 at once, m2 in the next (it came while m1's was under way); none to pf-a.
    expect((await deliveries(s)) - before).toBe(2);
    // Without a caller, the same publish is delivered in calls to both: pf-b's copy,
    // pf-a's plain copy at once and its shared copy in the next call.
    const again = await deliveries(s);
    expect(await s.publish([message("m4", "pf/x")])).toEqual([0x00]);
    expect((await deliveries(s)) - again).toBe(3);
  });

  it("delivers the caller's messages in calls, all of them, when they are more than a call's worth", async () => {
    const s = shard("shard-0");
    const a = gatewayDestination("pf-many");
    await s.subscribe(a, { filters: ["pf/many"], shared: [], retainedFor: [], clientId: "pf-many" });
    const before = await deliveries(s);
    const n = RPC_BATCH_MESSAGES + 1;
    const published = await s.publishFrom(
      a,
      Array.from({ length: n }, (_, i) => message(`many-${i}`, "pf/many")),
    );
    expect(published.codes).toHaveLength(n);
    expect(published.here).toEqual([]);
    // A call's worth, then the one left.
    expect((await deliveries(s)) - before).toBe(2);
  });
});
