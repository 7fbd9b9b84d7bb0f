/**
 * Billed units around a phase of a run, from /api/stats, by object: what Cloudflare
 * bills (requests, incoming WebSocket messages, rows written, log lines) and where the
 * events land (calls into gateways and into shards, the busiest object's rate).
 * Reading /api/stats itself calls every gateway and shard once; that is measured when
 * the meter is made and taken out of every phase.
 */

import { PRICES } from "../../broker/prices.ts";
import type { BrokerStats, GatewayStats, ShardStats } from "../../broker/stats.ts";

export interface Units {
  seconds: number;
  /** Gateways and shards (the objects counted awake for the whole phase). */
  objects: number;
  published: number;
  delivered: number;
  requests: number;
  wsIn: number;
  rowsWritten: number;
  logLines: number;
  /** Calls received by gateways (deliveries from shards, answers of sessions' hand-offs…). */
  gatewayCallsIn: number;
  /** Calls received by shards (publishes and subscribes from gateways). */
  shardCallsIn: number;
  /** Calls made to registries (each connect's claim, a clean session's end). */
  registryCalls: number;
  /** Calls made to Session objects (persistent sessions), by gateways and shards. */
  sessionCalls: number;
  /** Events at all gateways: WebSocket messages, calls, upgrades, alarms. */
  gatewayEvents: number;
  /** Events a second (WebSocket messages, calls, upgrades, alarms) at the busiest gateway. */
  busiestGatewayEvents: number;
  /** Calls a second at the busiest shard. */
  busiestShardCalls: number;
}

type Counted = { counters: Partial<Record<string, number>> };
const get = (o: Counted | undefined, k: string) => o?.counters[k] ?? 0;
const gatewayEvents = (g: GatewayStats | undefined) =>
  get(g, "ws_in") + get(g, "rpc_in") + get(g, "fetches") + get(g, "alarms");

export interface Snapshot {
  stats: BrokerStats;
  at: number;
  /** Reads of /api/stats made by this meter so far, this one included. */
  reads: number;
}

export class Meter {
  private readonly read: () => Promise<BrokerStats>;
  /** What one /api/stats read adds: billed requests, and calls into each gateway and shard. */
  private readonly overhead: { requests: number; perObject: number };
  private reads = 0;

  private constructor(read: () => Promise<BrokerStats>, overhead: { requests: number; perObject: number }) {
    this.read = read;
    this.overhead = overhead;
  }

  /** Reads the stats three times in a row, with nothing else going on, to learn what a read costs. */
  static async calibrate(read: () => Promise<BrokerStats>): Promise<Meter> {
    const a = await read();
    await read();
    const c = await read();
    const objects = a.gateways.length + a.shards.length;
    const requests = (c.billing.requests - a.billing.requests) / 2;
    return new Meter(read, { requests, perObject: objects > 0 ? requests / objects : 0 });
  }

  /**
   * A snapshot once the broker has taken in what clients sent last (their final
   * PUBACKs): two reads 100 ms apart see the same count of incoming messages.
   */
  async settled(limitMs = 5_000): Promise<Snapshot> {
    let last = await this.snapshot();
    const deadline = performance.now() + limitMs;
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const next = await this.snapshot();
      if (next.stats.billing.wsMessagesIn === last.stats.billing.wsMessagesIn) return next;
      last = next;
    }
    return last;
  }

  async snapshot(): Promise<Snapshot> {
    const stats = await this.read();
    return { stats, at: performance.now(), reads: ++this.reads };
  }

  /** Units between two snapshots, without the calls of the reads after the first. */
  units(before: Snapshot, after: Snapshot): Units {
    const b = before.stats;
    const a = after.stats;
    const seconds = (after.at - before.at) / 1000;
    const reads = after.reads - before.reads;
    const o = this.overhead.perObject * reads;
    // Per object: what counter k grew by, minus `less` (the stats reads' calls).
    const gBefore = new Map(b.gateways.map((g) => [g.gateway, g]));
    const sBefore = new Map(b.shards.map((x) => [x.shard, x]));
    const perGateway = (f: (g: GatewayStats | undefined) => number, less = 0) =>
      a.gateways.map((g) => f(g) - f(gBefore.get(g.gateway)) - less);
    const perShard = (f: (x: ShardStats | undefined) => number, less = 0) =>
      a.shards.map((x) => f(x) - f(sBefore.get(x.shard)) - less);
    const counter = (k: string) => (c: Counted | undefined) => get(c, k);
    const gCalls = perGateway(counter("rpc_in"), o);
    const sCalls = perShard(counter("rpc_in"), o);
    const gEvents = perGateway(gatewayEvents, o);
    const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
    const rate = (xs: number[]) => (xs.length === 0 || seconds <= 0 ? 0 : Math.max(...xs) / seconds);
    return {
      seconds,
      objects: a.gateways.length + a.shards.length,
      published: a.messagesIn - b.messagesIn,
      delivered: a.messagesOut - b.messagesOut,
      requests: a.billing.requests - b.billing.requests - this.overhead.requests * reads,
      wsIn: a.billing.wsMessagesIn - b.billing.wsMessagesIn,
      rowsWritten: a.billing.rowsWritten - b.billing.rowsWritten,
      logLines: a.billing.logLines - b.billing.logLines,
      gatewayCallsIn: sum(gCalls),
      shardCallsIn: sum(sCalls),
      registryCalls: sum(perGateway(counter("registry_calls"))),
      sessionCalls: sum(perGateway(counter("session_calls"))) + sum(perShard(counter("session_calls"))),
      gatewayEvents: sum(gEvents),
      busiestGatewayEvents: rate(gEvents),
      busiestShardCalls: rate(sCalls),
    };
  }
}

/**
 * $ per million delivered messages at Cloudflare's unit prices, without allowances:
 * requests, incoming WebSocket messages at 20 to a request, rows written, log lines,
 * and duration with every gateway and shard counted awake for the whole phase (an
 * upper bound: an object between events with nothing in flight is not billed).
 */
export function dollarsPerMillion(u: Units): { total: number; duration: number } {
  if (u.delivered <= 0) return { total: Number.NaN, duration: Number.NaN };
  const duration = u.objects * u.seconds * PRICES.objectGb * PRICES.gbSecond;
  const dollars =
    (u.requests + u.wsIn / PRICES.wsMessagesPerRequest) * PRICES.request +
    u.rowsWritten * PRICES.rowWritten +
    u.logLines * PRICES.logLine +
    duration;
  return { total: (dollars / u.delivered) * 1e6, duration: (duration / u.delivered) * 1e6 };
}
