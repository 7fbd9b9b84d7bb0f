/**
 * StatsHub: the one object that collects statistics from every gateway and shard
 * (broker/stats-cache.ts), for $SYS, /api/stats and /metrics. Nothing is stored:
 * an evicted hub collects again on the next ask.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../broker/config.ts";
import type { BrokerStats } from "../broker/stats.ts";
import { StatsCache } from "../broker/stats-cache.ts";
import type { Env } from "../worker/env.ts";
import type { StatsHubRpc } from "./contracts.ts";
import { collectStats } from "./stubs.ts";

/** The hub's name: one for the deployment. */
export { STATS_HUB_NAME } from "./stubs.ts";

export class StatsHub extends DurableObject<Env> implements StatsHubRpc {
  private readonly cache: StatsCache<BrokerStats>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const config = readConfig(env);
    this.cache = new StatsCache(() => collectStats(env, config));
  }

  /** The aggregate, at most `maxAgeMs` old. */
  current(maxAgeMs: number): Promise<BrokerStats> {
    return this.cache.get(Math.max(0, maxAgeMs));
  }
}
