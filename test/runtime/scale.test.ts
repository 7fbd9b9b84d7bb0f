/**
 * Fan-out costs one delivery call per gateway, not per subscriber: with 100,000
 * subscriptions spread over 50 gateways, one publish makes 50 deliver() calls.
 */
import { env } from "cloudflare:workers";

import { describe, expect, it } from "vitest";

import { gatewayDestination } from "../../broker/routing.ts";

import type { ShardStats } from "../../broker/stats.ts";
import type { ShardRpc } from "../../durable-objects/contracts.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as unknown as Env;

describe("TopicShard fan-out", () => {
  it("makes one delivery call per gateway for 100,000 subscriptions on 50 gateways", async () => {
    const shard = bindings.TOPIC_SHARD.get(bindings.TOPIC_SHARD.idFromName("shard-0")) as unknown as ShardRpc;
    const GATEWAYS = 50;
    const PER_GATEWAY = 2_000;
    // Each gateway registers its clients' subscriptions: 2,000 to the same filter
    // (a count of 2,000 at the shard), as 2,000 clients of one gateway would.
    for (let g = 0; g < GATEWAYS; g++) {
      await shard.subscribe(gatewayDestination(`scale-gw-${g}`), {
        filters: Array(PER_GATEWAY).fill("sensors/+/temperature"),
        shared: [],
        retainedFor: [],
        clientId: `scale-${g}`,
      });
    }
    const before = (await shard.stats()) as ShardStats;
    await shard.publish([
      {
        id: "scale-1",
        topic: "sensors/kitchen/temperature",
        payload: new Uint8Array([1]),
        qos: 0,
        retain: false,
      },
    ]);
    const after = (await shard.stats()) as ShardStats;
    expect(before.routes).toBe(GATEWAYS);
    expect((after.counters.deliveries ?? 0) - (before.counters.deliveries ?? 0)).toBe(GATEWAYS);
  }, 60_000);
});
