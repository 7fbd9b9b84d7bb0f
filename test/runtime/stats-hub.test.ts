/**
 * Statistics cost O(G + S) calls per interval in all (issue: every gateway with a
 * $SYS subscriber used to call every gateway and shard): ten askers within an
 * interval make one collection, seen in the calls a gateway and a shard receive.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { brokerStats, gatewayStub, shardStub } from "../../durable-objects/stubs.ts";
import type { Env } from "../../worker/env.ts";

const bindings = env as Env;

describe("the StatsHub", () => {
  it("answers ten askers within an interval with one collection: one stats call to each gateway and shard", async () => {
    const gateway = gatewayStub(bindings, "gateway-0");
    const shard = shardStub(bindings, 0);
    const before = {
      g: (await gateway.stats()).counters.rpc_in ?? 0,
      s: (await shard.stats()).counters.rpc_in ?? 0,
    };
    const answers = await Promise.all(Array.from({ length: 10 }, () => brokerStats(bindings, 60_000)));
    expect(answers).toHaveLength(10);
    for (let i = 0; i < 5; i++) await brokerStats(bindings, 60_000);
    const after = {
      g: (await gateway.stats()).counters.rpc_in ?? 0,
      s: (await shard.stats()).counters.rpc_in ?? 0,
    };
    // One call from the hub, and our own second stats call, at each.
    expect(after.g - before.g).toBe(2);
    expect(after.s - before.s).toBe(2);
  });
});
